"""Training of the no-reference models ``hirqa`` / ``hirqa-s`` on synthetic ordinal sets only.

One step: B pristine crops from the engine's :class:`~reliqa.distortions.dataset.DistortionDataset`
(ordinal mode), each with K versions at strictly rising level of ONE random mix, plus the pristine
crop itself as a level-0 version. Every sample gets an overall severity from its truth maps
(:func:`~reliqa.training.prompts.overall_severity`), and the objective is the weighted sum of
the terms of :mod:`reliqa.training.nr_losses` (:mod:`reliqa.training.nr_objective`; docs/nr.md):

- ``rank``: first-order ranking within one content;
- ``cross``: first-order ranking ACROSS contents between samples whose dominant distortion has
  the same direction (comparable kinds of damage);
- ``higher``: pair-of-pairs ranking within one content;
- ``embed``: embedding distance consistency;
- ``text``: InfoNCE alignment with the stored prompt embeddings;
- ``anchor``: cross-content anchor, score ≈ 1 − severity.

Human opinion scores are never read. The checkpoint kept as ``best`` is the one with the
highest synthetic validation score (held-out photos, fixed batches).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reliqa.exceptions import InvalidInputError
from reliqa.models.hirqa import HIRQA_CONFIGS, HiRQA
from reliqa.models.weights import load_shipped
from reliqa.training.checkpoint import Checkpointer, module_state_from_checkpoint
from reliqa.training.common import (
    MetricsLog,
    StepTimer,
    barrier,
    cleanup_distributed,
    config_to_dict,
    cosine_lr,
    git_commit,
    load_config,
    mean_across_ranks,
    seed_everything,
    set_lr,
    setup_distributed,
    training_progress,
    wrap_ddp,
)
from reliqa.training.nr_objective import (
    FlatBatch,
    ObjectiveSettings,
    flatten_ordinal_batch,
    nr_objective,
    synthetic_validation,
)
from reliqa.training.prompts import (
    PromptBank,
    load_prompt_bank,
    load_prompt_embeddings,
)

CAMERA_POOL: tuple[str, ...] = (
    "gaussian_blur",
    "lens_blur",
    "motion_blur",
    "unsharp_mask",
    "high_boost_sharpen",
    "gaussian_noise",
    "chroma_noise",
    "shot_noise",
    "speckle_noise",
    "impulse_noise",
    "brighten",
    "darken",
    "gamma_brighten",
    "gamma_darken",
    "exposure_up",
    "exposure_down",
    "linear_contrast_up",
    "linear_contrast_down",
    "nonlinear_contrast_up",
    "nonlinear_contrast_down",
    "saturation_up",
    "saturation_down",
    "jpeg",
    "webp",
    "banding",
    "pixelation",
)
"""Default distortion pool: what cameras and their processing do (docs/nr.md). Left out:
white-balance casts, JPEG 2000, palette quantisation, jitter and lost blocks (transmission
damage) — rarer in photos, and the last three dominate the engine's CPU time."""


