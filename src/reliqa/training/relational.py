"""Training of the relational MAP network (resumable, single process or torchrun/DDP).

Steps ``[0, steps)`` (``map_steps`` in older configs): the map network on engine triplets (p_swap 0.25), weighted MSE
(w_high = 10 where |t − 0.5| > 0.05), AdamW with warm-up + cosine decay. Validation on fixed
held-out batches picks the best map weights (tag ``best_maps``); ``run_dir/relational.safetensors``
holds them (with an untrained scorer). The scorer is trained afterwards, on cached statistics of
these frozen maps: ``reliqa train scorer-cache`` and ``reliqa train scorer``
(:mod:`reliqa.training.relational_scorer`).

Warm start: ``init_maps`` loads a map network (a relational .safetensors or a checkpoint); the
warm-started maps are validated before the first step, so they stay the choice unless beaten.

Data: the engine's :class:`~reliqa.distortions.DistortionDataset` on the pristine photos. The
held-out split (``is_held_out``) is never trained on; its photos are divided in two fixed
halves (:func:`held_out_halves`): validation (checkpoint choice, here) and evaluation (the
figures in the model card). No human label is read anywhere.

Each generated batch is used ``echo`` times under different flips/rotations (the maps'
meaning does not depend on orientation): the engine costs more than a training step, so this
multiplies the steps an hour buys.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from reliqa.attributes import ACTIVE_THRESHOLD, NEUTRAL
from reliqa.distortions.dataset import DistortionDataset, split_images, validation_batches
from reliqa.models.relational import RelationalModel
from reliqa.training.checkpoint import Checkpointer, module_state_from_checkpoint
from reliqa.training.common import (
    DistributedContext,
    MetricsLog,
    StepTimer,
    cleanup_distributed,
    cosine_lr,
    max_across_ranks,
    seed_everything,
    set_lr,
    setup_distributed,
    training_progress,
    unwrap,
    wrap_ddp,
)
from reliqa.training.config import TrainConfig, write_run_config
from reliqa.training.loop import Every, KeepBest, TimeBudget, run_steps
from reliqa.training.relational_losses import weighted_map_mse


@dataclass
class RelationalTrainConfig(TrainConfig):
    """Everything a relational training run depends on (JSON config file → this).

    ``steps`` and ``max_minutes`` bound the map training (older configs say ``map_steps`` and
    ``map_minutes``: :data:`~reliqa.training.config.ALIASES`).
    """

    data_root: str | list[str] = "../shared/data/pristine"
    data_split: str = "train"
    validation_root: str | None = None
    run_dir: str = "runs/relational"
    device: str = "auto"
    threads: int = 0
    widths: list[int] = field(default_factory=lambda: [32, 64, 96])
    depths: list[int] = field(default_factory=lambda: [2, 2, 2])
    steps: int = 3000
    batch_size: int = 16
    crop_size: int = 128
    scale_range: list[float] = field(default_factory=lambda: [0.5, 1.0])
    p_swap: float = 0.25
    # relative draw weights of attribute channels and types (sample_mixes); None = all alike
    sampling_weights: dict[str, float] | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    echo: int = 2
    max_minutes: float | None = None
    # data loading, validation, bookkeeping
    num_workers: int = 1
    val_every: int = 250
    val_batches: int = 6
    val_batch_size: int = 16
    log_every: int = 25
    checkpoint_every: int = 500
    amp: bool = False
    init_maps: str | None = None

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError("steps must be ≥ 0")
        if self.echo < 1:
            raise ValueError(f"echo must be ≥ 1, got {self.echo}")
        if self.crop_size % 16:
            raise ValueError("crop_size must be a multiple of 16")

    def model(self) -> RelationalModel:
        return RelationalModel(self.widths, self.depths)


def held_out_halves(root: str | Path | list[str]) -> tuple[list[Path], list[Path]]:
    """The held-out photos split in two fixed halves: (validation, evaluation).

    Sorted by path, even positions validate (choose checkpoints), odd positions evaluate (the
    reported figures), so the figures come from photos that influenced no decision.
    """
    photos = split_images(root, "held_out")
    return photos[0::2], photos[1::2]


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------


def dihedral(batch: dict[str, torch.Tensor], variant: int) -> dict[str, torch.Tensor]:
    """One of the 8 flips/rotations of every image-like tensor of a batch (last two dims)."""
    if variant == 0:
        return batch
    out: dict[str, torch.Tensor] = {}
    for key, value in batch.items():
        if value.ndim >= 4:
            value = torch.rot90(value, variant % 4, dims=(-2, -1))
            if variant >= 4:
                value = value.flip(-1)
        out[key] = value
    return out


def echoed(
    loader: Iterator[dict[str, torch.Tensor]], echo: int, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """Each loaded batch ``echo`` times, under different dihedral transforms, on ``device``."""
    for index, batch in enumerate(loader):
        batch = {
            k: v.to(device, non_blocking=True)
            for k, v in batch.items()
            if isinstance(v, torch.Tensor)
        }
        first = int(batch["index"]) % 8 if "index" in batch else index % 8
        for repeat in range(echo):
            yield dihedral(batch, (first + 3 * repeat) % 8)


def _loader(
    dataset: DistortionDataset, config: RelationalTrainConfig, device: torch.device
) -> DataLoader:
    workers = config.num_workers
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def validate_maps(
    model: RelationalModel, batches: list[dict[str, torch.Tensor]], device: torch.device
) -> dict[str, float]:
    """Weighted MSE and the sign accuracy on active truth pixels over fixed triplet batches."""
    model.eval()
    losses, correct, active = [], 0.0, 0.0
    for batch in batches:
        test, reference, truth = (batch[k].to(device) for k in ("test", "reference", "truth"))
        maps = model.maps_net(test, reference)
        losses.append(float(weighted_map_mse(maps, truth)))
        mask = (truth - NEUTRAL).abs() > ACTIVE_THRESHOLD
        correct += float(((maps > NEUTRAL) == (truth > NEUTRAL))[mask].sum())
        active += float(mask.sum())
    model.train()
    return {"map_loss": sum(losses) / len(losses), "sign_accuracy": correct / max(active, 1.0)}


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


class _StopFlag:
    """Set by SIGTERM/SIGINT: the loop saves a checkpoint and exits cleanly."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: object) -> None:
        self.requested = True


