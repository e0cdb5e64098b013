"""Metric metadata, the base class and the one registry (timm/torchmetrics style).

Every metric is a functional core (``reliqa.metrics.<name>``) plus a thin :class:`Metric`
module whose :class:`MetricInfo` declares what it is; tools (benchmark runner, CLI, batch,
viewer) read that metadata instead of special-casing names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from reliqa.checks import name_key, resolve_device
from reliqa.exceptions import UnknownNameError


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is.

    Attributes:
        name: registry name, e.g. ``"ssim"`` (official definition) or ``"ssim_rgb"`` (a variant).
        kind: ``"FR"`` (needs a reference) or ``"NR"`` (image alone).
        higher_is_better: direction of the score.
        score_range: (low, high) bounds of the score; ``float("inf")`` where unbounded.
        differentiable: whether gradients flow to the test image.
        description: one line, including the colour handling (luminance/RGB) and scales.
        reference: where the definition comes from (paper / official implementation).
    """

    name: str
    kind: Literal["FR", "NR"]
    higher_is_better: bool
    score_range: tuple[float, float]
    differentiable: bool
    description: str
    reference: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["score_range"] = [None if abs(v) == float("inf") else v for v in self.score_range]
        return data


class Metric(nn.Module):
    """Base class: ``forward(test, reference=None) -> (N,)`` scores.

    Inputs are float32 (N, 3, H, W) in [0, 1] (see :func:`reliqa.io.load_image`).
    FR metrics require ``reference`` of the same shape; NR metrics ignore it.
    """

    info: MetricInfo

    def forward(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


_REGISTRY: dict[str, tuple[MetricInfo, Callable[..., Metric]]] = {}
_KEYS: dict[str, str] = {}  # name_key(name) -> the registered (canonical) spelling


def register_metric(info: MetricInfo) -> Callable[[Callable[..., Metric]], Callable[..., Metric]]:
    """Class/factory decorator adding a metric under ``info.name``."""

    def decorator(factory: Callable[..., Metric]) -> Callable[..., Metric]:
        if name_key(info.name) in _KEYS:
            raise ValueError(f"metric {info.name!r} registered twice")
        _REGISTRY[info.name] = (info, factory)
        _KEYS[name_key(info.name)] = info.name
        return factory

    return decorator


def metric_name(name: str) -> str | None:
    """The registered spelling of metric ``name`` (``"MS-SSIM"`` → ``"ms_ssim"``), else None."""
    return _KEYS.get(name_key(name))


def create_metric(name: str, *, device: str | torch.device | None = None, **kwargs: Any) -> Metric:
    """Instantiate classical metric ``name`` (either spelling, ``ms_ssim`` or ``ms-ssim``) on
    ``device`` (default cpu); ``kwargs`` are the metric's options. Models too:
    :func:`reliqa.create_metric` (the scorer catalogue)."""
    canonical = metric_name(name)
    if canonical is None:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownNameError(f"unknown metric {name!r}; known metrics: {known}")
    info, factory = _REGISTRY[canonical]
    metric = factory(**kwargs)
    metric.info = info
    return metric.to(resolve_device(device)).eval()


def list_metrics() -> list[MetricInfo]:
    """Metadata of every registered metric, sorted by name."""
    return [info for _, (info, _) in sorted(_REGISTRY.items())]
