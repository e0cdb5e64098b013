"""The evaluation side of the scorer catalogue: a scorer built by name as scoring tools use it.

The catalogue itself — names, kinds, directions, building — is :mod:`reliqa.catalogue` (core);
this module wraps what it builds: :func:`resolve_scorer` (a :class:`Scorer`: name, kind,
direction, score function and, for map-producing models, maps) for ``reliqa bench``,
``reliqa batch``, the batch report and the viewer; :func:`evaluate_metric` (``reliqa.evaluate_metric``: score image files or
tensors by name, as ``reliqa metric`` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from reliqa import catalogue
from reliqa.catalogue import MetricInfo
from reliqa.checks import resolve_device
from reliqa.exceptions import InvalidInputError, ShapeMismatchError
from reliqa.io import ImageSource, describe_source, load_image, resize_to

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
        info: the catalogue entry (:func:`reliqa.catalogue.scorer_info`).
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


def resolve_scorer(name: str, device: str | torch.device | None = None) -> Scorer:
    """The metric or model called ``name`` (:func:`reliqa.catalogue.create_scorer`), built once
    on ``device``.

    Raises:
        UnknownNameError: ``name`` is neither a registered metric nor a registered model.
        DeviceError: ``device`` does not exist on this machine.
    """
    entry = catalogue.get(name)
    metric = catalogue.create_scorer(entry.name, device=device)
    info = entry.info
    return Scorer(info.name, info.kind, info.higher_is_better, metric,
                  maps=getattr(metric, "maps", None), source=entry.source, info=info)


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
        name: a name from :func:`reliqa.catalogue.list_scorers`.
        test: the image to judge (path, PIL image, array or (N, 3, H, W) tensor in [0, 1]).
        reference: the undistorted image; required for FR scorers, refused for NR ones.
        resize: resize the test to the reference size first (:func:`reliqa.io.resize_to`).
        device: where it runs (default cpu).

    Returns:
        (N,) scores (N = 1 for a single image), direction
        ``reliqa.catalogue.higher_is_better(name)``.

    Raises:
        UnknownNameError: no such metric or model.
        InvalidInputError: a reference missing for an FR scorer, or given to an NR one.
        ShapeMismatchError: sizes differ and ``resize`` is False.
    """
    info = catalogue.scorer_info(name)
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


__all__ = ["Scorer", "evaluate_metric", "resolve_scorer"]
