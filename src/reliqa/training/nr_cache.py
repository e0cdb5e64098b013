"""A cached corpus of distorted crops for the no-reference models, made once and reused.

``reliqa train nr-cache --out DIR`` runs the distortion engine (ordinal sets, the same recipe
as :mod:`reliqa.training.nr`) and the frozen ImageNet EfficientNet-Lite0 backbone once per
crop and stores, per shard, for every sample (the pristine crop and its K distorted versions):

- ``features`` (N, 4128) float16: :func:`reliqa.models.nr.pooled_stage_features`;
- ``severity`` (N,), ``direction`` (N,), ``prompts`` (N,), ``groups`` (N,) (content id, unique
  over the corpus), ``channel_severity`` (N, 9): the labels the objectives need
  (:func:`reliqa.training.nr.flatten_ordinal_batch`);
- ``pixels`` (N, 3, C, C) uint8 in every ``pixels_every``-th shard (for distilling the small
  model, or for fine-tuning the backbone on a GPU later).

Shards are ``shard_000000.safetensors``, … written atomically (temporary file, then rename), so
a run that is stopped at any moment resumes at the next missing shard; ``cache.json`` holds
the recipe and a second run with a different recipe is refused. ``val.safetensors`` holds the
fixed synthetic validation batches (HELD-OUT photos) in the same format. No human label is
read. The corpus lives outside the repository (a path given on the command line).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from reliqa.exceptions import InvalidInputError
from reliqa.training.prompts import channel_summary

CACHE_VERSION = 1
SHARD_PATTERN = "shard_{:06d}.safetensors"


@dataclass
class CacheRecipe:
    """How a corpus is made (stored as ``cache.json``; appending needs the same recipe)."""

    data: str = "../shared/data/pristine"
    crop_sizes: list[int] = field(default_factory=lambda: [224, 288])
    batch_size: int = 8
    batches_per_shard: int = 4
    levels: int = 4
    scale_range: list[float] = field(default_factory=lambda: [0.3, 1.0])
    max_distortions: int = 2
    pool: list[str] | None = None
    mask_families: dict[str, float] = field(
        default_factory=lambda: {"full": 0.75, "half": 0.15, "ellipse": 0.1}
    )
    seed: int = 0
    pixels_every: int = 4
    val_batches: int = 8
    val_batch_size: int = 16
    val_crop: int = 256
    backbone_sha256: str = ""
    version: int = CACHE_VERSION

    def __post_init__(self) -> None:
        if self.pool is None:
            from reliqa.training.nr import CAMERA_POOL

            self.pool = list(CAMERA_POOL)
        if not self.crop_sizes or min(self.crop_sizes) < 64:
            raise InvalidInputError(f"crop_sizes must be sizes ≥ 64, got {self.crop_sizes}")
        if self.batch_size < 2 or self.levels < 2 or self.batches_per_shard < 1:
            raise InvalidInputError("batch_size and levels must be ≥ 2, batches_per_shard ≥ 1")


def _labels(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Flatten an engine ordinal batch and derive the per-sample labels (no truth maps kept)."""
    from reliqa.training.nr import flatten_ordinal_batch
    from reliqa.training.prompts import load_prompt_bank

    flat = flatten_ordinal_batch(batch, load_prompt_bank())
    versions = batch["versions"]
    k = versions.shape[1]
    neutral = torch.full_like(batch["truth"][:, :1], 0.5)
    truth = torch.cat([neutral, batch["truth"]], dim=1).flatten(0, 1).float()
    channel_severity, _ = channel_summary(truth)
    levels = torch.cat([torch.zeros_like(batch["levels"][:, :1]), batch["levels"]], dim=1)
    return {
        "images": flat.images,
        "severity": flat.severity.float(),
        "direction": flat.direction.long(),
        "prompts": flat.prompts.long(),
        "groups": flat.groups.long(),
        "channel_severity": channel_severity.to(torch.float16),
        "levels": levels.flatten().float(),
        "version": torch.arange(k + 1).repeat(versions.shape[0]),
    }


