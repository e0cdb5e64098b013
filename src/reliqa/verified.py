"""The one verified-weights loader (core layer): a safetensors file is read only after its
sha256 matches the expected value, never unpickled, never fetched.

Every safetensors file reliqa reads goes through :func:`load_verified`:

- shipped files (networks in ``reliqa/weights/``, NIQE's pristine model, the prompt embeddings
  in ``reliqa/data/``) with the sha256 of the JSON card beside them (:func:`read_card`,
  :func:`load_carded`, :func:`reliqa.models.weights.load_shipped`), so a corrupt or replaced
  copy is refused with the same :class:`~reliqa.exceptions.WeightsError`, naming the file;
- files our own commands wrote (training checkpoints, caches, photo corpora, a user's NIQE
  fit) with ``expected_sha256=None``: they carry no hash, but are read by the same code.

:func:`check_sha256` is the one hash check, also used before ``torch.load(weights_only=True)``
of the pinned ImageNet backbone (:func:`reliqa.models.efficientnet_lite.load_imagenet_state`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

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


def check_sha256(path: str | os.PathLike, expected_sha256: str, *, what: str = "weights") -> None:
    """Raise unless the file ``path`` exists and its sha256 is ``expected_sha256``.

    Raises:
        WeightsError: missing file, or a hash mismatch (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} file does not exist")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise WeightsError(
            f"{path}: sha256 {actual} does not match the expected {expected_sha256}; "
            f"the {what} file is corrupt or was replaced"
        )


def load_verified(
    path: str | os.PathLike, expected_sha256: str | None, *, what: str = "weights"
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file, after checking its sha256.

    Arguments:
        path: the ``.safetensors`` file.
        expected_sha256: the hash from its card; None skips the check (a file one of our own
            commands wrote, which carries no hash: checkpoints, caches, a user's own file).
        what: what the file is, for the messages ("weights", "NIQE parameter file").

    Raises:
        WeightsError: missing file, hash mismatch, or not a safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: {what} file does not exist")
    if expected_sha256 is not None:
        check_sha256(path, expected_sha256, what=what)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: not a valid safetensors {what} ({error})") from None
    return tensors, dict(metadata)


def read_card(card_path: str | os.PathLike, *, what: str = "weights") -> dict[str, Any]:
    """The JSON card of a shipped file, checked to record the file's ``sha256``.

    Raises:
        WeightsError: the card is missing, not JSON, or has no sha256 (the message names it).
    """
    card_path = Path(card_path)
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise WeightsError(f"{card_path}: cannot read the card of the {what} ({error})") from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str):
        raise WeightsError(f"{card_path}: the card of the {what} records no sha256")
    return card


def load_carded(
    path: str | os.PathLike, *, what: str = "weights"
) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, Any]]:
    """Tensors, metadata and card of a shipped safetensors file ``<stem>.safetensors``, verified
    against the sha256 of its card ``<stem>.json`` beside it.

    Raises:
        WeightsError: missing file or card, a card without sha256, hash mismatch, or not a
            safetensors file.
    """
    path = Path(path)
    card = read_card(path.with_suffix(".json"), what=what)
    tensors, metadata = load_verified(path, card["sha256"], what=what)
    return tensors, metadata, card


__all__ = ["check_sha256", "load_carded", "load_verified", "read_card", "sha256_of"]
