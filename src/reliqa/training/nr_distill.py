"""Distil ``hirqa`` (teacher, pretrained backbone) into ``hirqa-s`` (student, 0.19 M parameters).

The student sees the pixel crops the cached corpus keeps (synthetic versions and their pristine
crops, :mod:`reliqa.training.nr_cache`); the teacher's scores for them come from the cached
features through the teacher's head (no backbone pass). Objective per step, on ``groups`` whole
contents:

    L = distillation_loss(student, teacher)            (match + pairwise order, any pair)
        + weight_synthetic · L_rank(within content, severity) + weight_anchor · L_anchor

so the student learns the teacher's cross-content judgement and keeps the synthetic order.
No human label anywhere; the kept checkpoint is the one with the best synthetic validation
selection on the corpus's held-out batches.

    reliqa train nr-distill --config configs/nr_hirqa_s_distill_cpu.json
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reliqa.exceptions import InvalidInputError
from reliqa.models.nr import HIRQA_CONFIGS, PRETRAINED_CONFIG, HiRQA, PretrainedHiRQA
from reliqa.models.weights import load_shipped
from reliqa.training.common import (
    Checkpointer,
    MetricsLog,
    config_to_dict,
    cosine_lr,
    git_commit,
    load_config,
    module_state_from_checkpoint,
    seed_everything,
    set_lr,
)
from reliqa.training.nr import validation_metrics
from reliqa.training.nr_cache import read_shard, shard_paths
from reliqa.training.nr_head import head_forward
from reliqa.training.nr_losses import distillation_loss, group_mask, level_anchor_loss, ranking_loss


@dataclass
class NRDistillConfig:
    """A ``hirqa-s`` distillation run (JSON: configs/nr_hirqa_s_distill_cpu.json)."""

    cache: str = "/work/nr_cache/lite0_v1"
    teacher: str = "hirqa"
    init_from: str | None = "hirqa-s"
    run_dir: str = "runs/nr_hirqa_s_distill"
    steps: int = 1500
    max_minutes: float | None = None
    groups: int = 8
    crop: int = 192
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 2
    val_every: int = 100
    checkpoint_every: int = 100
    log_every: int = 25
    weight_match: float = 1.0
    weight_rank: float = 1.0
    margin: float = 1.0
    weight_synthetic: float = 0.5
    weight_anchor: float = 0.0
    replay: bool = True
    workers: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or self.groups < 2 or self.crop < 32:
            raise InvalidInputError("steps must be ≥ 1, groups ≥ 2 and crop ≥ 32")


class EngineReplay(torch.utils.data.IterableDataset):
    """Re-makes the corpus's crops with the engine, one engine batch at a time, in random order.

    A shard is ``batches_per_shard`` engine batches of a known number and crop size (the
    recipe in ``cache.json``) and the engine is deterministic, so every shard's crops can be
    made again exactly (tested against the stored pixels) without storing them: the student
    then sees every content of the corpus, not only the shards that kept pixels. Yields
    ``{"pixels": (B·(K+1), 3, C, C) uint8, "shard": (), "batch": ()}``.
    """

    def __init__(self, cache: str, shards: list[int], seed: int) -> None:
        super().__init__()
        from reliqa.training.nr_cache import CacheRecipe

        self.recipe = CacheRecipe(**json.loads((Path(cache) / "cache.json").read_text()))
        self.shards = shards
        self.seed = seed

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        from reliqa.distortions.dataset import DistortionDataset
        from reliqa.training.nr import flatten_ordinal_batch
        from reliqa.training.prompts import load_prompt_bank

        recipe = self.recipe
        bank = load_prompt_bank()
        datasets = [
            DistortionDataset(
                recipe.data, split="train", crop_size=crop, batch_size=recipe.batch_size,
                scale_range=(recipe.scale_range[0], recipe.scale_range[1]),
                seed=recipe.seed * 1000 + position, mode="ordinal",
                ordinal_levels=recipe.levels, max_distortions=recipe.max_distortions,
                pool=recipe.pool, mask_families=recipe.mask_families,
            )
            for position, crop in enumerate(recipe.crop_sizes)
        ]
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            shard = self.shards[int(torch.randint(len(self.shards), (), generator=generator))]
            batch = int(torch.randint(recipe.batches_per_shard, (), generator=generator))
            dataset = datasets[shard % len(datasets)]
            number = (shard // len(datasets)) * recipe.batches_per_shard + batch
            flat = flatten_ordinal_batch(dataset.make_batch(number), bank)
            yield {
                "pixels": flat.images.mul(255).round().clamp(0, 255).to(torch.uint8),
                "shard": torch.tensor(shard),
                "batch": torch.tensor(batch),
            }


@dataclass
class ShardLabels:
    """Per shard: severity, content ids and teacher scores (from the cached features)."""

    severity: dict[int, torch.Tensor]
    groups: dict[int, torch.Tensor]
    teacher: dict[int, torch.Tensor]


def shard_labels(cache: str, teacher: PretrainedHiRQA) -> ShardLabels:
    """Teacher scores of every cached sample (head on the cached features), by shard index."""
    labels = ShardLabels({}, {}, {})
    for path in shard_paths(cache):
        index = int(path.stem.split("_")[1])
        shard = read_shard(path)
        with torch.inference_mode():
            scores, _, _ = head_forward(teacher, shard["features"].float())
        labels.severity[index] = shard["severity"].float()
        labels.groups[index] = shard["groups"]
        labels.teacher[index] = scores.clone()
    return labels


def _random_window(block: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """One random ``crop`` × ``crop`` window of square ``block`` (the same for all its images),
    flipped horizontally with probability 1/2."""
    size = block.shape[-1]
    top = int(torch.randint(size - crop + 1, (), generator=generator)) if size > crop else 0
    left = int(torch.randint(size - crop + 1, (), generator=generator)) if size > crop else 0
    block = block[..., top : top + crop, left : left + crop]
    if bool(torch.rand((), generator=generator) < 0.5):
        block = block.flip(-1)
    return block


def _replay_batch(
    item: dict[str, torch.Tensor], labels: ShardLabels, crop: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A replayed engine batch with its labels; one random ``crop`` window per content."""
    shard, batch = int(item["shard"]), int(item["batch"])
    pixels = item["pixels"]
    n = pixels.shape[0]
    rows = slice(batch * n, (batch + 1) * n)
    groups = labels.groups[shard][rows]
    per_group = int((groups == groups[0]).sum())
    blocks = []
    for start in range(0, n, per_group):
        blocks.append(_random_window(pixels[start : start + per_group], crop, generator))
    return (
        torch.cat(blocks).float().div_(255.0),
        labels.severity[shard][rows],
        groups,
        labels.teacher[shard][rows],
    )


