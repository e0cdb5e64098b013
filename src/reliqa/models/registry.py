"""One registry for reliqa's networks: ``create_model(name, pretrained=True)`` (timm style).

Each entry's configuration (architecture kwargs, weights name) is data next to the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from reliqa.checks import name_key, resolve_device
from reliqa.exceptions import UnknownNameError, WeightsError
from reliqa.metrics.base import MetricInfo
from reliqa.models.weights import load_shipped


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and which shipped weights it uses."""

    name: str
    builder: Callable[..., nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    description: str = ""

    @property
    def info(self) -> MetricInfo:
        """The model's catalogue entry (read by every scoring interface; no weights loaded):
        the builder's own ``info`` if it declares one, else the docs/design.md default for a
        no-reference model — a score in [0, 1], higher = better."""
        declared = getattr(self.builder, "info", None)
        if isinstance(declared, MetricInfo):
            return replace(declared, name=self.name)
        return MetricInfo(
            name=self.name,
            kind="NR",
            higher_is_better=True,
            score_range=(0.0, 1.0),
            differentiable=True,
            description=self.description or f"no-reference model {self.name}",
            reference="trained by this repository (model card: src/reliqa/weights)",
            extra={"min_size": int(getattr(self.builder, "min_size", 32)), "source": "model"},
        )


_MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` under its name (a name registers once)."""
    if model_name(entry.name) is not None:
        raise ValueError(f"model {entry.name!r} registered twice")
    _MODELS[entry.name] = entry
    return entry


def model_name(name: str) -> str | None:
    """The registered spelling of model ``name`` (``"hirqa_s"`` → ``"hirqa-s"``), else None."""
    key = name_key(name)
    return next((registered for registered in _MODELS if name_key(registered) == key), None)


def list_models() -> list[ModelEntry]:
    """Every registered model (name, builder, weights, description, ``info``), sorted."""
    return [entry for _, entry in sorted(_MODELS.items())]


def create_model(
    name: str, *, pretrained: bool = True, device: str | torch.device | None = None
) -> nn.Module:
    """Build model ``name`` (either spelling: ``hirqa-s`` = ``hirqa_s``); with ``pretrained``
    load its shipped, hash-checked weights.

    The model is returned in eval mode on ``device`` (default cpu, checked to exist).

    Raises:
        UnknownNameError: no such model. DeviceError: no such device here.
        WeightsError: the shipped weights are missing, fail their hash, or do not fit.
    """
    canonical = model_name(name)
    if canonical is None:
        known = ", ".join(sorted(_MODELS))
        raise UnknownNameError(f"unknown model {name!r}; known models: {known}")
    entry = _MODELS[canonical]
    model = entry.builder(**entry.kwargs)
    if pretrained:
        if entry.weights is None:
            raise UnknownNameError(f"model {name!r} has no shipped weights")
        state, _card = load_shipped(entry.weights)
        try:
            model.load_state_dict(state)
        except RuntimeError as error:  # keys or shapes differ: weights of another version
            raise WeightsError(
                f"shipped weights {entry.weights!r} do not fit model {name!r}: "
                f"{str(error).splitlines()[0]}"
            ) from None
    return model.eval().to(resolve_device(device))
