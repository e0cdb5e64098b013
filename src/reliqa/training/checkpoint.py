"""Training checkpoints: safetensors + JSON metadata, never pickle.

Model and optimizer tensors are stored under ``model/<name>/…`` and ``optim/<name>/…`` keys;
everything that is not a tensor (step, optimizer hyper-parameters, the caller's extra state) is
JSON in the file's metadata. :class:`Checkpointer` keeps the last ``keep`` step checkpoints of a
run and tagged ones such as ``best.safetensors`` (see :mod:`reliqa.training.common` for the
run folder and the typical loop).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from reliqa.exceptions import WeightsError
from reliqa.training.common import unwrap
from reliqa.verified import load_verified

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
    # the one safetensors reader; a checkpoint carries no hash (our own file)
    tensors, metadata = load_verified(path, None, what="checkpoint")
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
