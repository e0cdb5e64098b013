"""The model registry: ``create_model(name, pretrained=True)`` (timm style); every model is
registered into the one scorer catalogue (:mod:`reliqa.catalogue`), which builds it for scoring
as a :class:`ModelMetric`.

Each entry's configuration (architecture kwargs, weights name) is data next to the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import torch
from torch import nn

from reliqa import catalogue
from reliqa.catalogue import MetricInfo
from reliqa.checks import resolve_device
from reliqa.exceptions import InvalidInputError, UnknownNameError, WeightsError
from reliqa.metrics.base import Metric
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


class ModelMetric(Metric):
    """A registered model as a :class:`~reliqa.metrics.Metric` (what the catalogue builds for a
    model, ``reliqa.create_metric``): ``forward(test, reference=None) -> (N,)`` calls the model's
    ``score`` (else its ``forward``); a no-reference model ignores ``reference``, as no-reference
    metrics do. ``model`` is the network, ``maps`` its map method (map-producing models) or None.

    Contract for a registered model: a ``score(test, reference=None)`` method returning (N,)
    scores, or else its ``forward`` does; it may declare ``info`` (a :class:`MetricInfo`), else
    the docs/design.md default holds (no-reference, higher = better); a model that produces
    distortion maps may expose ``maps(test, reference) -> (1, 9, H, W)``.
    """

    def __init__(self, model: nn.Module, info: MetricInfo) -> None:
        super().__init__()
        self.model = model
        self.info = info
        self.maps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = getattr(model, "maps", None)

    def forward(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        score_method = getattr(self.model, "score", None)
        score = score_method if callable(score_method) else self.model
        if self.info.kind == "FR":
            if reference is None:
                raise InvalidInputError(f"{self.info.name} is a full-reference model: pass a reference image")
            return score(test, reference).reshape(-1)
        return score(test).reshape(-1)


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add ``entry`` under its name to the one scorer catalogue (a name registers once)."""
    info = entry.info

    def build(device: torch.device, **options: Any) -> ModelMetric:
        if options:
            raise InvalidInputError(f"{entry.name} is a model: it takes no options ({', '.join(options)})")
        return ModelMetric(create_model(entry.name, device=device), info).eval()

    catalogue.register(info, build, source="model", spec=entry)
    return entry


def model_name(name: str) -> str | None:
    """The registered spelling of model ``name`` (``"hirqa_s"`` → ``"hirqa-s"``), else None."""
    found = catalogue.find(name, source="model")
    return None if found is None else found.name


def list_models() -> list[ModelEntry]:
    """Every registered model (name, builder, weights, description, ``info``), sorted."""
    return [cast(ModelEntry, found.spec) for found in catalogue.entries(source="model")]


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
    found = catalogue.find(name, source="model")
    if found is None:
        known = ", ".join(entry.name for entry in list_models())
        raise UnknownNameError(f"unknown model {name!r}; known models: {known}")
    entry = cast(ModelEntry, found.spec)
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