def load_distill_config(path: str, **overrides: Any) -> NRDistillConfig:
    """Read a JSON distillation config; ``overrides`` win when not None."""
    return load_config(path, NRDistillConfig, **overrides)


def load_teacher(source: str) -> PretrainedHiRQA:
    """The teacher: a shipped model name (``"hirqa"``) or a head run's checkpoint file."""
    architecture = dict(PRETRAINED_CONFIG)
    if source == "hirqa":
        state = load_shipped("hirqa")[0]
    else:
        state = module_state_from_checkpoint(source, "model")
        run_config = Path(source).parent.parent / "config.json"  # RUN/checkpoints/best…
        if run_config.is_file():
            architecture["feature_set"] = json.loads(run_config.read_text()).get(
                "feature_set", "all"
            )
    model = PretrainedHiRQA(**architecture)  # type: ignore[arg-type]
    model.load_state_dict(state)
    return model.eval()


@dataclass
class PixelPool:
    """Pixel crops of the corpus with their labels and the teacher's scores."""

    pixels: list[torch.Tensor]
    severity: list[torch.Tensor]
    groups: list[torch.Tensor]
    teacher: list[torch.Tensor]
    per_group: int


def pixel_pool(cache: str, teacher: PretrainedHiRQA) -> PixelPool:
    """Every shard that kept pixels, with teacher scores from its cached features."""
    pool = PixelPool([], [], [], [], 0)
    for path in shard_paths(cache):
        shard = read_shard(path)
        if "pixels" not in shard:
            continue
        with torch.inference_mode():
            scores, _, _ = head_forward(teacher, shard["features"].float())
        pool.pixels.append(shard["pixels"])
        pool.severity.append(shard["severity"].float())
        pool.groups.append(shard["groups"])
        pool.teacher.append(scores.clone())
        pool.per_group = int((shard["groups"] == shard["groups"][0]).sum())
    if not pool.pixels:
        raise InvalidInputError(f"{cache}: no shard keeps pixels (recipe pixels_every)")
    return pool