def encode_batches(
    batches: Sequence[dict[str, torch.Tensor]],
    backbone: torch.nn.Module,
    *,
    group_offset: int,
    keep_pixels: bool,
    chunk: int = 40,
) -> dict[str, torch.Tensor]:
    """Engine batches → one shard's tensors (features computed in chunks of ``chunk``)."""
    from reliqa.models.nr import pooled_stage_features

    parts: list[dict[str, torch.Tensor]] = []
    offset = group_offset
    for batch in batches:
        labels = _labels(batch)
        images = labels.pop("images")
        labels["groups"] = labels["groups"] + offset
        offset = int(labels["groups"].max()) + 1
        with torch.inference_mode():
            features = torch.cat(
                [
                    pooled_stage_features(backbone, images[i : i + chunk])  # type: ignore[arg-type]
                    for i in range(0, images.shape[0], chunk)
                ]
            )
        labels["features"] = features.to(torch.float16)
        if keep_pixels:
            labels["pixels"] = images.mul(255).round().clamp(0, 255).to(torch.uint8)
        parts.append({k: v.cpu() for k, v in labels.items()})
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def write_shard(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Atomic write: a stopped run never leaves a half-written shard under the final name."""
    temporary = path.with_suffix(".tmp")
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(temporary),
        metadata={"meta": json.dumps(meta)},
    )
    os.replace(temporary, path)


def read_shard(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a shard (safetensors: no unpickling)."""
    return load_file(str(path))


def shard_paths(root: str | os.PathLike) -> list[Path]:
    """Complete shards of a corpus, in order."""
    return sorted(Path(root).glob("shard_*.safetensors"))


def _check_recipe(root: Path, recipe: CacheRecipe) -> None:
    manifest = root / "cache.json"
    wanted = asdict(recipe)
    if manifest.is_file():
        stored = json.loads(manifest.read_text())
        if stored != wanted:
            differing = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise InvalidInputError(
                f"{root} holds a corpus made with another recipe (differs in {differing}); "
                "use another --out folder"
            )
    else:
        root.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps(wanted, indent=2) + "\n")


