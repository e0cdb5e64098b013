"""Pieces every training loop shares: seeding, torchrun/DDP, logs, progress, the LR schedule.

Configs are in :mod:`reliqa.training.config`, the loop skeleton in :mod:`reliqa.training.loop`.

Convention:
    - A run lives in one folder (``run_dir``): ``config.json`` (the resolved config),
      ``metrics.jsonl`` (one JSON object per line: ``{"step": ..., "split": "train"|"val", ...}``),
      ``checkpoints/step_XXXXXXXX.safetensors`` (the last ``keep`` of them) and
      tagged checkpoints such as ``checkpoints/best.safetensors`` (the best validation so far).
    - Checkpoints are safetensors files (never pickle), written by
      :class:`reliqa.training.checkpoint.Checkpointer`.
    - Distributed runs are started by ``torchrun``: :func:`setup_distributed` reads ``RANK``,
      ``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment and initialises the process group
      only when ``WORLD_SIZE > 1``; a plain ``python``/``reliqa`` call is a world of one.
    - Only rank 0 writes files and shows progress; every rank computes.

Typical loop::

    dist = setup_distributed("auto")
    seed_everything(config.seed, dist.rank)
    ckpt = Checkpointer(run_dir / "checkpoints", enabled=dist.is_main)
    state = ckpt.resume({"net": model}, {"net": optimizer}) if resume else None
    with MetricsLog(run_dir / "metrics.jsonl", enabled=dist.is_main) as log, \\
            training_progress(total, start, enabled=dist.is_main) as progress:
        ...
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
import torch.distributed as torch_dist
from torch import nn

from reliqa.checks import resolve_device

# --------------------------------------------------------------------------------------------
# seeding and distributed setup
# --------------------------------------------------------------------------------------------


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) with ``seed + rank``.

    Each rank gets its own stream so that data-parallel workers draw different samples; the
    model initialisation must be done with the same seed on every rank (DDP broadcasts rank 0's
    weights anyway).
    """
    value = int(seed) + int(rank)
    random.seed(value)
    np.random.seed(value % (2**32))
    torch.manual_seed(value)


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in a (possibly single-process) training job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistributedContext:
    """Initialise DDP from torchrun's environment variables, or a world of one without them.

    With ``WORLD_SIZE > 1`` the process group uses NCCL on CUDA and Gloo on CPU, and each
    process takes GPU ``LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        resolved = torch.device("cuda", local_rank if world_size > 1 else (resolved.index or 0))
        torch.cuda.set_device(resolved)
    if world_size > 1 and not torch_dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        torch_dist.init_process_group(backend=backend)
    return DistributedContext(rank, world_size, local_rank, resolved)


def cleanup_distributed() -> None:
    """Tear the process group down (no-op for a world of one)."""
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def wrap_ddp(model: nn.Module, context: DistributedContext) -> nn.Module:
    """Wrap ``model`` (already on ``context.device``) in DDP when the world is larger than one."""
    if not context.is_distributed:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def mean_across_ranks(values: Mapping[str, float], context: DistributedContext) -> dict[str, float]:
    """Average scalar metrics over all ranks (identity for a world of one)."""
    if not context.is_distributed or not values:
        return dict(values)
    keys = sorted(values)
    tensor = torch.tensor([float(values[k]) for k in keys], device=context.device)
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    tensor /= context.world_size
    return dict(zip(keys, tensor.tolist()))


def max_across_ranks(values: list[float], context: DistributedContext) -> list[float]:
    """Element-wise maximum over all ranks (identity for a world of one).

    Use it for decisions every rank must take together (stop now, schedule position): ranks
    that disagree on the number of steps would hang in DDP's gradient all-reduce.
    """
    if not context.is_distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=context.device)
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.MAX)
    return tensor.tolist()


def barrier(context: DistributedContext) -> None:
    """Wait for every rank (no-op for a world of one)."""
    if context.is_distributed:
        torch_dist.barrier()


# --------------------------------------------------------------------------------------------
# metrics log and progress
# --------------------------------------------------------------------------------------------


class MetricsLog:
    """Append-only JSONL log: one object per call of :meth:`write`, with wall time added.

    Values that are not finite floats are written as null (NaN is not JSON).
    """

    def __init__(self, path: str | os.PathLike, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self._handle: Any = None
        self._start = time.time()

    def __enter__(self) -> Self:
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", buffering=1)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def write(self, step: int, split: str, **values: float | str) -> None:
        if self._handle is None:
            return
        record: dict[str, Any] = {
            "step": step,
            "split": split,
            "time_s": round(time.time() - self._start, 3),
        }
        for key, value in values.items():
            # JSON has no NaN/inf: a non-finite value is logged as null
            finite = not isinstance(value, float) or math.isfinite(value)
            record[key] = value if finite else None
        self._handle.write(json.dumps(record) + "\n")


def read_metrics_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a JSONL metrics log."""
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


class _Progress:
    """What :func:`training_progress` yields: ``advance(n, **fields)`` updates the bar."""

    def __init__(self, bar: Any, task: Any) -> None:
        self._bar = bar
        self._task = task

    def advance(self, steps: int = 1, **fields: float) -> None:
        if self._bar is None:
            return
        text = "  ".join(f"{key} {value:.4g}" for key, value in fields.items())
        self._bar.update(self._task, advance=steps, info=text)


@contextmanager
def training_progress(
    total: int, start: int = 0, *, description: str = "training", enabled: bool = True
) -> Iterator[_Progress]:
    """A rich progress bar (steps, rate, ETA, latest losses) on a terminal; silent otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield _Progress(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total, completed=start, info="")
        yield _Progress(bar, task)


class StepTimer:
    """Steps per second over a sliding window, for the log (excludes validation pauses)."""

    def __init__(self) -> None:
        self._steps = 0
        self._elapsed = 0.0
        self._started: float | None = None

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self, steps: int = 1) -> None:
        if self._started is not None:
            self._elapsed += time.perf_counter() - self._started
            self._steps += steps
            self._started = None

    def rate(self, reset: bool = True) -> float:
        rate = self._steps / self._elapsed if self._elapsed > 0 else float("nan")
        if reset:
            self._steps, self._elapsed = 0, 0.0
        return rate


def cosine_lr(step: int, total: int, base_lr: float, warmup: int, min_ratio: float = 0.05) -> float:
    """Linear warm-up for ``warmup`` steps, then cosine decay to ``min_ratio · base_lr``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def git_commit(repo: str | os.PathLike | None = None) -> str:
    """The current git commit of the checkout (``"unknown"`` outside a git checkout)."""
    import subprocess

    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo or Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"
