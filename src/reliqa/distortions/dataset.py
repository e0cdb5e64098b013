"""An endless stream of synthetic training batches from a folder of pristine photos.

Convention:
    - The stream is a sequence of BATCHES numbered 0, 1, 2, …; batch ``i`` of epoch ``e`` is a
      pure function of ``(seed, e, i)`` (its generator is seeded from a
      ``numpy.random.SeedSequence`` of the three), whichever process makes it.
    - Sharding: DataLoader worker ``w`` of ``W`` on DDP rank ``r`` of ``R`` makes the batches
      ``i ≡ r·W + w (mod R·W)``. No batch is made twice, and the data do not depend on how many
      workers or ranks share the work. Use ``DataLoader(dataset, batch_size=None, ...)``: the
      dataset batches itself (the engine is batched).
    - Multi-scale crops: each sample picks a photo, a scale ``s`` log-uniform in ``scale_range``
      (never so small that the crop would not fit; photos smaller than the crop are enlarged),
      cuts a ``crop / s`` window at a random place and resizes it to ``crop`` with antialiasing.
    - The held-out split is a fixed function of each file's name (:func:`is_held_out`), so every
      trainer that uses ../shared/data/pristine shares one split.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset, get_worker_info

from reliqa.distortions.compose import distort
from reliqa.distortions.ordinal import ordinal_set
from reliqa.distortions.plan import MAX_DISTORTIONS
from reliqa.exceptions import InvalidInputError
from reliqa.io import list_images, load_image

Split = Literal["train", "held_out", "all"]
Mode = Literal["triplet", "ordinal"]

HELD_OUT_PERCENT: int = 10
"""Share of photos (in %) that :func:`is_held_out` puts in the held-out split."""


def split_key(path: str | os.PathLike) -> str:
    """The name a photo's split is decided on: ``"<parent folder>/<file name>"``.

    Using the parent folder keeps the split the same whether a trainer points at
    ``pristine/`` (recursively) or at ``pristine/kodak24/``, and separates equal file names in
    different collections.
    """
    path = Path(path)
    return f"{path.parent.name}/{path.name}"


def is_held_out(path: str | os.PathLike) -> bool:
    """True for the ~10 % of photos in the held-out split: the first 8 bytes of
    ``sha256(split_key(path))``, read as a big-endian integer, are < 10 modulo 100."""
    digest = hashlib.sha256(split_key(path).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100 < HELD_OUT_PERCENT


def split_images(
    root: str | os.PathLike | Sequence[str | os.PathLike],
    split: Split = "train",
    *,
    recursive: bool = True,
) -> list[Path]:
    """Photos of one split: a folder (searched recursively by default) or a list of files.

    Raises:
        InvalidInputError: unknown split, or no photo in that split.
        ImageLoadError: ``root`` is not a folder.
    """
    if split not in ("train", "held_out", "all"):
        raise InvalidInputError(f"split must be 'train', 'held_out' or 'all', got {split!r}")
    if isinstance(root, (str, os.PathLike)):
        paths = list_images(root, recursive=recursive)
        where = str(root)
    else:
        paths = sorted(Path(p) for p in root)
        where = f"{len(paths)} given files"
    if split != "all":
        paths = [p for p in paths if is_held_out(p) == (split == "held_out")]
    if not paths:
        raise InvalidInputError(f"{where}: no images in split {split!r}")
    return paths


def batch_seed(seed: int, epoch: int, index: int) -> int:
    """Seed of batch ``index`` in ``epoch`` (a 63-bit int, for ``torch.Generator``)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0]
    return int(state) & (2**63 - 1)


