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

import math
import os
import sys
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
    DistributedContext,
    MetricsLog,
    StepTimer,
    barrier,
    cleanup_distributed,
    cosine_lr,
    git_commit,
    mean_across_ranks,
    seed_everything,
    set_lr,
    setup_distributed,
    training_progress,
    wrap_ddp,
)
from reliqa.training.config import TrainConfig, config_to_dict, load_config, write_run_config
from reliqa.training.loop import Every, KeepBest, TimeBudget, run_steps
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
class NRTrainConfig(TrainConfig, ObjectiveSettings):
    """Everything a no-reference training run depends on (JSON config; see configs/nr_*.json)."""

    model: str = "hirqa-s"
    data_root: str = "../shared/data/pristine"
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
    warmup_steps: int = 100
    grad_clip: float = 1.0
    device: str = "auto"
    num_workers: int = 2
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
    on CPU in ``num_workers`` DataLoader processes (shared among the crop sizes); ``"main"``: it
    runs in this process on the training device (fast on a GPU)."""
    from torch.utils.data import DataLoader

    from reliqa.distortions.dataset import DistortionDataset

    on_device = config.engine == "main"
    iterators = []
    for position, crop in enumerate(config.crop_sizes):
        dataset = DistortionDataset(
            config.data_root,
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
            else max(1, config.num_workers // len(config.crop_sizes))
            if config.num_workers
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
        config.data_root,
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


def train_nr(config: NRTrainConfig, *, resume: bool = True, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) a training; returns a summary with the best validation metrics.

    Single process, or one process per GPU under ``torchrun`` (DDP); only rank 0 writes.
    """
    context = setup_distributed(config.device)
    torch.set_num_threads(config.threads)
    run = _NRRun(config, context, resume=resume, quiet=quiet)
    show = context.is_main and not quiet
    with (
        MetricsLog(Path(config.run_dir) / "metrics.jsonl", enabled=context.is_main) as run.log,
        training_progress(
            config.steps, run.start, description=f"train {config.model}", enabled=show
        ) as run.progress,
    ):
        events = [
            Every(config.log_every, run.write_log),
            Every(config.val_every, run.validate),
            Every(config.checkpoint_every, run.save),
            Every(1, lambda done: barrier(context)),
        ]
        done = run_steps(run.start, config.steps, run.update, events)
    if run.stopped_early:
        run.summary["stopped_at_step"] = done
    cleanup_distributed()
    best = run.best.value
    run.summary.update(
        {
            "best_selection": best if best is not None and math.isfinite(best) else None,
            "steps": config.steps,
            "run_dir": str(run.run_dir),
            "commit": git_commit(),
            "rank": context.rank,
        }
    )
    return run.summary


