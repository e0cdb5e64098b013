"""No-reference quality scores: ``reliqa.score(images, model="hirqa")`` and the file-level helper.

Inference is deterministic: no crop, no randomness. An image is scored whole at its native
resolution, except that one whose longer side exceeds :data:`reliqa.models.hirqa.MAX_SIDE` is
first downscaled to it (:meth:`reliqa.models.hirqa.HiRQA.score`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from reliqa.checks import check_tensor_image, resolve_device
from reliqa.exceptions import InvalidInputError, ReliqaError, UnknownNameError, UsageError
from reliqa.io import ImageSource, expand_image_paths, list_images, load_image


class QualityScorer:
    """A loaded no-reference model: ``scorer(images)`` maps (N, 3, H, W) in [0, 1] → (N,) in [0, 1].

    Args:
        model: registered model name, ``"hirqa"`` or ``"hirqa-s"``, or a loaded no-reference
            model (an ``nn.Module`` with ``score(images)``) — ``model=`` means the same as in
            :func:`reliqa.compare`.
        device: torch device (default cpu; checked to exist).
    """

    def __init__(
        self, model: str | torch.nn.Module = "hirqa", device: str | torch.device | None = None
    ) -> None:
        self.device = resolve_device(device)
        network: Any
        if isinstance(model, torch.nn.Module):
            if not callable(getattr(model, "score", None)):
                raise InvalidInputError(
                    f"model {type(model).__name__} has no score(images) method"
                )
            self.name = type(model).__name__
            network = model.to(self.device).eval()
        else:
            from reliqa.models.registry import create_model, list_models, model_name

            registered = model_name(model)
            no_reference = [e.name for e in list_models() if e.info.kind == "NR"]
            if registered not in no_reference:
                raise UnknownNameError(
                    f"unknown no-reference model {model!r}; choose one of {', '.join(no_reference)}"
                )
            self.name = registered
            network = create_model(registered, pretrained=True, device=self.device)
        # channels_last: faster convolutions on CPU; Module.to accepts it (torch's stubs do not)
        self.network = network.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float in [0, 1] → (N,) float32 scores on CPU."""
        check_tensor_image(images, "images", channels=(3,))
        return self.network.score(images.to(self.device, torch.float32)).cpu()


@functools.lru_cache(maxsize=4)
def load_scorer(model: str = "hirqa", device: str | None = None) -> QualityScorer:
    """A cached :class:`QualityScorer` (weights are read and hash-checked once per process)."""
    return QualityScorer(model, device)


def _device_key(device: str | torch.device | None) -> str:
    return str(resolve_device(device))


def score(
    images: ImageSource | Sequence[ImageSource],
    *,
    model: str | torch.nn.Module = "hirqa",
    device: str | torch.device | None = None,
    batch_size: int = 16,
) -> torch.Tensor:
    """No-reference quality in [0, 1] (higher = better) of one image or several.

    Args:
        images: one image source (path, PIL image, numpy array, (3, H, W) or (N, 3, H, W)
            tensor; see :func:`reliqa.io.load_image`) or a list of them (sizes may differ).
        model: ``"hirqa"`` (quality first) or ``"hirqa-s"`` (speed first), or a loaded model.
        device: torch device for the network (default CPU).
        batch_size: most same-size images per forward pass.

    Returns:
        (N,) float32 tensor, one score per image, in input order (a batch tensor counts N).

    Raises:
        ImageLoadError / InvalidInputError: an image cannot be read (named in the message).
        UnknownNameError: unknown model.

    Example:
        >>> import numpy as np
        >>> score(np.full((64, 64, 3), 128, np.uint8), model="hirqa-s").shape
        torch.Size([1])
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be ≥ 1, got {batch_size}")
    scorer = (
        QualityScorer(model, device)
        if isinstance(model, torch.nn.Module)
        else load_scorer(model, _device_key(device))
    )
    sources: list[ImageSource] = list(images) if isinstance(images, (list, tuple)) else [images]  # type: ignore[list-item]
    batches = [load_image(source) for source in sources]
    results: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            results.append(scorer(torch.cat(pending)))
            pending.clear()

    for batch in batches:
        for start in range(0, batch.shape[0], batch_size):
            chunk = batch[start : start + batch_size]
            queued = sum(item.shape[0] for item in pending)
            if pending and (
                pending[0].shape[-2:] != chunk.shape[-2:] or queued + chunk.shape[0] > batch_size
            ):
                flush()
            pending.append(chunk)
    flush()
    return torch.cat(results) if results else torch.zeros(0)


def score_files(
    paths: Iterable[str | os.PathLike],
    *,
    model: str = "hirqa",
    device: str | torch.device | None = None,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """Score files; folders expand to their images (sorted). Same-size images share forward
    passes of up to ``batch_size`` (one pass per image made ``reliqa score`` ~8× slower).

    Returns:
        One record per image in order: ``{"image": path, "score": float}`` or, when the file
        cannot be scored, ``{"image": path, "error": message naming the file}`` — a failure
        never stops the rest.

    Raises:
        UsageError: a folder among ``paths`` holds no image files.
    """
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be ≥ 1, got {batch_size}")
    paths = list(paths)
    for path in paths:  # as `reliqa batch`: an empty folder is bad usage, before any work
        if Path(path).is_dir() and not list_images(path):
            raise UsageError(f"{path}: the folder contains no image files")
    scorer = load_scorer(model, _device_key(device))
    files = expand_image_paths(paths)
    records: list[dict[str, Any]] = [{"image": str(path)} for path in files]
    # Decode a window of files, then score its images grouped by size: memory stays bounded
    # by the window, and each group runs in passes of up to batch_size images.
    window = 4 * batch_size
    for start in range(0, len(files), window):
        groups: dict[tuple[int, int], list[tuple[int, torch.Tensor]]] = {}
        for index in range(start, min(start + window, len(files))):
            try:
                image = load_image(files[index])
            except ReliqaError as error:
                records[index]["error"] = str(error)
                continue
            groups.setdefault((image.shape[-2], image.shape[-1]), []).append((index, image))
        for members in groups.values():
            for first in range(0, len(members), batch_size):
                chunk = members[first : first + batch_size]
                try:
                    values = scorer(torch.cat([image for _, image in chunk]))
                except ReliqaError as error:  # each record names its own file
                    for index, _ in chunk:
                        records[index]["error"] = f"{files[index]}: {error}"
                    continue
                for (index, _), value in zip(chunk, values.tolist()):
                    records[index]["score"] = float(value)
    return records