def _distributed_position() -> tuple[int, int]:
    """(rank, world size) from torch.distributed, else torchrun's environment, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def random_scaled_crop(
    photo: torch.Tensor,
    crop: int,
    scale_range: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """A random multi-scale crop: (3, H, W) uint8 or float in [0, 1] → (3, C, C) float32.

    The scale is drawn log-uniformly in ``scale_range``; a window of ``crop / scale`` pixels
    (never larger than the photo: photos smaller than the crop are enlarged whole) is cut at a
    random place and resized to ``crop`` × ``crop`` (antialiased when shrinking).
    """
    _, height, width = photo.shape
    low, high = scale_range
    short = min(height, width)
    u = float(torch.rand((), generator=generator))
    scale = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    window = min(max(crop, round(crop / scale)), short)
    top = int(torch.randint(height - window + 1, (), generator=generator))
    left = int(torch.randint(width - window + 1, (), generator=generator))
    patch = photo[:, top : top + window, left : left + window].float()
    if photo.dtype == torch.uint8:
        patch.div_(255.0)
    if window == crop:
        return patch
    resized = F.interpolate(
        patch[None], size=(crop, crop), mode="bilinear", align_corners=False,
        antialias=window > crop,
    )
    return resized[0].clamp_(0.0, 1.0)


class DistortionDataset(IterableDataset):
    """Batches of synthetic triplets (or ordinal sets) from pristine photos.

    Yields dicts of tensors, batch size B, crop size C:

    - ``mode="triplet"``: ``reference`` (B, 3, C, C), ``test`` (B, 3, C, C), ``truth``
      (B, 9, C, C), ``swapped`` (B,) bool, ``index`` () the batch number;
    - ``mode="ordinal"``: ``reference`` (B, 3, C, C), ``versions`` (B, K, 3, C, C), ``levels``
      (B, K), ``truth`` (B, K, 9, C, C), ``index``.

    Arguments:
        root: a folder of photos (searched recursively) or a list of image files.
        split: ``"train"``, ``"held_out"`` (see :func:`is_held_out`) or ``"all"``.
        crop_size: C.
        batch_size: B.
        num_batches: batches per epoch over all workers and ranks; None = endless.
        mode: ``"triplet"`` or ``"ordinal"``.
        ordinal_levels: K for ordinal sets.
        scale_range: (smallest, largest) downscale factor before cropping, in (0, 1].
        p_swap, max_distortions, pool, mask_families, sampling_weights: passed to the engine
            (:func:`~reliqa.distortions.compose.distort`).
        seed: base seed of the stream.
        rank, world_size: DDP position; default from ``torch.distributed`` or ``RANK`` /
            ``WORLD_SIZE``.
        device: where the engine runs (crops are cut on CPU); use a GPU only with
            ``num_workers=0``.

    With a finite ``num_batches`` that the number of ranks × workers does not divide, some
    shards get one batch more than others; under DDP prefer the endless stream and count steps.
    """

    def __init__(
        self,
        root: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        split: Split = "train",
        crop_size: int = 256,
        batch_size: int = 16,
        num_batches: int | None = None,
        mode: Mode = "triplet",
        ordinal_levels: int = 4,
        scale_range: tuple[float, float] = (0.5, 1.0),
        p_swap: float = 0.25,
        max_distortions: int = MAX_DISTORTIONS,
        pool: Sequence[str] | None = None,
        mask_families: Sequence[str] | dict[str, float] | None = None,
        sampling_weights: Mapping[str, float] | None = None,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        device: torch.device | str = "cpu",
        recursive: bool = True,
    ) -> None:
        super().__init__()
        if crop_size < 1 or batch_size < 1:
            raise InvalidInputError(
                f"crop_size and batch_size must be ≥ 1, got {crop_size} and {batch_size}"
            )
        if num_batches is not None and num_batches < 0:
            raise InvalidInputError(f"num_batches must be ≥ 0 or None, got {num_batches}")
        if mode not in ("triplet", "ordinal"):
            raise InvalidInputError(f"mode must be 'triplet' or 'ordinal', got {mode!r}")
        low, high = scale_range
        if not 0.0 < low <= high <= 1.0:
            raise InvalidInputError(f"scale_range must satisfy 0 < low ≤ high ≤ 1, got {scale_range}")
        self.paths = split_images(root, split, recursive=recursive)
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.mode: Mode = mode
        self.ordinal_levels = ordinal_levels
        self.scale_range = (float(low), float(high))
        self.p_swap = p_swap
        self.max_distortions = max_distortions
        self.pool = None if pool is None else list(pool)
        self.mask_families = mask_families
        self.sampling_weights = None if sampling_weights is None else dict(sampling_weights)
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.device = torch.device(device)
        self.epoch = 0
        self._cache: dict[int, torch.Tensor] = {}

    def set_epoch(self, epoch: int) -> None:
        """Start another epoch: a new stream of batches (like DistributedSampler.set_epoch)."""
        self.epoch = epoch

    def preload(self) -> None:
        """Decode every photo now (before DataLoader workers fork, they then share the cache)."""
        for index in range(len(self.paths)):
            self._photo(index)

    def _photo(self, index: int) -> torch.Tensor:
        """Decoded photo ``index`` as (3, H, W) uint8, decoded once per process."""
        photo = self._cache.get(index)
        if photo is None:
            photo = load_image(self.paths[index])[0].mul(255).round().to(torch.uint8)
            self._cache[index] = photo
        return photo

    def _crop(self, photo: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A random multi-scale crop: (3, H, W) uint8 → (3, C, C) float32 in [0, 1]."""
        return random_scaled_crop(photo, self.crop_size, self.scale_range, generator)

    def make_batch(self, index: int) -> dict[str, torch.Tensor]:
        """Batch number ``index`` of the current epoch (the same in every process)."""
        generator = torch.Generator().manual_seed(batch_seed(self.seed, self.epoch, index))
        choice = torch.randint(len(self.paths), (self.batch_size,), generator=generator).tolist()
        reference = torch.stack([self._crop(self._photo(i), generator) for i in choice])
        reference = reference.to(self.device)
        label = torch.tensor(index)
        if self.mode == "ordinal":
            result = ordinal_set(
                reference, self.ordinal_levels, pool=self.pool,
                max_distortions=self.max_distortions, mask_families=self.mask_families,
                sampling_weights=self.sampling_weights, generator=generator,
            )
            return {
                "reference": result.reference, "versions": result.versions,
                "levels": result.levels, "truth": result.truth, "index": label,
            }
        batch = distort(
            reference, pool=self.pool, max_distortions=self.max_distortions,
            mask_families=self.mask_families, sampling_weights=self.sampling_weights, p_swap=self.p_swap,
            generator=generator,
        )
        return {
            "reference": batch.reference, "test": batch.test, "truth": batch.truth,
            "swapped": batch.swapped, "index": label,
        }

    def shard(self) -> tuple[int, int]:
        """(first batch number, stride) of this process: its rank and worker position."""
        rank, world = _distributed_position()
        rank = rank if self.rank is None else self.rank
        world = world if self.world_size is None else self.world_size
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return rank * workers + worker, world * workers

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        first, stride = self.shard()
        indices = (
            itertools.count(first, stride)
            if self.num_batches is None
            else range(first, self.num_batches, stride)
        )
        for index in indices:
            yield self.make_batch(index)


