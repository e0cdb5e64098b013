"""The metric base class and the metric registry, which registers into the one scorer catalogue
(:mod:`reliqa.catalogue`, where :class:`MetricInfo` lives; timm/torchmetrics style).

Every metric is a functional core (``reliqa.metrics.<name>``) plus a thin :class:`Metric`
module whose :class:`MetricInfo` declares what it is; tools (benchmark runner, CLI, batch,
viewer) read that metadata instead of special-casing names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from reliqa import catalogue
from reliqa.catalogue import MetricInfo
from reliqa.checks import resolve_device
from reliqa.exceptions import UnknownNameError


class Metric(nn.Module):
    """Base class: ``forward(test, reference=None) -> (N,)`` scores.

    Inputs are float32 (N, 3, H, W) in [0, 1] (see :func:`reliqa.io.load_image`).
    FR metrics require ``reference`` of the same shape; NR metrics ignore it.
    """

    info: MetricInfo

    def forward(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError


def register_metric(info: MetricInfo) -> Callable[[Callable[..., Metric]], Callable[..., Metric]]:
    """Class/factory decorator adding a metric under ``info.name`` to the one scorer catalogue
    (:func:`reliqa.catalogue.register`)."""

    def decorator(factory: Callable[..., Metric]) -> Callable[..., Metric]:
        def build(device: torch.device, **options: Any) -> Metric:
            metric = factory(**options)
            metric.info = info
            return metric.to(device).eval()

        catalogue.register(info, build, source="metric")
        return factory

    return decorator


def metric_name(name: str) -> str | None:
    """The registered spelling of metric ``name`` (``"MS-SSIM"`` → ``"ms_ssim"``), else None."""
    entry = catalogue.find(name, source="metric")
    return None if entry is None else entry.name


def create_metric(name: str, *, device: str | torch.device | None = None, **kwargs: Any) -> Metric:
    """Instantiate classical metric ``name`` (either spelling, ``ms_ssim`` or ``ms-ssim``) on
    ``device`` (default cpu); ``kwargs`` are the metric's options. Models too:
    :func:`reliqa.create_metric` (the scorer catalogue)."""
    entry = catalogue.find(name, source="metric")
    if entry is None:
        known = ", ".join(e.name for e in catalogue.entries(source="metric"))
        raise UnknownNameError(f"unknown metric {name!r}; known metrics: {known}")
    metric: Metric = entry.factory(device=resolve_device(device), **kwargs)
    return metric


def list_metrics() -> list[MetricInfo]:
    """Metadata of every registered metric, sorted by name."""
    return [entry.info for entry in catalogue.entries(source="metric")]