class _NRRun:
    """One session of a ``train_nr`` run: the set-up (resumed or fresh), and the step, log,
    validation and checkpoint that :func:`~reliqa.training.loop.run_steps` calls."""

    log: MetricsLog
    progress: Any

    def __init__(
        self, config: NRTrainConfig, context: DistributedContext, *, resume: bool, quiet: bool
    ) -> None:
        self.config, self.context, self.quiet = config, context, quiet
        seed_everything(config.seed, 0)  # same initial weights on every rank
        self.run_dir = Path(config.run_dir)
        architecture: dict[str, Any] = dict(HIRQA_CONFIGS[config.model])
        self.model = HiRQA(**architecture).to(context.device)
        self.view = wrap_ddp(_TrainingView(self.model), context)
        self.optimizer = _optimizer(self.model, config)
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", enabled=context.is_main)
        state = (
            self.checkpointer.resume({"model": self.model}, {"adamw": self.optimizer})
            if resume
            else None
        )
        self.start = state.step if state else 0
        if state is None and config.init_from:
            _load_initial_weights(self.model, config.init_from)
        extra = state.extra if state else {}
        self.best = KeepBest("selection", value=extra.get("best", -math.inf))
        seed_everything(config.seed + self.start, context.rank)
        self.bank = load_prompt_bank()
        self.prompt_embeddings = load_prompt_embeddings(self.bank).to(context.device)
        self.validation = (
            validation_set(config, self.bank, context.device) if context.is_main else []
        )
        if context.is_main:
            write_run_config(self.run_dir, config)
        self.iterators = _loaders(config, epoch=self.start, device=context.device)
        self.use_bf16 = config.bf16 and context.device.type == "cuda"
        self.timer = StepTimer()
        self.budget = TimeBudget(config.max_minutes, float(extra.get("elapsed_s", 0.0)))
        self.summary: dict[str, Any] = {"start_step": self.start}
        self.terms: dict[str, torch.Tensor] = {}
        self.stopped_early = False

    def update(self, step: int) -> bool:
        """One step; True when the time budget is spent (this step is the run's last)."""
        config, device = self.config, self.context.device
        self.timer.start()
        self.view.train()
        raw = next(self.iterators[step % len(self.iterators)])
        batch = flatten_ordinal_batch(
            {k: v.to(device, non_blocking=True) for k, v in raw.items()}, self.bank
        )
        # the schedule follows whichever budget (steps, minutes) runs out first
        used = self.budget.used()
        position = max(step, int(used * config.steps))
        set_lr(self.optimizer, cosine_lr(position, config.steps, config.lr, config.warmup_steps))
        self.terms = _train_step(
            self.view, self.optimizer, batch, self.prompt_embeddings, config, self.use_bf16
        )
        self.timer.stop()
        stopping = mean_across_ranks({"stop": float(used >= 1.0)}, self.context)["stop"] > 0
        self.stopped_early = bool(stopping)
        return self.stopped_early

    def write_log(self, done: int) -> None:
        values = mean_across_ranks(
            {k: float(v.detach()) for k, v in self.terms.items()}, self.context
        )
        lr = self.optimizer.param_groups[0]["lr"]
        self.log.write(done, "train", lr=lr, steps_per_s=self.timer.rate(), **values)
        self.progress.advance(self.config.log_every, loss=values["total"])

    def validate(self, done: int) -> None:
        """Synthetic validation (rank 0); a better selection writes the ``best`` checkpoint."""
        if not self.context.is_main:
            return
        metrics = synthetic_validation(self.model, self.validation, self.context.device)
        self.log.write(done, "val", **metrics)
        if self.best.offer(metrics):
            self.checkpointer.save(
                done, {"model": self.model}, {}, {"best": self.best.value, "val": metrics},
                tag="best",
            )
            self.summary["best_val"] = {"step": done, **metrics}
        if not self.quiet and not sys.stderr.isatty():  # a log file: one line per validation
            print(
                f"step {done}: val selection {metrics['selection']:.4f} "
                f"(within {metrics['srcc_within']:.3f}, all {metrics['srcc_all']:.3f})",
                file=sys.stderr,
                flush=True,
            )

    def save(self, done: int) -> None:
        self.checkpointer.save(
            done, {"model": self.model}, {"adamw": self.optimizer},
            {"best": self.best.value, "elapsed_s": self.budget.spent()},
        )


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
    from reliqa.training.cards import export_hirqa
    from reliqa.training.checkpoint import read_checkpoint

    run = Path(run_dir)
    config = load_config(NRTrainConfig, run / "config.json")
    if config.model != name:
        raise InvalidInputError(f"{run}: the run trained {config.model!r}, not {name!r}")
    tensors, meta = read_checkpoint(run / "checkpoints" / "best.safetensors")
    prefix = "model/model/"
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return export_hirqa(
        state,
        name,
        command=command,
        training_data=data_note
        or f"synthetic ordinal sets from {config.data_root} (train split); no human labels",
        seed=config.seed,
        config=config_to_dict(config),
        step=meta["step"],
        figures=("synthetic_validation", meta["extra"].get("val", {})),
        weights_dir=weights_dir,
    )
