"""Cached corpus for the relational scorer: engine pairs → pooled map statistics + teachers.

The scorer reads only pooled statistics of the frozen map network's output
(:class:`~reliqa.models.relational.PairDescriptor`), so the expensive part (the engine, the map
network, the teacher metrics) runs once and the scorer then trains in minutes on the cache.

One cache folder per split of ``../shared/data/pristine``:

- ``train``: the engine's training photos;
- ``validation`` / ``evaluation``: the two fixed halves of the held-out photos
  (:func:`reliqa.training.relational.held_out_halves`); validation chooses hyper-parameters and
  checkpoints, evaluation makes the reported figures.

Each photo gives ``sets_per_photo`` ordinal sets (one random crop, one mix of distortions,
``levels`` versions at strictly rising intensity, never swapped; the odd-numbered sets have a
single distortion type, the even-numbered up to three). Per version the cache holds:

- ``signed`` (9, C/4, C/4) float16: the frozen map network's signed maps u = 2(m − 0.5) at
  its native 1/4 resolution, and ``activity`` (1, C/4, C/4) float16, the texture activity of
  the pair (:func:`~reliqa.models.relational.masking_activity`). The scorer's statistics are
  computed from these at training time, so a change of pooling needs no new cache;
- ``deep`` (5, 3), only in caches made with ``deep_features`` (for ``relational-plus``):
  the :func:`~reliqa.models.relational.deep_distances` of the pair;
- ``teachers`` (T,): the classical full-reference metrics of :data:`TEACHERS` (test = the
  version, reference = the clean crop), in their native direction;
- ``set_id``, ``level`` (the ordinal set and the version's level: a within-set order that
  needs no teacher), ``photo``.

No human label is read. Work is written in parts of ``photos_per_part`` photos
(``part-<first photo>-<set>.safetensors``), each part a pure function of (seed, photo, set), and
parts that exist are skipped: an interrupted run resumes where it stopped, and raising
``sets_per_photo`` later adds parts without recomputing the old ones. With ``refresh_maps``
(a retrained map network) existing parts keep their teachers, which do not depend on the map
network, and only the maps are recomputed from the same engine stream.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from reliqa.distortions import ordinal_set
from reliqa.distortions.compose import AppliedDistortion
from reliqa.distortions.dataset import batch_seed, split_images
from reliqa.exceptions import DataError, InvalidInputError
from reliqa.io import load_image
from reliqa.metrics import create_metric
from reliqa.models.relational import (
    DeepFeatures,
    RelationalMapNet,
    deep_distances,
    map_statistic_sums,
    masking_activity,
)
from reliqa.training.relational import held_out_halves

CacheSplit = Literal["train", "validation", "evaluation"]

TEACHERS: tuple[str, ...] = ("fsim", "gmsd", "vifp", "ms_ssim")
"""Opinion-unaware teachers: calibrated classical FR metrics (no human label in them)."""

TEACHER_HIGHER_IS_BETTER: dict[str, bool] = {
    "fsim": True, "gmsd": False, "vifp": True, "ms_ssim": True,
}


@dataclass(frozen=True)
class ScorerCacheConfig:
    """What a cache folder holds (stored as ``cache.json``; a folder never mixes configs).

    Attributes:
        data_root: the pristine photos.
        split: which photos (see the module docstring).
        sets_per_photo: ordinal sets per photo.
        levels: versions per set.
        crop: crop side in pixels (multiple of 16; ≥ 176 for MS-SSIM's five scales).
        seed: base seed.
        photos_per_part: photos per written part.
    """

    data_root: str
    split: CacheSplit = "train"
    sets_per_photo: int = 2
    levels: int = 4
    crop: int = 256
    seed: int = 0
    photos_per_part: int = 8


def cache_photos(data_root: str | Path, split: CacheSplit) -> list[Path]:
    """The photos of one cache split, in a fixed order."""
    if split == "train":
        return split_images(data_root, "train")
    validation, evaluation = held_out_halves(data_root)
    if split == "validation":
        return validation
    if split == "evaluation":
        return evaluation
    raise InvalidInputError(f"split must be train, validation or evaluation, got {split!r}")


def random_crop(photo: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A crop of a random scale in [0.5, 1] resized to ``size``²: (1, 3, H, W) → (1, 3, size, size)."""
    height, width = photo.shape[-2:]
    short = min(height, width)
    scale = math.exp(math.log(0.5) * float(torch.rand((), generator=generator)))
    window = min(max(size, round(size / scale)), short)
    top = int(torch.randint(height - window + 1, (), generator=generator))
    left = int(torch.randint(width - window + 1, (), generator=generator))
    patch = photo[..., top : top + window, left : left + window]
    if window == size:
        return patch
    return F.interpolate(
        patch, size=(size, size), mode="bilinear", align_corners=False, antialias=window > size
    ).clamp(0.0, 1.0)


@torch.inference_mode()
def low_resolution_maps(
    maps_net: RelationalMapNet, test: torch.Tensor, reference: torch.Tensor, chunk: int = 16
) -> dict[str, torch.Tensor]:
    """Signed maps and texture activity at 1/4 resolution, float16.

    Args:
        test, reference: (N, 3, C, C) with C a multiple of 16.

    Returns:
        ``signed`` (N, 9, C/4, C/4) and ``activity`` (N, 1, C/4, C/4).
    """
    signed, activity = [], []
    for start in range(0, test.shape[0], chunk):
        t, r = test[start : start + chunk], reference[start : start + chunk]
        signed.append(torch.tanh(0.5 * maps_net.aligned_logits(t, r)).half())
        activity.append(masking_activity(t, r).half())
    return {"signed": torch.cat(signed), "activity": torch.cat(activity)}


def statistics_of(cache: dict[str, torch.Tensor]) -> torch.Tensor:
    """The scorer's input (N, 9, 2, C) from a cache's ``signed`` and ``activity``."""
    signed, activity = cache["signed"].float(), cache["activity"].float()
    count = signed.shape[-1] * signed.shape[-2]
    return map_statistic_sums(signed, activity) / count


@torch.inference_mode()
def teacher_scores(
    test: torch.Tensor, reference: torch.Tensor, teachers: Sequence[str] = TEACHERS, chunk: int = 16
) -> torch.Tensor:
    """Classical FR metrics of N pairs in their native direction: (N, 3, H, W) ×2 → (N, T)."""
    columns = []
    for name in teachers:
        metric = create_metric(name)
        columns.append(
            torch.cat(
                [
                    metric(test[start : start + chunk], reference[start : start + chunk]).float()
                    for start in range(0, test.shape[0], chunk)
                ]
            )
        )
    return torch.stack(columns, dim=1)


def engine_part(
    config: ScorerCacheConfig, photos: Sequence[Path], first_photo: int, set_index: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Set ``set_index`` of photos ``first_photo …``: a pure function of the seed.

    Returns:
        test (N, 3, C, C), reference (N, 3, C, C) and the labels ``level``, ``set_id``,
        ``photo``, ``mix`` (N,) each, N = photos × levels.
    """
    crops, versions, levels, mixes, set_ids = [], [], [], [], []
    for offset, path in enumerate(photos):
        photo_index = first_photo + offset
        generator = torch.Generator().manual_seed(
            batch_seed(config.seed, set_index, photo_index)
        )
        crop = random_crop(load_image(path), config.crop, generator)
        result = ordinal_set(
            crop, config.levels, max_distortions=1 if set_index % 2 else 3, generator=generator
        )
        crops.append(crop.expand(config.levels, -1, -1, -1))
        versions.append(result.versions[0])
        levels.append(result.levels[0])
        mixes.append(_encode_mix(result.distortions[0]))
        set_ids.append(photo_index * 1000 + set_index)
    labels = {
        "level": torch.cat(levels),
        "set_id": torch.tensor(set_ids).repeat_interleave(config.levels),
        "photo": torch.arange(first_photo, first_photo + len(photos)).repeat_interleave(
            config.levels
        ),
        "mix": torch.tensor(mixes, dtype=torch.int64).repeat_interleave(config.levels),
    }
    return torch.cat(versions), torch.cat(crops), labels


def build_part(
    config: ScorerCacheConfig,
    maps_net: RelationalMapNet,
    photos: Sequence[Path],
    first_photo: int,
    set_index: int,
    teachers: torch.Tensor | None = None,
    deep_features: DeepFeatures | None = None,
) -> dict[str, torch.Tensor]:
    """One part; ``teachers`` given (a refresh) are kept instead of being recomputed."""
    test, reference, part = engine_part(config, photos, first_photo, set_index)
    part.update(low_resolution_maps(maps_net, test, reference))
    if deep_features is not None:
        with torch.inference_mode():
            part["deep"] = torch.cat(
                [
                    deep_distances(deep_features, test[i : i + 16], reference[i : i + 16])
                    for i in range(0, test.shape[0], 16)
                ]
            )
    part["teachers"] = teacher_scores(test, reference) if teachers is None else teachers
    return part


_TYPE_CODES: dict[str, int] = {}


def _encode_mix(mix: Sequence[AppliedDistortion]) -> int:
    """A bit set of the distortion types in one set's mix (for per-type breakdowns)."""
    if not _TYPE_CODES:
        _TYPE_CODES.update({name: bit for bit, name in enumerate(type_names())})
    return sum(1 << _TYPE_CODES[entry.type] for entry in mix)


def type_names() -> list[str]:
    """Distortion type names in the bit order of the cache's ``mix`` column."""
    from reliqa.distortions.catalogue import DISTORTIONS

    return sorted(DISTORTIONS)


def build_cache(
    config: ScorerCacheConfig,
    out: str | Path,
    maps_net: RelationalMapNet,
    *,
    refresh_maps: bool = False,
    deep_features: DeepFeatures | None = None,
    log: bool = True,
) -> Path:
    """Write the cache folder ``out`` (resumable; see the module docstring).

    Raises:
        DataError: ``out`` holds a cache made with another config, or no photos were found.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "cache.json"
    record = {**asdict(config), "teachers": list(TEACHERS)}
    if manifest.is_file():
        existing = json.loads(manifest.read_text())
        fixed = {k: v for k, v in record.items() if k != "sets_per_photo"}
        if {k: existing.get(k) for k in fixed} != fixed:
            raise DataError(f"{out}: holds a cache made with another config ({manifest})")
    manifest.write_text(json.dumps(record, indent=2) + "\n")
    photos = cache_photos(config.data_root, config.split)
    if not photos:
        raise DataError(f"{config.data_root}: no photos in split {config.split!r}")
    maps_net = maps_net.eval()
    started = time.time()
    for set_index in range(config.sets_per_photo):
        for first in range(0, len(photos), config.photos_per_part):
            path = out / f"part-{first:05d}-{set_index:03d}.safetensors"
            teachers = None
            if path.is_file():
                existing_part = load_file(str(path))
                up_to_date = "signed" in existing_part and (
                    deep_features is None or "deep" in existing_part
                )
                if not refresh_maps and up_to_date:
                    continue
                teachers = existing_part["teachers"]  # they do not depend on the map network
            part = build_part(
                config, maps_net, photos[first : first + config.photos_per_part], first,
                set_index, teachers, deep_features,
            )
            partial = path.with_suffix(".tmp")
            save_file({k: v.contiguous() for k, v in part.items()}, str(partial))
            partial.replace(path)  # a part exists whole or not at all
            if log:
                print(
                    f"{config.split}: set {set_index} photos {first}+{config.photos_per_part}"
                    f" done ({time.time() - started:.0f} s)",
                    flush=True,
                )
    return out


def load_cache(folder: str | Path) -> dict[str, torch.Tensor]:
    """All parts of a cache folder concatenated (sorted by part name).

    Raises:
        DataError: no parts, or a part written by an older version (run the cache command
            again: it refreshes such parts in place, keeping their teachers).
    """
    folder = Path(folder)
    parts = sorted(folder.glob("part-*.safetensors"))
    if not parts:
        raise DataError(f"{folder}: no cache parts (run `reliqa train scorer-cache` first)")
    loaded = [load_file(str(path)) for path in parts]
    for path, part in zip(parts, loaded):
        if set(part) != set(loaded[0]) or "signed" not in part:
            raise DataError(
                f"{path}: written by an older reliqa (no maps at 1/4 resolution); run "
                "`reliqa train scorer-cache` on this folder again to refresh it"
            )
    return {key: torch.cat([part[key] for part in loaded]) for key in loaded[0]}
