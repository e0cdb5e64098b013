"""Training of the relational MAP network (resumable, single process or torchrun/DDP).

Steps ``[0, map_steps)``: the map network on engine triplets (p_swap 0.25), weighted MSE
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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from reliqa.attributes import ACTIVE_THRESHOLD, NEUTRAL
from reliqa.distortions.dataset import DistortionDataset, split_images, validation_batches
from reliqa.exceptions import DataError
from reliqa.models.relational import RelationalModel
from reliqa.training.checkpoint import Checkpointer, module_state_from_checkpoint
from reliqa.training.common import (
    DistributedContext,
    MetricsLog,
    StepTimer,
    cleanup_distributed,
    config_to_dict,
    cosine_lr,
    max_across_ranks,
    seed_everything,
    set_lr,
    setup_distributed,
    training_progress,
    unwrap,
    wrap_ddp,
)
from reliqa.training.relational_losses import weighted_map_mse


@dataclass
class RelationalTrainConfig:
    """Everything a relational training run depends on (JSON config file → this)."""

    data_root: str | list[str] = "../shared/data/pristine"
    data_split: str = "train"
    validation_root: str | None = None
    run_dir: str = "runs/relational"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    widths: list[int] = field(default_factory=lambda: [32, 64, 96])
    depths: list[int] = field(default_factory=lambda: [2, 2, 2])
    map_steps: int = 3000
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
    map_minutes: float | None = None
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
        if self.map_steps < 0:
            raise ValueError("map_steps must be ≥ 0")
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


def _progress_fraction(
    step: int, start: int, steps: int, started: float, minutes: float | None
) -> float:
    """Schedule position in [0, 1]: by steps, or by wall time when that runs out first."""
    fraction = (step - start) / max(1, steps)
    if minutes:
        fraction = max(fraction, (time.time() - started) / (60.0 * minutes))
    return min(1.0, fraction)


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
    import json

    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop sizes: let cuDNN pick its kernels once
    run_dir = Path(config.run_dir)
    device = context.device
    seed_everything(config.seed)  # same initial weights on every rank
    model = config.model().to(device)
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
    extra: dict[str, Any] = {"best_map_loss": math.inf}
    step = 0
    if resume:
        restored = checkpointer.resume(modules, optimizers)
        if restored is not None:
            step, extra = restored.step, {**extra, **restored.extra}
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
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
            if step < config.map_steps:
                step, extra = _map_phase(
                    config,
                    context,
                    model,
                    map_optimizer,
                    checkpointer,
                    optimizers,
                    log,
                    step,
                    extra,
                    validation_photos,
                    stop,
                    quiet,
                )
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        checkpointer.save(step, modules, optimizers, extra)
    output = run_dir / "relational.safetensors"
    if context.is_main and step >= config.map_steps:
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


def _map_phase(
    config: RelationalTrainConfig,
    context: DistributedContext,
    model: RelationalModel,
    optimizer: torch.optim.Optimizer,
    checkpointer: Checkpointer,
    optimizers: dict[str, torch.optim.Optimizer],
    log: MetricsLog,
    step: int,
    extra: dict[str, Any],
    validation_photos: list[Path],
    stop: _StopFlag,
    quiet: bool,
) -> tuple[int, dict[str, Any]]:
    device = context.device
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
    val = validation_batches(
        validation_photos,
        num_batches=config.val_batches,
        batch_size=config.val_batch_size,
        crop_size=config.crop_size * 2,
        seed=config.seed,
        p_swap=config.p_swap,
    )
    network = wrap_ddp(model.maps_net, context)
    model.train()
    timer = StepTimer()
    started, start_step = time.time(), step
    running: list[float] = []
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda"
    )
    if step == 0 and config.init_maps:
        # the warm start is a candidate too, so continuing can never pick worse maps
        extra = _validate_and_keep_best(
            model, val, device, checkpointer, optimizers, log, step, extra
        )
    batches = echoed(iter(_loader(dataset, config, device)), config.echo, device)
    with training_progress(
        config.map_steps, step, description="maps", enabled=context.is_main and not quiet
    ) as bar:
        while step < config.map_steps:
            fraction = _progress_fraction(
                step, start_step, config.map_steps - start_step, started, config.map_minutes
            )
            fraction, stopping = max_across_ranks([fraction, float(stop.requested)], context)
            if fraction >= 1.0 or stopping:
                stop.requested = stop.requested or bool(stopping)
                break
            lr = cosine_lr(
                int(fraction * config.map_steps), config.map_steps, config.lr, config.warmup_steps
            )
            set_lr(optimizer, lr)
            batch = next(batches)
            timer.start()
            with autocast:
                maps = network(batch["test"], batch["reference"])
            loss = weighted_map_mse(maps.float(), batch["truth"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.maps_net.parameters(), 1.0)
            optimizer.step()
            timer.stop()
            step += 1
            running.append(loss.item())
            bar.advance(1, loss=running[-1])
            if step % config.log_every == 0:
                log.write(
                    step,
                    "train",
                    phase="maps",
                    map_loss=sum(running) / len(running),
                    lr=lr,
                    steps_per_s=timer.rate(),
                )
                running.clear()
            if step % config.val_every == 0 or step == config.map_steps:
                extra = _validate_and_keep_best(
                    model, val, device, checkpointer, optimizers, log, step, extra
                )
            if step % config.checkpoint_every == 0:
                checkpointer.save(step, {"model": model}, optimizers, extra)
    if step < config.map_steps and not stop.requested:  # the time budget ran out first
        extra = _validate_and_keep_best(
            model, val, device, checkpointer, optimizers, log, step, extra
        )
        extra["map_steps_done"] = step
        step = config.map_steps
    return step, extra


def _validate_and_keep_best(
    model: RelationalModel,
    val: list[dict[str, torch.Tensor]],
    device: torch.device,
    checkpointer: Checkpointer,
    optimizers: dict[str, torch.optim.Optimizer],
    log: MetricsLog,
    step: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Validate the maps; when the loss improves, save the ``best_maps`` checkpoint and record it."""
    metrics = validate_maps(model, val, device)
    log.write(step, "val", phase="maps", **metrics)
    if metrics["map_loss"] < extra["best_map_loss"]:
        extra = {**extra, "best_map_loss": metrics["map_loss"], "best_map_step": step}
        checkpointer.save(step, {"model": model}, optimizers, extra, tag="best_maps")
    return extra


def load_training_config(path: str | Path, **overrides: Any) -> RelationalTrainConfig:
    """A :class:`RelationalTrainConfig` from a JSON file (unknown keys are an error)."""
    from reliqa.training.common import load_config

    try:
        return load_config(path, RelationalTrainConfig, **overrides)
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None