def validation_batches(
    root: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    num_batches: int = 8,
    batch_size: int = 16,
    crop_size: int = 256,
    mode: Mode = "triplet",
    seed: int = 0,
    device: torch.device | str = "cpu",
    **engine_options: object,
) -> list[dict[str, torch.Tensor]]:
    """A fixed list of batches from the HELD-OUT split, the same on every machine and call.

    Arguments:
        root: the pristine folder (e.g. ../shared/data/pristine) or a list of files.
        num_batches, batch_size, crop_size, mode, seed, device: see :class:`DistortionDataset`.
        engine_options: further :class:`DistortionDataset` options (p_swap, pool, …).

    Returns:
        ``num_batches`` dicts as yielded by :class:`DistortionDataset`.
    """
    dataset = DistortionDataset(
        root, split="held_out", num_batches=num_batches, batch_size=batch_size,
        crop_size=crop_size, mode=mode, seed=seed, rank=0, world_size=1, device=device,
        **engine_options,  # type: ignore[arg-type]
    )
    return [dataset.make_batch(index) for index in range(num_batches)]


__all__ = [
    "HELD_OUT_PERCENT",
    "DistortionDataset",
    "batch_seed",
    "is_held_out",
    "random_scaled_crop",
    "split_images",
    "split_key",
    "validation_batches",
]