def _draw(
    pool: PixelPool, groups: int, crop: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``groups`` contents from one random pixel shard, one random ``crop`` window per content
    (the same window for all its versions), random horizontal flip."""
    shard = int(torch.randint(len(pool.pixels), (), generator=generator))
    pixels = pool.pixels[shard]
    contents = pixels.shape[0] // pool.per_group
    chosen = torch.randperm(contents, generator=generator)[:groups]
    rows = (chosen[:, None] * pool.per_group + torch.arange(pool.per_group)).flatten()
    images = []
    for content in range(chosen.shape[0]):
        block = pixels[rows[content * pool.per_group : (content + 1) * pool.per_group]]
        images.append(_random_window(block, crop, generator))
    return (
        torch.cat(images).float().div_(255.0),
        pool.severity[shard][rows],
        pool.groups[shard][rows],
        pool.teacher[shard][rows],
    )


@torch.inference_mode()
def student_validation(student: HiRQA, val: dict[str, torch.Tensor]) -> dict[str, float]:
    """Synthetic validation of a pixel model on the cached held-out batches."""
    student.eval()
    images = val["pixels"].float().div(255.0)
    scores = torch.cat([student(images[i : i + 40]) for i in range(0, images.shape[0], 40)])
    return validation_metrics(
        scores.float().numpy(), val["severity"].float().numpy(), val["groups"].numpy(),
        val["direction"].numpy(),
    )


def train_nr_distill(
    config: NRDistillConfig, *, resume: bool = True, quiet: bool = False
) -> dict[str, Any]:
    """Run (or resume) a distillation; returns a summary with the best validation metrics."""
    torch.set_num_threads(config.threads)
    seed_everything(config.seed, 0)
    run_dir = Path(config.run_dir)
    teacher = load_teacher(config.teacher)
    if config.replay:
        labels = shard_labels(config.cache, teacher)
        replay = iter(
            torch.utils.data.DataLoader(
                EngineReplay(config.cache, sorted(labels.teacher), config.seed + 1),
                batch_size=None, num_workers=config.workers,
                prefetch_factor=4 if config.workers else None,
            )
        )
        stored_shards = len(labels.teacher)
    else:
        pool = pixel_pool(config.cache, teacher)
        stored_shards = len(pool.pixels)
    val = read_shard(Path(config.cache) / "val.safetensors")
    student = HiRQA(**HIRQA_CONFIGS["hirqa-s"])  # type: ignore[arg-type]
    decay = [p for p in student.parameters() if p.ndim > 1]
    no_decay = [p for p in student.parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    checkpointer = Checkpointer(run_dir / "checkpoints")
    state = checkpointer.resume({"model": student}, {"adamw": optimizer}) if resume else None
    start = state.step if state else 0
    if state is None and config.init_from:
        if config.init_from == "hirqa-s":
            student.load_state_dict(load_shipped("hirqa-s")[0])
        else:
            student.load_state_dict(module_state_from_checkpoint(config.init_from, "model"))
    best = state.extra.get("best", -math.inf) if state else -math.inf
    elapsed = float(state.extra.get("elapsed_s", 0.0)) if state else 0.0
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(
        json.dumps(
            {**config_to_dict(config), "model": "hirqa-s", "data": config.cache,
             "pixel_shards": stored_shards},
            indent=2,
        ) + "\n"
    )
    summary: dict[str, Any] = {"start_step": start, "pixel_shards": stored_shards}
    generator = torch.Generator().manual_seed(config.seed * 104729 + start)
    clock = time.monotonic()
    with MetricsLog(run_dir / "metrics.jsonl") as log:
        if start == 0:
            initial = student_validation(student, val)
            log.write(0, "val", **initial)
            summary["initial_val"] = initial
        for step in range(start, config.steps):
            student.train()
            if config.replay:
                images, severity, groups, target = _replay_batch(
                    next(replay), labels, config.crop, generator
                )
            else:
                images, severity, groups, target = _draw(
                    pool, config.groups, config.crop, generator
                )
            progress = step
            stop = False
            if config.max_minutes:
                used = (elapsed + time.monotonic() - clock) / (60.0 * config.max_minutes)
                progress = max(step, int(used * config.steps))
                stop = used >= 1.0
            set_lr(optimizer, cosine_lr(progress, config.steps, config.lr, config.warmup))
            scores = student(images)
            terms = distillation_loss(
                scores, target, weight_match=config.weight_match,
                weight_rank=config.weight_rank, margin=config.margin,
            )
            same = group_mask(groups)
            terms["synthetic"] = ranking_loss(scores, severity, same, 0.5)
            terms["anchor"] = level_anchor_loss(scores, severity)
            total = (
                terms["total"]
                + config.weight_synthetic * terms["synthetic"]
                + config.weight_anchor * terms["anchor"]
            )
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
            optimizer.step()
            done = step + 1
            last = done == config.steps or stop
            if done % config.log_every == 0 or last:
                log.write(
                    done, "train", lr=optimizer.param_groups[0]["lr"], loss=float(total.detach()),
                    steps_per_s=(done - start) / max(time.monotonic() - clock, 1e-9),
                    **{k: float(v.detach()) for k, v in terms.items()},
                )
            if done % config.val_every == 0 or last:
                metrics = student_validation(student, val)
                log.write(done, "val", **metrics)
                if metrics["selection"] > best:
                    best = metrics["selection"]
                    checkpointer.save(
                        done, {"model": student}, {}, {"best": best, "val": metrics}, tag="best"
                    )
                    summary["best_val"] = {"step": done, **metrics}
                if not quiet:
                    print(
                        f"step {done}: val selection {metrics['selection']:.4f}",
                        file=sys.stderr, flush=True,
                    )
            if done % config.checkpoint_every == 0 or last:
                spent = elapsed + time.monotonic() - clock
                checkpointer.save(
                    done, {"model": student}, {"adamw": optimizer},
                    {"best": best, "elapsed_s": spent},
                )
            if stop:
                summary["stopped_at_step"] = done
                break
    summary.update(
        {
            "best_selection": best if math.isfinite(best) else None,
            "run_dir": str(run_dir),
            "seconds": time.monotonic() - clock,
            "commit": git_commit(),
        }
    )
    return summary


__all__ = [
    "EngineReplay",
    "NRDistillConfig",
    "load_distill_config",
    "load_teacher",
    "pixel_pool",
    "student_validation",
    "train_nr_distill",
]