def build_cache(
    root: str | os.PathLike,
    recipe: CacheRecipe,
    *,
    shards: int,
    max_minutes: float | None = None,
    threads: int = 2,
    backbone: torch.nn.Module | None = None,
    device: str | torch.device = "cpu",
    quiet: bool = False,
) -> dict[str, Any]:
    """Make (or extend) the corpus in ``root`` up to ``shards`` shards; resumable.

    Args:
        root: corpus folder (created); keep it outside the repository.
        recipe: what to make; must match an existing ``cache.json``.
        shards: total number of shards wanted (existing ones are kept).
        max_minutes: stop (after a complete shard) when this wall-clock budget is spent.
        threads: torch CPU threads.
        device: where the engine and the backbone run (``"cuda"`` on a GPU machine); the
            shards are written from CPU copies.
        backbone: the feature network (default: ImageNet EfficientNet-Lite0, needs the extra
            ``reliqa[pretrained]``); tests pass a small random one.

    Returns:
        Summary: shards present, made now, samples per second.
    """
    from reliqa.distortions.dataset import DistortionDataset, validation_batches
    from reliqa.models.efficientnet_lite import IMAGENET_SHA256, efficientnet_lite0

    torch.set_num_threads(threads)
    folder = Path(root)
    if backbone is None:
        backbone = efficientnet_lite0(pretrained=True, num_classes=0)
        recipe.backbone_sha256 = IMAGENET_SHA256
    target = torch.device(device)
    backbone = backbone.eval().to(target).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    _check_recipe(folder, recipe)
    options: dict[str, Any] = {
        "mode": "ordinal",
        "ordinal_levels": recipe.levels,
        "max_distortions": recipe.max_distortions,
        "pool": recipe.pool,
        "mask_families": recipe.mask_families,
    }
    if not (folder / "val.safetensors").is_file():
        raw = validation_batches(
            recipe.data,
            num_batches=recipe.val_batches,
            batch_size=recipe.val_batch_size,
            crop_size=recipe.val_crop,
            seed=12345,
            device=target,
            **options,
        )
        tensors = encode_batches(raw, backbone, group_offset=0, keep_pixels=True)
        write_shard(folder / "val.safetensors", tensors, {"split": "held_out"})
    datasets = [
        DistortionDataset(
            recipe.data,
            split="train",
            crop_size=crop,
            batch_size=recipe.batch_size,
            scale_range=(recipe.scale_range[0], recipe.scale_range[1]),
            seed=recipe.seed * 1000 + position,
            device=target,
            **options,
        )
        for position, crop in enumerate(recipe.crop_sizes)
    ]
    start = time.monotonic()
    made = samples = 0
    per_shard_groups = recipe.batches_per_shard * recipe.batch_size
    for index in range(shards):
        path = folder / SHARD_PATTERN.format(index)
        if path.is_file():
            continue
        if max_minutes is not None and time.monotonic() - start > 60.0 * max_minutes:
            break
        dataset = datasets[index % len(datasets)]
        first = (index // len(datasets)) * recipe.batches_per_shard
        raw = [dataset.make_batch(first + j) for j in range(recipe.batches_per_shard)]
        tensors = encode_batches(
            raw,
            backbone,
            group_offset=index * per_shard_groups,
            keep_pixels=recipe.pixels_every > 0 and index % recipe.pixels_every == 0,
        )
        write_shard(
            path,
            tensors,
            {"index": index, "crop": dataset.crop_size, "engine_batches": [first, recipe.batches_per_shard]},
        )
        made += 1
        samples += int(tensors["severity"].shape[0])
        if not quiet:
            rate = samples / max(time.monotonic() - start, 1e-9)
            print(f"shard {index}: {rate:.1f} samples/s", file=sys.stderr, flush=True)
    return {
        "root": str(folder),
        "shards": len(shard_paths(folder)),
        "made": made,
        "samples_per_s": samples / max(time.monotonic() - start, 1e-9),
    }


class CachedCorpus:
    """The corpus in memory (features and labels, not pixels) for fast training.

    ``sample(groups, generator)`` draws whole contents (all K+1 versions of each) so that the
    within-content objectives see complete ordinal sets.
    """

    def __init__(self, root: str | os.PathLike, *, limit: int | None = None) -> None:
        paths = shard_paths(root)[:limit]
        if not paths:
            raise InvalidInputError(f"{root}: no cached shards (make them with `reliqa train nr-cache`)")
        keys = ("features", "severity", "direction", "prompts", "groups")
        columns: dict[str, list[torch.Tensor]] = {k: [] for k in keys}
        for path in paths:
            shard = read_shard(path)
            for key in keys:
                columns[key].append(shard[key])
        self.features = torch.cat(columns["features"])
        self.severity = torch.cat(columns["severity"])
        self.direction = torch.cat(columns["direction"])
        self.prompts = torch.cat(columns["prompts"])
        self.groups = torch.cat(columns["groups"])
        self.shards = len(paths)
        self.per_group = int((self.groups == self.groups[0]).sum())
        if self.groups.shape[0] % self.per_group:
            raise InvalidInputError(f"{root}: contents do not all have {self.per_group} versions")
        self.num_groups = self.groups.shape[0] // self.per_group

    def rows(self, group_index: torch.Tensor) -> torch.Tensor:
        """Row indices of the samples of contents ``group_index`` (positions 0..num_groups-1)."""
        return (group_index[:, None] * self.per_group + torch.arange(self.per_group)).flatten()

    def sample(self, groups: int, generator: torch.Generator) -> torch.Tensor:
        """Row indices of ``groups`` random contents (all their versions)."""
        chosen = torch.randperm(self.num_groups, generator=generator)[:groups]
        return self.rows(chosen)


__all__ = [
    "CacheRecipe",
    "CachedCorpus",
    "build_cache",
    "encode_batches",
    "read_shard",
    "shard_paths",
    "write_shard",
]