@dataclass
class NRTrainConfig(ObjectiveSettings):
    """Everything a no-reference training run depends on (JSON config; see configs/nr_*.json)."""

    model: str = "hirqa-s"
    data: str = "../shared/data/pristine"
    run_dir: str = "runs/nr_hirqa_s"
    steps: int = 2000
    max_minutes: float | None = None
    init_from: str | None = None
    batch_size: int = 8
    levels: int = 4
    crop_sizes: list[int] = field(default_factory=lambda: [192, 256])
    scale_range: list[float] = field(default_factory=lambda: [0.3, 1.0])
    max_distortions: int = 2
    pool: list[str] | None = field(default_factory=lambda: list(CAMERA_POOL))
    mask_families: dict[str, float] = field(
        default_factory=lambda: {"full": 0.75, "half": 0.15, "ellipse": 0.1}
    )
    engine: str = "workers"
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 100
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    workers: int = 2
    threads: int = 2
    bf16: bool = True
    val_every: int = 250
    val_batches: int = 4
    val_batch_size: int = 16
    val_crop: int = 256
    checkpoint_every: int = 250
    log_every: int = 25

    def __post_init__(self) -> None:
        if self.model not in HIRQA_CONFIGS:
            raise InvalidInputError(
                f"model must be one of {sorted(HIRQA_CONFIGS)}, got {self.model!r}"
            )
        if self.steps < 1 or self.batch_size < 2 or self.levels < 2:
            raise InvalidInputError("steps must be ≥ 1, batch_size ≥ 2 and levels ≥ 2")
        if self.engine not in ("workers", "main"):
            raise InvalidInputError(f"engine must be 'workers' or 'main', got {self.engine!r}")
        if not self.crop_sizes or min(self.crop_sizes) < 64:
            raise InvalidInputError(
                f"crop_sizes must be a non-empty list of sizes ≥ 64, got {self.crop_sizes}"
            )


class _TrainingView(nn.Module):
    """DDP calls ``forward``: this one returns everything the objective needs."""

    def __init__(self, model: HiRQA) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        embedding = self.model.embed(images)
        scores = torch.sigmoid(self.model.score_logits(embedding).float())
        return scores, embedding.float(), self.model.text_projection(embedding).float()


