"""One name → one scorer: classical metrics and reliqa's models behind the same interface.

The benchmark runner (and any tool that scores images by name) asks :func:`resolve_scorer`,
which looks the name up in the metric registry (:func:`reliqa.metrics.create_metric`) first and
then in the model registry (:func:`reliqa.models.create_model`).

Contract for a registered model to be usable here:
    - it has a ``score(test, reference=None)`` method returning (N,) scores, or else its
      ``forward`` does;
    - it may declare ``info`` with ``kind`` ("FR"/"NR") and ``higher_is_better``, like a
      :class:`reliqa.metrics.MetricInfo`; without it the DESIGN.md defaults hold: a no-reference
      score, higher = better;
    - a model that produces distortion maps may expose ``maps(test, reference) -> (1, 9, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from reliqa.exceptions import UnknownNameError
from reliqa.metrics import create_metric, list_metrics

ScoreFunction = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@dataclass(frozen=True)
class Scorer:
    """A metric or model as scoring tools see it.

    Attributes:
        name: the registry name.
        kind: "FR" (needs a reference) or "NR".
        higher_is_better: direction of the score.
        score: (N, 3, H, W) test [, (N, 3, H, W) reference] → (N,) scores.
        maps: for map-producing models, one pair → (1, 9, H, W) maps; else None.
        source: "metric" or "model".
    """

    name: str
    kind: Literal["FR", "NR"]
    higher_is_better: bool
    score: ScoreFunction
    maps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    source: Literal["metric", "model"] = "metric"

    def __call__(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(test, reference).reshape(-1)


def resolve_scorer(name: str, device: str | torch.device = "cpu") -> Scorer:
    """The metric or model called ``name``, built once on ``device`` in eval mode.

    Raises:
        UnknownNameError: ``name`` is neither a registered metric nor a registered model.
    """
    if name in {info.name for info in list_metrics()}:
        metric = create_metric(name).to(device).eval()
        return Scorer(name, metric.info.kind, metric.info.higher_is_better, metric)
    from reliqa.models import create_model, list_models

    if name in {entry.name for entry in list_models()}:
        model = create_model(name, device=device)
        info = getattr(model, "info", None)
        score_method = getattr(model, "score", None)
        score = score_method if callable(score_method) else model
        kind = getattr(info, "kind", "NR")

        def run(test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
            return score(test, reference) if kind == "FR" else score(test)

        return Scorer(
            name,
            kind,
            bool(getattr(info, "higher_is_better", True)),
            run,
            maps=getattr(model, "maps", None),
            source="model",
        )
    metrics = ", ".join(info.name for info in list_metrics())
    models = ", ".join(entry.name for entry in list_models()) or "none yet"
    raise UnknownNameError(f"unknown metric or model {name!r}; metrics: {metrics}; models: {models}")
