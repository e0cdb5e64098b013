"""One registry for reliqa's networks: ``create_model(name, pretrained=True)`` (timm style).

Each entry's configuration (architecture kwargs, weights name) is data next to the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from reliqa.exceptions import UnknownNameError
from reliqa.models.weights import load_shipped


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and which shipped weights it uses."""

    name: str
    builder: Callable[..., nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    description: str = ""


_MODELS: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry) -> ModelEntry:
    if entry.name in _MODELS:
        raise ValueError(f"model {entry.name!r} registered twice")
    _MODELS[entry.name] = entry
    return entry


def list_models() -> list[ModelEntry]:
    return [entry for _, entry in sorted(_MODELS.items())]


def create_model(
    name: str, *, pretrained: bool = True, device: str | torch.device | None = None
) -> nn.Module:
    """Build model ``name``; with ``pretrained`` load its shipped, hash-checked weights.

    The model is returned in eval mode on ``device`` (default CPU).
    """
    try:
        entry = _MODELS[name]
    except KeyError:
        known = ", ".join(sorted(_MODELS))
        raise UnknownNameError(f"unknown model {name!r}; known models: {known}") from None
    model = entry.builder(**entry.kwargs)
    if pretrained:
        if entry.weights is None:
            raise UnknownNameError(f"model {name!r} has no shipped weights")
        state, _card = load_shipped(entry.weights)
        model.load_state_dict(state)
    return model.eval().to(device or "cpu")