def _loaders(
    config: NRTrainConfig, epoch: int, device: torch.device
) -> list[Iterator[dict[str, torch.Tensor]]]:
    """One endless batch stream per crop size. ``engine="workers"``: the distortion engine runs
    on CPU in ``workers`` DataLoader processes (shared among the crop sizes); ``"main"``: it
    runs in this process on the training device (fast on a GPU)."""
    from torch.utils.data import DataLoader

    from reliqa.distortions.dataset import DistortionDataset

    on_device = config.engine == "main"
    iterators = []
    for position, crop in enumerate(config.crop_sizes):
        dataset = DistortionDataset(
            config.data,
            split="train",
            crop_size=crop,
            batch_size=config.batch_size,
            mode="ordinal",
            ordinal_levels=config.levels,
            scale_range=(config.scale_range[0], config.scale_range[1]),
            max_distortions=config.max_distortions,
            pool=config.pool,
            mask_families=config.mask_families,
            seed=config.seed * 1000 + position,
            device=device if on_device else "cpu",
        )
        dataset.set_epoch(epoch)
        dataset.preload()
        workers = (
            0
            if on_device
            else max(1, config.workers // len(config.crop_sizes))
            if config.workers
            else 0
        )
        loader = DataLoader(
            dataset,
            batch_size=None,
            num_workers=workers,
            persistent_workers=workers > 0,
            prefetch_factor=4 if workers else None,
            pin_memory=torch.cuda.is_available() and not on_device,
        )
        iterators.append(iter(loader))
    return iterators  # type: ignore[return-value]


def validation_set(
    config: NRTrainConfig, bank: PromptBank, device: torch.device
) -> list[FlatBatch]:
    """The fixed synthetic validation batches (held-out photos) of a config, flattened; made on
    ``device`` when the engine runs in the main process (same recipe, float rounding aside)."""
    from reliqa.distortions.dataset import validation_batches

    raw = validation_batches(
        config.data,
        num_batches=config.val_batches,
        batch_size=config.val_batch_size,
        crop_size=config.val_crop,
        mode="ordinal",
        seed=12345,
        ordinal_levels=config.levels,
        max_distortions=config.max_distortions,
        pool=config.pool,
        mask_families=config.mask_families,
        device=device if config.engine == "main" else "cpu",
    )
    return [flatten_ordinal_batch(batch, bank) for batch in raw]


def _optimizer(model: HiRQA, config: NRTrainConfig) -> torch.optim.Optimizer:
    """AdamW with weight decay on the weight matrices and kernels only (not biases, norms)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )


def _load_initial_weights(model: HiRQA, init_from: str) -> None:
    """Continue from other weights (a fresh optimiser, schedule and step count): a shipped
    model's name, or a training checkpoint."""
    if init_from in HIRQA_CONFIGS:
        model.load_state_dict(load_shipped(init_from)[0])
    else:
        model.load_state_dict(module_state_from_checkpoint(init_from, "model"))


def _train_step(
    view: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: FlatBatch,
    prompt_embeddings: torch.Tensor,
    config: NRTrainConfig,
    use_bf16: bool,
) -> dict[str, torch.Tensor]:
    """One optimiser step on a flattened batch; returns the loss terms."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
        scores, embedding, projected = view(batch.images)
    terms = nr_objective(scores, embedding, projected, batch, prompt_embeddings, config)
    optimizer.zero_grad(set_to_none=True)
    terms["total"].backward()
    torch.nn.utils.clip_grad_norm_(view.parameters(), config.grad_clip)
    optimizer.step()
    return terms


def _print_validation(step: int, metrics: dict[str, float]) -> None:
    print(
        f"step {step}: val selection {metrics['selection']:.4f} "
        f"(within {metrics['srcc_within']:.3f}, all {metrics['srcc_all']:.3f})",
        file=sys.stderr,
        flush=True,
    )


def _scheduled_step(step: int, config: NRTrainConfig, spent_s: float) -> tuple[int, bool]:
    """The step the cosine schedule is at, and whether ``max_minutes`` is spent: the schedule
    follows whichever budget (steps, minutes) runs out first."""
    if not config.max_minutes:
        return step, False
    used = spent_s / (60.0 * config.max_minutes)
    return max(step, int(used * config.steps)), used >= 1.0


def train_nr(config: NRTrainConfig, *, resume: bool = True, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) a training; returns a summary with the best validation metrics.

    Single process, or one process per GPU under ``torchrun`` (DDP); only rank 0 writes.
    """
    context = setup_distributed(config.device)
    torch.set_num_threads(config.threads)
    seed_everything(config.seed, 0)  # same initial weights on every rank
    run_dir = Path(config.run_dir)
    model = HiRQA(**HIRQA_CONFIGS[config.model]).to(context.device)  # type: ignore[arg-type]
    view = wrap_ddp(_TrainingView(model), context)
    optimizer = _optimizer(model, config)
    checkpointer = Checkpointer(run_dir / "checkpoints", enabled=context.is_main)
    state = checkpointer.resume({"model": model}, {"adamw": optimizer}) if resume else None
    start = state.step if state else 0
    if state is None and config.init_from:
        _load_initial_weights(model, config.init_from)
    best = state.extra.get("best", -math.inf) if state else -math.inf
    seed_everything(config.seed + start, context.rank)
    bank = load_prompt_bank()
    prompt_embeddings = load_prompt_embeddings(bank).to(context.device)
    validation = validation_set(config, bank, context.device) if context.is_main else []
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
    iterators = _loaders(config, epoch=start, device=context.device)
    use_bf16 = config.bf16 and context.device.type == "cuda"
    timer = StepTimer()
    elapsed = float(state.extra.get("elapsed_s", 0.0)) if state else 0.0
    clock = time.monotonic()
    summary: dict[str, Any] = {"start_step": start}
    show = context.is_main and not quiet
    with (
        MetricsLog(run_dir / "metrics.jsonl", enabled=context.is_main) as log,
        training_progress(
            config.steps, start, description=f"train {config.model}", enabled=show
        ) as progress,
    ):
        for step in range(start, config.steps):
            timer.start()
            view.train()
            raw = next(iterators[step % len(iterators)])
            batch = flatten_ordinal_batch(
                {k: v.to(context.device, non_blocking=True) for k, v in raw.items()}, bank
            )
            progress_step, stopped_early = _scheduled_step(
                step, config, elapsed + time.monotonic() - clock
            )
            set_lr(optimizer, cosine_lr(progress_step, config.steps, config.lr, config.warmup))
            terms = _train_step(view, optimizer, batch, prompt_embeddings, config, use_bf16)
            timer.stop()
            done = step + 1
            stopped_early = bool(
                mean_across_ranks({"stop": float(stopped_early)}, context)["stop"] > 0
            )
            last = done == config.steps or stopped_early
            if done % config.log_every == 0 or last:
                values = mean_across_ranks(
                    {k: float(v.detach()) for k, v in terms.items()}, context
                )
                log.write(
                    done,
                    "train",
                    lr=optimizer.param_groups[0]["lr"],
                    steps_per_s=timer.rate(),
                    **values,
                )
                progress.advance(config.log_every, loss=values["total"])
            if context.is_main and (done % config.val_every == 0 or last):
                metrics = synthetic_validation(model, validation, context.device)
                log.write(done, "val", **metrics)
                if metrics["selection"] > best:
                    best = metrics["selection"]
                    checkpointer.save(
                        done, {"model": model}, {}, {"best": best, "val": metrics}, tag="best"
                    )
                    summary["best_val"] = {"step": done, **metrics}
                if not quiet and not sys.stderr.isatty():  # a log file: one line per validation
                    _print_validation(done, metrics)
            if done % config.checkpoint_every == 0 or last:
                spent = elapsed + time.monotonic() - clock
                checkpointer.save(
                    done, {"model": model}, {"adamw": optimizer}, {"best": best, "elapsed_s": spent}
                )
            barrier(context)
            if stopped_early:
                summary["stopped_at_step"] = done
                break
    cleanup_distributed()
    summary.update(
        {
            "best_selection": best if math.isfinite(best) else None,
            "steps": config.steps,
            "run_dir": str(run_dir),
            "commit": git_commit(),
            "rank": context.rank,
        }
    )
    return summary


def load_nr_config(path: str, **overrides: Any) -> NRTrainConfig:
    """Read a JSON training config (unknown keys are an error); ``overrides`` win when not None."""
    return load_config(path, NRTrainConfig, **overrides)


def export_nr_weights(
    run_dir: str | os.PathLike,
    name: str,
    *,
    command: str,
    data_note: str | None = None,
    weights_dir: Path | None = None,
) -> Path:
    """Ship a run's best checkpoint as ``<name>.safetensors`` + model card (hash-checked on load).

    The card records the training command, the resolved config (data, seed, …), the commit,
    the synthetic validation metrics that chose the checkpoint; measured results are added by
    ``benchmarks/nr_quality.py`` and ``benchmarks/nr_speed.py``.
    """
    from reliqa.models.weights import WEIGHTS_DIR, save_with_card
    from reliqa.training.checkpoint import read_checkpoint

    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text())
    if config["model"] != name:
        raise InvalidInputError(f"{run}: the run trained {config['model']!r}, not {name!r}")
    tensors, meta = read_checkpoint(run / "checkpoints" / "best.safetensors")
    state = {
        k[len("model/model/") :]: v for k, v in tensors.items() if k.startswith("model/model/")
    }
    HiRQA(**HIRQA_CONFIGS[name]).load_state_dict(state)  # type: ignore[arg-type]  # refuse a state that does not fit
    card = {
        "model": name,
        "architecture": HIRQA_CONFIGS[name],
        "parameters": sum(  # the inference path: no batch-norm statistics, no text head
            int(v.numel())
            for k, v in state.items()
            if "running" not in k and "num_batches" not in k and not k.startswith("text_projection")
        ),
        "training_command": command,
        "training_data": data_note
        or f"synthetic ordinal sets from {config['data']} (train split); no human labels",
        "seed": config["seed"],
        "commit": git_commit(),
        "config": config,
        "checkpoint_step": meta["step"],
        "synthetic_validation": meta["extra"].get("val", {}),
        "results": {},
    }
    return save_with_card(state, name, card, weights_dir or WEIGHTS_DIR)
