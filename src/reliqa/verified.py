"""The one verified-weights loader (core layer): a safetensors file is read only after its
sha256 matches the expected value, never unpickled, never fetched.

Used by the model registry (:func:`reliqa.models.weights.load_shipped`, shipped networks) and
by NIQE (:func:`reliqa.metrics.niqe.load_params`, the pristine model), so both refuse a corrupt
or replaced file with the same :class:`~reliqa.exceptions.WeightsError`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from reliqa.exceptions import WeightsError


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_verified(
    path: str | os.PathLike, expected_sha256: str | None, *, what: str = "weights"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, after checking its sha256.

    Arguments:
        path: the ``.safetensors`` file.
        expected_sha256: the hash from its card; None skips the check (a user's own file).
        what: what the file is, for the messages ("weights", "NIQE parameter file").

    Raises:
        WeightsError: missing file, hash mismatch, or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} file does not exist")
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise WeightsError(
                f"{path}: sha256 {actual} does not match the expected {expected_sha256}; "
                "the file is corrupt or was replaced"
            )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: not a valid safetensors {what} ({error})") from None
    return tensors, dict(metadata)


__all__ = ["load_verified", "sha256_of"]
