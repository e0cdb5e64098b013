"""Pieces every training loop shares: configs, seeding, torchrun/DDP, checkpoints, logs, progress.

Convention:
    - A run lives in one folder (``run_dir``): ``config.json`` (the resolved config),
      ``metrics.jsonl`` (one JSON object per line: ``{"step": ..., "split": "train"|"val", ...}``),
      ``checkpoints/step_XXXXXXXX.safetensors`` (the last ``keep`` of them) and
      tagged checkpoints such as ``checkpoints/best.safetensors`` (the best validation so far).
    - Checkpoints are safetensors files (never pickle): model and optimizer tensors under
      ``model/<name>/…`` and ``optim/<name>/…`` keys; everything that is not a tensor (step,
      optimizer hyper-parameters, the caller's extra state) is JSON in the file's metadata.
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

import dataclasses
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
from typing import Any, Self, TypeVar

import numpy as np
import torch
import torch.distributed as torch_dist
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from reliqa.checks import resolve_device
from reliqa.exceptions import DataError, WeightsError

ConfigT = TypeVar("ConfigT")


# --------------------------------------------------------------------------------------------
# configs
# --------------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike, config_class: type[ConfigT], **overrides: Any) -> ConfigT:
    """Read a JSON config file into the dataclass ``config_class``.

    Unknown keys are an error (a typo must not silently fall back to a default); ``overrides``
    (e.g. from CLI options) replace file values when they are not None.

    Raises:
        DataError: the file is missing, not JSON, not an object, or has unknown keys.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: config file does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    data = {key: value for key, value in data.items() if not key.startswith("_")}  # "_comment"
    known = {f.name for f in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise DataError(f"{path}: unknown config keys {unknown}; known: {sorted(known)}")
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return config_class(**data)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: invalid config ({error})") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a plain JSON-able dict."""
    return dataclasses.asdict(config)


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
# checkpoints (safetensors + JSON metadata; never pickle)
# --------------------------------------------------------------------------------------------

_META_KEY = "reliqa_checkpoint"


def _flatten_optimizer(
    prefix: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for param_id, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}/{param_id}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[key] = float(value)
    groups = json.loads(json.dumps(state_dict["param_groups"], default=_json_default))
    return tensors, {"param_groups": groups, "scalars": scalars}


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint's metadata")


def _restore_optimizer(
    optimizer: torch.optim.Optimizer,
    prefix: str,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
) -> None:
    state: dict[int, dict[str, Any]] = {}
    marker = prefix + "/"
    for key, value in tensors.items():
        if key.startswith(marker):
            param_id, name = key[len(marker) :].split("/", 1)
            state.setdefault(int(param_id), {})[name] = value
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    groups = meta["param_groups"]
    for group in groups:  # JSON turned tuples (AdamW's betas) into lists
        for key, value in group.items():
            if isinstance(value, list) and key != "params":
                group[key] = tuple(value)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


@dataclass
class TrainingState:
    """What :meth:`Checkpointer.resume` gives back besides the restored modules."""

    step: int
    extra: dict[str, Any]


class Checkpointer:
    """Save and restore modules, optimizers, RNG state and extra JSON state.

    Args:
        folder: where ``step_XXXXXXXX.safetensors`` and ``best.safetensors`` go.
        keep: how many step checkpoints to keep (older ones are deleted).
        enabled: only rank 0 writes (other ranks' :meth:`save` calls do nothing).
    """

    def __init__(self, folder: str | os.PathLike, *, keep: int = 2, enabled: bool = True) -> None:
        self.folder = Path(folder)
        self.keep = keep
        self.enabled = enabled

    def save(
        self,
        step: int,
        modules: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        extra: Mapping[str, Any] | None = None,
        *,
        tag: str | None = None,
    ) -> Path | None:
        """Write a checkpoint atomically (temporary file, then rename); returns its path.

        Without ``tag`` it is a step checkpoint ``step_XXXXXXXX`` (only the last ``keep`` stay);
        with one it is ``<tag>.safetensors`` (e.g. ``"best"``), replaced by the next save with
        the same tag.
        """
        if not self.enabled:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}
        for name, module in modules.items():
            for key, value in unwrap(module).state_dict().items():
                tensors[f"model/{name}/{key}"] = value.detach().cpu().contiguous()
        optim_meta: dict[str, Any] = {}
        for name, optimizer in optimizers.items():
            optim_tensors, optim_meta[name] = _flatten_optimizer(f"optim/{name}", optimizer)
            tensors.update(optim_tensors)
        tensors["rng/torch"] = torch.get_rng_state()
        meta = {"step": step, "optimizers": optim_meta, "extra": dict(extra or {})}
        path = self.folder / (f"{tag}.safetensors" if tag else f"step_{step:08d}.safetensors")
        temporary = path.with_suffix(".tmp")
        save_file(
            tensors, str(temporary), metadata={_META_KEY: json.dumps(meta, default=_json_default)}
        )
        os.replace(temporary, path)
        if not tag:
            for old in self.step_checkpoints()[: -self.keep]:
                old.unlink(missing_ok=True)
        return path

    def step_checkpoints(self) -> list[Path]:
        """Step checkpoints on disk, oldest first."""
        return sorted(self.folder.glob("step_*.safetensors"))

    def latest(self) -> Path | None:
        checkpoints = self.step_checkpoints()
        return checkpoints[-1] if checkpoints else None

    def resume(
        self,
        modules: Mapping[str, nn.Module],
        optimizers: Mapping[str, torch.optim.Optimizer],
        path: str | os.PathLike | None = None,
    ) -> TrainingState | None:
        """Restore the latest (or the given) checkpoint in place; None when there is none."""
        path = Path(path) if path is not None else self.latest()
        if path is None:
            return None
        tensors, meta = read_checkpoint(path)
        for name, module in modules.items():
            prefix = f"model/{name}/"
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            if not state:
                raise WeightsError(f"{path}: no weights for module {name!r}")
            unwrap(module).load_state_dict(state)
        for name, optimizer in optimizers.items():
            if name in meta["optimizers"]:
                _restore_optimizer(optimizer, f"optim/{name}", tensors, meta["optimizers"][name])
        if "rng/torch" in tensors:
            torch.set_rng_state(tensors["rng/torch"])
        return TrainingState(step=int(meta["step"]), extra=dict(meta["extra"]))


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """All tensors and the JSON metadata of a checkpoint written by :class:`Checkpointer`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
    except Exception as error:  # safetensors raises its own error types  # noqa: BLE001
        raise WeightsError(f"{path}: not a valid safetensors checkpoint ({error})") from None
    if _META_KEY not in metadata:
        raise WeightsError(f"{path}: not a reliqa training checkpoint (no metadata)")
    return tensors, json.loads(metadata[_META_KEY])


def module_state_from_checkpoint(path: str | os.PathLike, name: str) -> dict[str, torch.Tensor]:
    """The state dict of module ``name`` stored in a checkpoint."""
    tensors, _meta = read_checkpoint(path)
    prefix = f"model/{name}/"
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if not state:
        raise WeightsError(f"{path}: no weights for module {name!r}")
    return state


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
