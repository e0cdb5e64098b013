"""One name → one scorer: classical metrics and reliqa's models behind the same interface.

This is the one **scorer catalogue**: :func:`list_scorers` / :func:`scorer_info` give every
metric's and model's :class:`~reliqa.metrics.MetricInfo` (kind FR/NR, ``higher_is_better``,
score range, differentiable, input constraints in ``extra``) without loading any weights;
``reliqa metric``, ``reliqa metrics``, ``reliqa models``, ``reliqa batch``, ``reliqa bench``,
``reliqa gmc`` and the viewer read direction and kind from here (:func:`higher_is_better`).

One name, one computation: :func:`create_metric` (``reliqa.create_metric``) builds any name of
the catalogue — a classical metric (:func:`reliqa.metrics.create_metric`, the same numbers as
its functional form ``reliqa.metrics.<name>``) or a model (:func:`reliqa.models.create_model`)
— as a :class:`~reliqa.metrics.Metric` module; :func:`resolve_scorer`, :func:`evaluate_metric`,
``reliqa metric`` and ``reliqa batch`` all go through it. A name is accepted in either spelling
(``ms-ssim`` = ``ms_ssim``, ``hirqa_s`` = ``hirqa-s``) and always printed in its registered one
(:func:`canonical_name`).

Contract for a registered model to be usable here:
    - it has a ``score(test, reference=None)`` method returning (N,) scores, or else its
      ``forward`` does;
    - it may declare ``info`` with ``kind`` ("FR"/"NR") and ``higher_is_better``, like a
      :class:`reliqa.metrics.MetricInfo`; without it the docs/design.md defaults hold: a
      no-reference score, higher = better;
    - a model that produces distortion maps may expose ``maps(test, reference) -> (1, 9, H, W)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from reliqa.checks import resolve_device
from reliqa.exceptions import InvalidInputError, ShapeMismatchError, UnknownNameError
from reliqa.io import ImageSource, describe_source, load_image, resize_to
from reliqa.metrics import Metric, MetricInfo, list_metrics, metric_name
from reliqa.metrics import create_metric as create_classical_metric

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
        info: the catalogue entry (:func:`scorer_info`).
    """

    name: str
    kind: Literal["FR", "NR"]
    higher_is_better: bool
    score: ScoreFunction
    maps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    source: Literal["metric", "model"] = "metric"
    info: MetricInfo | None = None

    def __call__(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        return self.score(test, reference).reshape(-1)


def _model_infos() -> dict[str, MetricInfo]:
    from reliqa.models import list_models

    return {entry.name: entry.info for entry in list_models()}


def canonical_name(name: str) -> str:
    """The catalogue's spelling of ``name`` (``"MS-SSIM"`` → ``"ms_ssim"``, ``"hirqa_s"`` →
    ``"hirqa-s"``); an unknown name comes back unchanged (looking it up raises)."""
    metric = metric_name(name)
    if metric is not None:
        return metric
    from reliqa.models.registry import model_name

    return model_name(name) or name


def list_models() -> list[MetricInfo]:
    """The catalogue entries of reliqa's models, sorted (``reliqa.list_models``: the same kind of
    entry as ``reliqa.list_metrics``); no weights are loaded. The registry's own entries (builder,
    weights file) are :func:`reliqa.models.list_models`."""
    return [info for _, info in sorted(_model_infos().items())]


def list_scorers() -> list[MetricInfo]:
    """Every metric and model that scores images, with its metadata; no weights are loaded.

    Metrics come first (sorted), then models (sorted); a name is never both.
    """
    return [*list_metrics(), *(info for _, info in sorted(_model_infos().items()))]


def scorer_info(name: str) -> MetricInfo:
    """The catalogue entry of metric or model ``name``.

    Raises:
        UnknownNameError: no such metric or model (the message lists both registries).
    """
    canonical = canonical_name(name)
    for info in list_metrics():
        if info.name == canonical:
            return info
    models = _model_infos()
    if canonical in models:
        return models[canonical]
    metric_names = ", ".join(info.name for info in list_metrics())
    model_names = ", ".join(sorted(models)) or "none yet"
    raise UnknownNameError(
        f"unknown metric or model {name!r}; metrics: {metric_names}; models: {model_names}"
    )


def higher_is_better(name: str) -> bool:
    """Direction of scorer ``name``'s values — the one place every tool asks (bench, batch
    report, viewer, ``reliqa gmc --scorer``); unknown names raise :class:`UnknownNameError`."""
    return scorer_info(name).higher_is_better


def column_higher_is_better(column: str) -> bool:
    """Direction of a score column of a results CSV (``reliqa batch`` names its columns after
    the scorers): the catalogue's direction when ``column`` is a scorer name, else True (a
    prediction column is taken as higher = better). ``reliqa gmc``, the viewer's GMC panel
    and the batch report use this rule, so one CSV gives one sign everywhere."""
    try:
        return higher_is_better(column)
    except UnknownNameError:
        return True


def oriented(values: torch.Tensor, name: str) -> torch.Tensor:
    """``values`` of scorer ``name`` turned so that higher = better (negated if lower is)."""
    return values if higher_is_better(name) else -values


class ModelMetric(Metric):
    """A registered model as a :class:`~reliqa.metrics.Metric`: ``forward(test, reference=None)
    -> (N,)`` calls the model's ``score`` (else its ``forward``); a no-reference model ignores
    ``reference``, as no-reference metrics do. ``model`` is the network, ``maps`` its map method
    (map-producing models) or None."""

    def __init__(self, model: torch.nn.Module, info: MetricInfo) -> None:
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


def create_metric(name: str, *, device: str | torch.device | None = None, **kwargs: object) -> Metric:
    """Any scorer of the catalogue by name (``reliqa.create_metric``): a classical metric with
    its options ``kwargs`` (the same numbers as ``reliqa.metrics.<name>``), or a model with its
    shipped weights, as a :class:`~reliqa.metrics.Metric` on ``device`` (default cpu) in eval
    mode; ``info`` is its catalogue entry. Either spelling of a name is accepted.

    Raises:
        UnknownNameError: neither a metric nor a model (the message lists both).
        DeviceError: ``device`` does not exist on this machine.
        InvalidInputError: options given for a model (models take none).
    """
    info = scorer_info(name)
    target = resolve_device(device)
    if metric_name(info.name) is not None:
        return create_classical_metric(info.name, device=target, **kwargs)
    if kwargs:
        raise InvalidInputError(f"{info.name} is a model: it takes no options ({', '.join(kwargs)})")
    from reliqa.models import create_model

    return ModelMetric(create_model(info.name, device=target), info).eval()


def resolve_scorer(name: str, device: str | torch.device | None = None) -> Scorer:
    """The metric or model called ``name`` (:func:`create_metric`), built once on ``device``.

    Raises:
        UnknownNameError: ``name`` is neither a registered metric nor a registered model.
        DeviceError: ``device`` does not exist on this machine.
    """
    metric = create_metric(name, device=device)
    info = metric.info
    if isinstance(metric, ModelMetric):
        return Scorer(info.name, info.kind, info.higher_is_better, metric, maps=metric.maps,
                      source="model", info=info)
    return Scorer(info.name, info.kind, info.higher_is_better, metric, info=info)


def evaluate_metric(
    name: str,
    test: ImageSource,
    reference: ImageSource | None = None,
    *,
    resize: bool = False,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Score ``test`` (against ``reference`` for a full-reference scorer) with any metric or
    model of the catalogue (``"ssim"``, ``"niqe"``, ``"hirqa"``, ``"relational"``, …).

    Arguments:
        name: a name from :func:`list_scorers`.
        test: the image to judge (path, PIL image, array or (N, 3, H, W) tensor in [0, 1]).
        reference: the undistorted image; required for FR scorers, refused for NR ones.
        resize: resize the test to the reference size first (:func:`reliqa.io.resize_to`).
        device: where it runs (default cpu).

    Returns:
        (N,) scores (N = 1 for a single image), direction ``scorer_info(name).higher_is_better``.

    Raises:
        UnknownNameError: no such metric or model.
        InvalidInputError: a reference missing for an FR scorer, or given to an NR one.
        ShapeMismatchError: sizes differ and ``resize`` is False.
    """
    info = scorer_info(name)
    if info.kind == "FR" and reference is None:
        raise InvalidInputError(f"{name} is a full-reference scorer: a reference image is required")
    if info.kind == "NR" and reference is not None:
        raise InvalidInputError(f"{name} is a no-reference scorer: it takes no reference image")
    scorer = resolve_scorer(name, device)
    target = resolve_device(device)
    test_image = load_image(test).to(target)
    with torch.no_grad():
        if reference is None:
            return scorer(test_image).cpu()
        reference_image = load_image(reference).to(target)
        if resize:
            test_image = resize_to(test_image, reference_image.shape[-2:])
        elif test_image.shape[-2:] != reference_image.shape[-2:]:
            raise ShapeMismatchError(
                f"test {describe_source(test)} is {test_image.shape[-1]}x{test_image.shape[-2]} "
                f"but reference {describe_source(reference)} is {reference_image.shape[-1]}x"
                f"{reference_image.shape[-2]} (W x H); pass --resize (resize=True) to resize the "
                "test to the reference size"
            )
        return scorer(test_image, reference_image).cpu()


__all__ = [
    "ModelMetric",
    "Scorer",
    "canonical_name",
    "column_higher_is_better",
    "create_metric",
    "evaluate_metric",
    "higher_is_better",
    "list_models",
    "list_scorers",
    "oriented",
    "resolve_scorer",
    "scorer_info",
]