def train_relational(
    config: RelationalTrainConfig, *, resume: bool = False, quiet: bool = False
) -> Path:
    """Run (or resume) a relational training run; returns the path of the exported weights.

    Works as a single process or under ``torchrun`` (one process per GPU; ``batch_size`` is per
    process). Writes ``config.json``, ``metrics.jsonl``, checkpoints and ``relational.safetensors``
    into ``config.run_dir``.
    """
    context = setup_distributed(config.device)
    try:
        return _train(config, context, resume=resume, quiet=quiet)
    finally:
        cleanup_distributed()


def _train(
    config: RelationalTrainConfig, context: DistributedContext, *, resume: bool, quiet: bool
) -> Path:
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick its kernels once
    run_dir = Path(config.run_dir)
    seed_everything(config.seed)  # same initial weights on every rank
    model = config.model().to(context.device)
    if config.init_maps:
        state = _load_weights(config.init_maps)
        model.maps_net.load_state_dict(
            {k[len("maps_net.") :]: v for k, v in state.items() if k.startswith("maps_net.")}
        )
    map_optimizer = torch.optim.AdamW(
        model.maps_net.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    checkpointer = Checkpointer(run_dir / "checkpoints", enabled=context.is_main)
    modules = {"model": model}
    optimizers: dict[str, torch.optim.Optimizer] = {"maps": map_optimizer}
    step, extra = 0, {"best_map_loss": math.inf}
    restored = checkpointer.resume(modules, optimizers) if resume else None
    if restored is not None:
        step, extra = restored.step, {**extra, **restored.extra}
    if context.is_main:
        write_run_config(run_dir, config)
    seed_everything(config.seed + 7919 * step, context.rank)  # a resumed run draws fresh noise
    validation_photos = (
        split_images(config.validation_root, "all")
        if config.validation_root
        else held_out_halves(config.data_root)[0]
    )
    stop = _StopFlag()
    previous_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with MetricsLog(run_dir / "metrics.jsonl", enabled=context.is_main) as log:
            if step < config.steps:
                phase = _MapPhase(
                    config, context, model, map_optimizer, checkpointer, log, extra, stop
                )
                step = phase.run(step, validation_photos, quiet=quiet)
                extra = phase.extra
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        checkpointer.save(step, modules, optimizers, extra)
    output = run_dir / "relational.safetensors"
    if context.is_main and step >= config.steps:
        chosen = run_dir / "checkpoints" / "best_maps.safetensors"
        state = (
            module_state_from_checkpoint(chosen, "model")
            if chosen.is_file()
            else unwrap(model).state_dict()
        )
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(output))
    return output


def _load_weights(path: str) -> dict[str, torch.Tensor]:
    from reliqa.verified import load_verified

    if path.endswith(".safetensors") and "checkpoints" in Path(path).parts:
        return module_state_from_checkpoint(path, "model")
    return load_verified(path, None)[0]


