"""Cached corpus for the relational scorer: engine pairs → map-network output + teachers.

The scorer reads only pooled statistics of the frozen map network's output
(:func:`~reliqa.models.relational_features.map_statistic_sums`), so the expensive part (the engine, the
map network, the teacher metrics) runs once and the scorer then trains in minutes on the cache.

One cache folder per split of ``../shared/data/pristine``:

- ``train``: the engine's training photos;
- ``validation``: the validation half of the held-out photos
  (:func:`reliqa.training.relational.held_out_halves`), which chooses hyper-parameters and
  checkpoints. The evaluation half is left to ``benchmarks/relational_quality.py``.

Each photo gives ``sets_per_photo`` ordinal sets (one random crop, one mix of distortions,
``levels`` versions at strictly rising intensity, never swapped; the odd-numbered sets have a
single distortion type, the even-numbered up to three). Per version the cache holds:

- ``signed`` (9, C/4, C/4) float16: the frozen map network's signed maps u = 2(m − 0.5) at
  its native 1/4 resolution, and ``activity`` (1, C/4, C/4) float16, the texture activity of
  the pair (:func:`~reliqa.models.relational_features.masking_activity`). The scorer's statistics are
  computed from these at training time, so a change of pooling needs no new cache;
- ``similarity`` (2, C/4, C/4) float16: the pair's classical
  :func:`~reliqa.models.relational_features.similarity_channels` (for scorers with ``similarity``;
  cheap, so every part gets them, and a part written before them gets them appended);
- ``deep`` (5, 3), only in caches made with ``deep_features`` (for ``relational-plus``):
  the :func:`~reliqa.models.relational_features.deep_distances` of the pair;
- ``teacher.<name>`` (scalar per version) for every cached teacher: a classical
  full-reference metric (test = the version, reference = the clean crop) in its native
  direction; by default every candidate of :data:`TEACHER_CANDIDATES`, of which the scorer's
  consensus uses :data:`TEACHERS` (or its config's choice);
- ``set_id``, ``level`` (the ordinal set and the version's level: a within-set order that
  needs no teacher).

No human label is read. Work is written in parts of ``photos_per_part`` photos
(``part-<first photo>-<set>.safetensors``), each part a pure function of (seed, photo, set), and
a part computes only what it lacks:

- an interrupted run resumes where it stopped, and raising ``sets_per_photo`` later adds parts
  without recomputing the old ones;
- **teacher append**: asking for teachers the folder does not hold yet regenerates each part's
  engine pairs (checked against the stored levels) and adds only the new ``teacher.<name>``
  columns; the maps and deep distances stay (the expensive part);
- ``refresh_maps`` (a retrained map network) recomputes only the maps; teachers and deep
  distances do not depend on the map network.

``cache.json`` records the config, the teachers and :data:`FORMAT_VERSION`; a folder of
another format (format 2 held the teachers as one unnamed (N, T) column, so none could be
added) is refused with :class:`~reliqa.exceptions.DataError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_file

from reliqa.distortions import ordinal_set
from reliqa.distortions.dataset import batch_seed, random_scaled_crop, split_images
from reliqa.exceptions import DataError, InvalidInputError, UnknownNameError
from reliqa.io import load_image
from reliqa.metrics import create_metric, list_metrics, metric_name
from reliqa.models.relational import RelationalMapNet
from reliqa.models.relational_features import (
    DeepFeatures,
    deep_distances,
    map_statistic_sums,
    masking_activity,
    similarity_channels,
)
from reliqa.training.config import canonical_keys
from reliqa.training.relational import held_out_halves
from reliqa.verified import load_verified

CacheSplit = Literal["train", "validation"]

TEACHER_CANDIDATES: tuple[str, ...] = (
    "fsim", "gmsd", "vifp", "ms_ssim", "haarpsi", "mdsi", "vsi", "srsim", "dss"
)
"""Opinion-unaware teacher candidates a cache holds by default: the weight-free classical FR
metrics of the catalogue (no human label in them)."""

TEACHERS: tuple[str, ...] = ("fsim", "gmsd", "ms_ssim", "mdsi", "vsi", "srsim", "dss")
"""The scorer's teacher consensus: the candidates chosen by the label-free rule of
:func:`reliqa.training.relational_scorer.select_teachers` on the validation cache
(2026-12-07, ``benchmarks/results/relational_teachers_2026-12-07.json``: VIFp and HaarPSI
agree least with the others and stay out; docs/relational.md)."""

FORMAT_VERSION: int = 3
"""Recorded in ``cache.json``; a folder written by another format is refused, so kept columns
are never paired with differently generated pairs (2: the engine's own
:func:`~reliqa.distortions.dataset.random_scaled_crop`; 3: one named column per teacher,
``teacher.<name>``, so teachers can be appended)."""

TEACHER_PREFIX: str = "teacher."
"""Key prefix of a teacher column in a cache part."""

SCALE_RANGE: tuple[float, float] = (0.5, 1.0)
"""Downscale factors of the random crops (as the map network's training data)."""


@dataclass(frozen=True)
class ScorerCacheConfig:
    """What a cache folder holds (stored as ``cache.json``; a folder never mixes configs).

    Attributes:
        data_root: the pristine photos.
        split: which photos (see the module docstring).
        sets_per_photo: ordinal sets per photo.
        levels: versions per set.
        crop_size: crop side in pixels (multiple of 16; ≥ 176 for MS-SSIM's five scales;
            ``crop`` in older ``cache.json`` files).
        seed: base seed.
        photos_per_part: photos per written part.
    """

    data_root: str
    split: CacheSplit = "train"
    sets_per_photo: int = 2
    levels: int = 4
    crop_size: int = 256
    seed: int = 0
    photos_per_part: int = 8


def cache_photos(data_root: str | Path, split: CacheSplit) -> list[Path]:
    """The photos of one cache split, in a fixed order."""
    if split == "train":
        return split_images(data_root, "train")
    if split == "validation":
        return held_out_halves(data_root)[0]
    raise InvalidInputError(f"split must be train or validation, got {split!r}")


def in_chunks(
    function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    test: torch.Tensor,
    reference: torch.Tensor,
    chunk: int = 16,
) -> torch.Tensor:
    """``function`` of (test, reference) N pairs at a time ``chunk`` pairs, concatenated."""
    return torch.cat(
        [
            function(test[start : start + chunk], reference[start : start + chunk])
            for start in range(0, test.shape[0], chunk)
        ]
    )


@torch.inference_mode()
def low_resolution_maps(
    maps_net: RelationalMapNet, test: torch.Tensor, reference: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Signed maps and texture activity at 1/4 resolution, float16.

    Args:
        test, reference: (N, 3, C, C) with C a multiple of 16.

    Returns:
        ``signed`` (N, 9, C/4, C/4) and ``activity`` (N, 1, C/4, C/4).
    """
    signed = in_chunks(lambda t, r: torch.tanh(0.5 * maps_net.aligned_logits(t, r)), test, reference)
    return {"signed": signed.half(), "activity": masking_activity(test, reference).half()}


def statistics_of(cache: dict[str, torch.Tensor], similarity: bool = False) -> torch.Tensor:
    """The scorer's input (N, 9 + K, 2, C) from a cache's ``signed`` and ``activity``, and with
    ``similarity`` its ``similarity`` channels (K = 2; else K = 0).

    Raises:
        DataError: ``similarity`` is asked of a cache without that column.
    """
    signed, activity = cache["signed"].float(), cache["activity"].float()
    if similarity:
        if "similarity" not in cache:
            raise DataError(
                "the cache holds no 'similarity' column; run `reliqa train scorer-cache` on the "
                "same folder to append it (only the new column is computed)"
            )
        signed = torch.cat([signed, cache["similarity"].float()], dim=1)
    count = signed.shape[-1] * signed.shape[-2]
    return map_statistic_sums(signed, activity) / count


def teacher_names(names: Sequence[str]) -> tuple[str, ...]:
    """Registered spellings of teacher metrics, in order, without repeats.

    Raises:
        UnknownNameError: a name is not a metric of the catalogue.
    """
    canonical: list[str] = []
    for name in names:
        registered = metric_name(name)
        if registered is None:
            raise UnknownNameError(f"unknown teacher metric {name!r}")
        if registered not in canonical:
            canonical.append(registered)
    return tuple(canonical)


@torch.inference_mode()
def teacher_scores(
    test: torch.Tensor, reference: torch.Tensor, teachers: Sequence[str] = TEACHERS
) -> torch.Tensor:
    """Classical FR metrics of N pairs in their native direction: (N, 3, H, W) ×2 → (N, T)."""
    columns = [in_chunks(create_metric(name), test, reference).float() for name in teachers]
    return torch.stack(columns, dim=1)


def teacher_degradations(
    teachers: torch.Tensor, names: Sequence[str] = TEACHERS
) -> torch.Tensor:
    """(N, T) values of the metrics ``names`` in their native direction → (N, T), higher =
    more degraded (each metric's declared ``higher_is_better``)."""
    if teachers.shape[-1] != len(names):
        raise InvalidInputError(
            f"teachers have {teachers.shape[-1]} columns, expected {len(names)} ({list(names)})"
        )
    directions = {info.name: info.higher_is_better for info in list_metrics()}
    signs = torch.tensor([-1.0 if directions[name] else 1.0 for name in teacher_names(names)])
    return teachers * signs


def teacher_matrix(cache: dict[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """The columns ``teacher.<name>`` of a cache stacked in the order of ``names``: (N, T).

    Raises:
        DataError: the cache holds no column for a teacher (append it, see the module docstring).
    """
    missing = [name for name in names if TEACHER_PREFIX + name not in cache]
    if missing:
        raise DataError(
            f"the cache holds no teacher column for {missing}; append them with "
            f"`reliqa train scorer-cache --teachers {','.join(names)}` on the same folders "
            "(only the new columns are computed)"
        )
    return torch.stack([cache[TEACHER_PREFIX + name].float() for name in names], dim=1)


def engine_part(
    config: ScorerCacheConfig, photos: Sequence[Path], first_photo: int, set_index: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Set ``set_index`` of photos ``first_photo …``: a pure function of the seed.

    Returns:
        test (N, 3, C, C), reference (N, 3, C, C) and the labels ``level`` and ``set_id``
        (N,) each, N = photos × levels.
    """
    crops, versions, levels, set_ids = [], [], [], []
    for offset, path in enumerate(photos):
        photo_index = first_photo + offset
        generator = torch.Generator().manual_seed(
            batch_seed(config.seed, set_index, photo_index)
        )
        crop = random_scaled_crop(load_image(path)[0], config.crop_size, SCALE_RANGE, generator)[None]
        result = ordinal_set(
            crop, config.levels, max_distortions=1 if set_index % 2 else 3, generator=generator
        )
        crops.append(crop.expand(config.levels, -1, -1, -1))
        versions.append(result.versions[0])
        levels.append(result.levels[0])
        set_ids.append(photo_index * 1000 + set_index)
    labels = {
        "level": torch.cat(levels),
        "set_id": torch.tensor(set_ids).repeat_interleave(config.levels),
    }
    return torch.cat(versions), torch.cat(crops), labels


def build_part(
    config: ScorerCacheConfig,
    maps_net: RelationalMapNet,
    photos: Sequence[Path],
    first_photo: int,
    set_index: int,
    teachers: Sequence[str],
    existing: dict[str, torch.Tensor] | None = None,
    *,
    refresh_maps: bool = False,
    deep_features: DeepFeatures | None = None,
) -> dict[str, torch.Tensor] | None:
    """One part, computing only what ``existing`` (the part on disk, if any) lacks.

    Returns:
        The whole part, or None when ``existing`` already holds everything asked for.

    Raises:
        DataError: the engine no longer reproduces the stored pairs (their levels differ), so
            new columns would describe other pairs than the kept ones.
    """
    part = dict(existing or {})
    need_maps = "signed" not in part or refresh_maps
    missing = [name for name in teachers if TEACHER_PREFIX + name not in part]
    need_deep = deep_features is not None and "deep" not in part
    need_similarity = "similarity" not in part
    if not (need_maps or need_deep or need_similarity or missing):
        return None
    test, reference, labels = engine_part(config, photos, first_photo, set_index)
    if "level" in part and not torch.equal(part["level"], labels["level"]):
        raise DataError(
            f"set {set_index} of photos {first_photo}+: the engine no longer reproduces the "
            "cached pairs (levels differ); make a new cache folder"
        )
    part.update(labels)
    if need_maps:
        part.update(low_resolution_maps(maps_net, test, reference))
    if need_similarity:
        with torch.inference_mode():
            part["similarity"] = in_chunks(similarity_channels, test, reference).half()
    if deep_features is not None and need_deep:
        features = deep_features
        with torch.inference_mode():
            part["deep"] = in_chunks(
                lambda t, r: deep_distances(features, t, r), test, reference
            )
    if missing:
        values = teacher_scores(test, reference, missing)
        part.update({TEACHER_PREFIX + name: values[:, k] for k, name in enumerate(missing)})
    return part


def check_format(manifest: Path) -> dict[str, Any]:
    """The ``cache.json`` of a cache folder, refused unless it is of :data:`FORMAT_VERSION`.

    Raises:
        DataError: no manifest, or one of another format.
    """
    if not manifest.is_file():
        raise DataError(f"{manifest.parent}: no cache.json (not a scorer cache folder)")
    record: dict[str, Any] = json.loads(manifest.read_text())
    if record.get("format") != FORMAT_VERSION:
        raise DataError(
            f"{manifest.parent}: a scorer cache of format {record.get('format')}, this reliqa "
            f"reads format {FORMAT_VERSION} only (one named column per teacher, so teachers "
            "can be appended); make a new cache folder with `reliqa train scorer-cache`"
        )
    return record


def build_cache(
    config: ScorerCacheConfig,
    out: str | Path,
    maps_net: RelationalMapNet,
    *,
    teachers: Sequence[str] = TEACHER_CANDIDATES,
    refresh_maps: bool = False,
    deep_features: DeepFeatures | None = None,
    log: bool = True,
) -> Path:
    """Write the cache folder ``out`` (resumable, appendable; see the module docstring).

    Args:
        teachers: teacher metrics every part must hold; those an existing folder lacks are
            appended (the folder keeps the ones it has).

    Raises:
        DataError: ``out`` holds a cache of another format or config, or no photos were found.
        UnknownNameError: a teacher is not a metric of the catalogue.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "cache.json"
    names = teacher_names(teachers)
    record: dict[str, Any] = {**asdict(config), "format": FORMAT_VERSION}
    if manifest.is_file():
        existing = canonical_keys(check_format(manifest), str(manifest))  # old spellings too
        fixed = {k: v for k, v in record.items() if k != "sets_per_photo"}
        if {k: existing.get(k) for k in fixed} != fixed:
            raise DataError(f"{out}: holds a cache made with another config ({manifest})")
        kept = [str(name) for name in existing.get("teachers", [])]
        names = (*kept, *(name for name in names if name not in kept))
    record["teachers"] = list(names)
    manifest.write_text(json.dumps(record, indent=2) + "\n")
    photos = cache_photos(config.data_root, config.split)
    if not photos:
        raise DataError(f"{config.data_root}: no photos in split {config.split!r}")
    maps_net = maps_net.eval()
    started = time.time()
    for set_index in range(config.sets_per_photo):
        for first in range(0, len(photos), config.photos_per_part):
            path = out / f"part-{first:05d}-{set_index:03d}.safetensors"
            # our own file: no hash, but the one safetensors reader (reliqa.verified)
            on_disk = load_verified(path, None, what="cache part")[0] if path.is_file() else None
            part = build_part(
                config, maps_net, photos[first : first + config.photos_per_part], first,
                set_index, names, on_disk,
                refresh_maps=refresh_maps, deep_features=deep_features,
            )
            if part is None:
                continue
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

    Returns:
        ``signed``, ``activity``, ``similarity``, ``level``, ``set_id``, ``teacher.<name>``
        per teacher and, in ``--deep`` caches, ``deep`` (shapes in the module docstring; N
        versions in all).

    Raises:
        DataError: no manifest or one of another format, no parts, or parts that hold
            different columns (an interrupted append or ``--deep`` run: run the cache command
            on this folder again to complete it).
    """
    folder = Path(folder)
    record = check_format(folder / "cache.json")
    parts = sorted(folder.glob("part-*.safetensors"))
    if not parts:
        raise DataError(f"{folder}: no cache parts (run `reliqa train scorer-cache` first)")
    # our own files: no hash, but the one safetensors reader (reliqa.verified)
    loaded = [load_verified(path, None, what="cache part")[0] for path in parts]
    for path, part in zip(parts, loaded):
        if set(part) != set(loaded[0]):
            raise DataError(
                f"{path}: holds {sorted(part)}, {parts[0].name} holds {sorted(loaded[0])}; run "
                "`reliqa train scorer-cache` (with --deep if the other parts have 'deep', "
                f"--teachers {','.join(record.get('teachers', []))}) on this folder to complete it"
            )
    return {key: torch.cat([part[key] for part in loaded]) for key in loaded[0]}