class _MapPhase:
    """The map network's training: the step, log, validation and checkpoint that
    :func:`~reliqa.training.loop.run_steps` calls, and the warm start's and the time budget's
    extra validations."""

    def __init__(
        self,
        config: RelationalTrainConfig,
        context: DistributedContext,
        model: RelationalModel,
        optimizer: torch.optim.Optimizer,
        checkpointer: Checkpointer,
        log: MetricsLog,
        extra: dict[str, Any],
        stop: _StopFlag,
    ) -> None:
        self.config, self.context, self.model = config, context, model
        self.optimizer, self.optimizers = optimizer, {"maps": optimizer}
        self.checkpointer, self.log, self.extra, self.stop = checkpointer, log, extra, stop
        self.best = KeepBest("map_loss", maximise=False, value=extra["best_map_loss"])
        self.timer = StepTimer()
        self.running: list[float] = []
        self.fraction = self.lr = 0.0
        self.start_step = 0
        self.budget = TimeBudget(None)
        self.val: list[dict[str, torch.Tensor]] = []
        self.batches: Iterator[dict[str, torch.Tensor]] = iter(())
        self.bar: Any = None

    def run(self, step: int, validation_photos: list[Path], *, quiet: bool) -> int:
        """Train from ``step``; returns the step reached (``config.steps`` once the budget is
        spent or the steps are done; less when stopped by a signal)."""
        config, device = self.config, self.context.device
        dataset = DistortionDataset(
            config.data_root,
            split=config.data_split,  # type: ignore[arg-type]  # checked by DistortionDataset
            crop_size=config.crop_size,
            batch_size=config.batch_size,
            scale_range=(config.scale_range[0], config.scale_range[1]),
            p_swap=config.p_swap,
            sampling_weights=config.sampling_weights,
            seed=config.seed + step,
        )
        dataset.preload()
        self.val = validation_batches(
            validation_photos,
            num_batches=config.val_batches,
            batch_size=config.val_batch_size,
            crop_size=config.crop_size * 2,
            seed=config.seed,
            p_swap=config.p_swap,
        )
        self.network = wrap_ddp(self.model.maps_net, self.context)
        self.model.train()
        self.budget, self.start_step = TimeBudget(config.max_minutes), step
        self.autocast = torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda"
        )
        if step == 0 and config.init_maps:
            # the warm start is a candidate too, so continuing can never pick worse maps
            self.validate(step)
        self.batches = echoed(iter(_loader(dataset, config, device)), config.echo, device)
        show = self.context.is_main and not quiet
        with training_progress(config.steps, step, description="maps", enabled=show) as bar:
            self.bar = bar
            events = [
                Every(config.log_every, self.write_log, at_end=False),
                Every(config.val_every, self.validate),
                Every(config.checkpoint_every, self.save, at_end=False),
            ]
            step = run_steps(step, config.steps, self.update, events, stop_before=self.stopping)
        if step < config.steps and not self.stop.requested:  # the time budget ran out first
            self.validate(step)
            self.extra["map_steps_done"] = step
            step = config.steps
        return step

    def stopping(self, step: int) -> bool:
        """Before a step: the schedule position (by steps, or by wall time when that runs out
        first), and whether the budget is spent or a signal asks to stop (on any rank)."""
        fraction = (step - self.start_step) / max(1, self.config.steps - self.start_step)
        fraction = min(1.0, max(fraction, self.budget.used()))
        fraction, stopping = max_across_ranks([fraction, float(self.stop.requested)], self.context)
        self.fraction = fraction
        if fraction >= 1.0 or stopping:
            self.stop.requested = self.stop.requested or bool(stopping)
            return True
        return False

    def update(self, step: int) -> None:
        config = self.config
        # the schedule continues where a resumed run stopped: this session's fraction covers
        # the steps that remain (a fresh run: all of them)
        position = self.start_step + int(self.fraction * (config.steps - self.start_step))
        self.lr = cosine_lr(position, config.steps, config.lr, config.warmup_steps)
        set_lr(self.optimizer, self.lr)
        batch = next(self.batches)
        self.timer.start()
        with self.autocast:
            maps = self.network(batch["test"], batch["reference"])
        loss = weighted_map_mse(maps.float(), batch["truth"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.maps_net.parameters(), 1.0)
        self.optimizer.step()
        self.timer.stop()
        self.running.append(loss.item())
        self.bar.advance(1, loss=self.running[-1])

    def write_log(self, step: int) -> None:
        self.log.write(
            step,
            "train",
            phase="maps",
            map_loss=sum(self.running) / len(self.running),
            lr=self.lr,
            steps_per_s=self.timer.rate(),
        )
        self.running.clear()

    def validate(self, step: int) -> None:
        """Validate the maps; when the loss improves, save the ``best_maps`` checkpoint."""
        metrics = validate_maps(self.model, self.val, self.context.device)
        self.log.write(step, "val", phase="maps", **metrics)
        if self.best.offer(metrics):
            self.extra = {**self.extra, "best_map_loss": metrics["map_loss"], "best_map_step": step}
            self.save(step, tag="best_maps")

    def save(self, step: int, tag: str | None = None) -> None:
        self.checkpointer.save(step, {"model": self.model}, self.optimizers, self.extra, tag=tag)
