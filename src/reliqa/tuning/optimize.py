"""Tuning a pipeline's parameters: gradient descent, and a derivative-free coordinate search.

Convention:
    - An objective is ``loss(test, reference) → ()`` tensor, lower is better; the pipeline's
      output is the test, the target image the reference.
    - Runs are deterministic for a seed: the gradient path has no randomness of its own (the
      seed fixes torch's global generator for pipelines that draw noise), and the coordinate
      search draws its sweep order from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from reliqa.checks import check_tensor_image
from reliqa.exceptions import InvalidInputError, UnknownNameError
from reliqa.metrics.base import MetricInfo
from reliqa.tuning.loss import relational_loss
from reliqa.tuning.pipeline import Pipeline

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSS_NAMES: tuple[str, ...] = ("relational", "mse", "ssim_rgb", "ms_ssim_rgb")
"""The objectives ``reliqa tune`` compares by default: SSIM and MS-SSIM per RGB channel, as they
are used as losses (the grey catalogue ``ssim`` is blind to colour: as an objective it leaves
colour casts and desaturation in place). :func:`make_loss` takes these and every name of
:func:`loss_names`; a metric's name means the catalogue's metric (``ssim`` is
``create_metric("ssim")``, the MATLAB grey SSIM)."""

LOSS_METRICS: dict[str, tuple[str, ...]] = {
    "relational": ("relational_loss",),
    "mse": ("psnr",),
    "ssim_rgb": ("ssim",),
    "ms_ssim_rgb": ("ms_ssim",),
    "relational_score": ("relational_score",),
}
"""Judges an objective optimises directly (so they are not a held-out judge for it; keys of
:class:`reliqa.tuning.judge.Judge`'s results) where that is not the judge of its own name
(:func:`judged_directly`); ``relational_score`` is the black-box-only objective driven by the
score head."""


def judged_directly(loss: str) -> tuple[str, ...]:
    """Judges that ``loss`` optimises directly: :data:`LOSS_METRICS`, else a metric objective
    optimises the judge of its own name."""
    return LOSS_METRICS.get(loss, (loss,))


def _best_value(info: MetricInfo) -> float:
    """The metric's best possible value (its range's upper end if higher is better, else lower)."""
    return info.score_range[1] if info.higher_is_better else info.score_range[0]


def _is_loss_metric(info: MetricInfo) -> bool:
    return info.kind == "FR" and info.differentiable and math.isfinite(_best_value(info))


def loss_names() -> tuple[str, ...]:
    """Every name :func:`make_loss` takes: ``relational``, ``mse`` and each differentiable
    full-reference metric of the catalogue with a finite best value (PSNR's is +inf: ``mse``)."""
    import reliqa.metrics

    metrics = [info.name for info in reliqa.metrics.list_metrics() if _is_loss_metric(info)]
    return ("relational", "mse", *metrics)


def make_loss(name: str) -> LossFunction:
    """An objective by name, lower is better: ``relational`` (maps), ``mse``, or a catalogue
    metric by its catalogue name — ``|best − metric(test, reference)|`` with the metric's best
    value, e.g. ``ssim``: 1 − SSIM (grey, as ``create_metric("ssim")``), ``ssim_rgb``: 1 − SSIM
    per RGB channel, ``ms_ssim``/``ms_ssim_rgb`` likewise (images of at least 161 px), ``gmsd``.

    Raises:
        UnknownNameError: a name that is none of :func:`loss_names`.
    """
    if name == "relational":
        return lambda test, reference: relational_loss(test, reference)
    if name == "mse":
        return lambda test, reference: torch.mean((test - reference) ** 2)
    import reliqa.metrics

    try:
        metric = reliqa.metrics.create_metric(name)
    except UnknownNameError:
        metric = None
    if metric is None or not _is_loss_metric(metric.info):
        raise UnknownNameError(
            f"unknown tuning loss {name!r}; known: {', '.join(loss_names())}"
        ) from None
    best = _best_value(metric.info)
    sign = 1.0 if metric.info.higher_is_better else -1.0
    return lambda test, reference: sign * (best - metric(test, reference).mean())


def steps_to_converge(losses: Sequence[float], fraction: float = 0.05) -> int:
    """First step from which the loss stays within ``fraction`` of its total drop from the best.

    With L₀ the first loss and L* the lowest, the smallest t such that every later
    ``L_s ≤ L* + fraction·(L₀ − L*)``. 0 when the loss never fell.
    """
    if not losses:
        return 0
    first, best = losses[0], min(losses)
    bound = best + fraction * (first - best)
    step = len(losses)
    for index in range(len(losses) - 1, -1, -1):
        if losses[index] > bound:
            break
        step = index
    return 0 if first <= best else step


@dataclass
class GradientResult:
    """One gradient tuning run.

    Attributes:
        params: the parameters at the lowest loss seen.
        output: the pipeline's output with ``params``, (N, 3, H, W).
        losses: the loss before each step (``steps`` + 1 values: the last after the last step).
        trajectory: {name: value before each step, and after the last}.
        best_step: index into ``losses`` of the chosen parameters.
        converged_step: :func:`steps_to_converge` of ``losses``.
        wall_time_s: wall time of the loop.
    """

    params: dict[str, float]
    output: torch.Tensor
    losses: list[float]
    trajectory: dict[str, list[float]]
    best_step: int
    converged_step: int
    wall_time_s: float


def tune_gradient(
    source: torch.Tensor,
    reference: torch.Tensor,
    loss: LossFunction | str = "relational",
    *,
    tune: Sequence[str] | None = None,
    initial: Mapping[str, float] | None = None,
    fixed: Mapping[str, float] | None = None,
    steps: int = 150,
    lr: float = 0.05,
    seed: int = 0,
    callback: Callable[[int, float], None] | None = None,
) -> GradientResult:
    """Tune :class:`Pipeline` so that ``pipeline(source)`` approaches ``reference`` under ``loss``.

    Adam on the normalised parameters (:class:`Pipeline`), learning rate ``lr`` decayed by a
    cosine to ``lr / 10``, parameters clamped to their ranges after each step. The result keeps
    the parameters with the lowest loss seen.

    Arguments:
        source: (N, 3, H, W) in [0, 1], the pipeline's input.
        reference: (N, 3, H, W) in [0, 1], what the output should look like.
        loss: an objective ``(test, reference) → ()`` or a name of :func:`make_loss`.
        tune, initial, fixed: see :class:`Pipeline`.
        steps: optimiser steps (≥ 1).
        lr: Adam's learning rate on the normalised parameters.
        seed: seeds torch's global generator before the run.
        callback: called as ``callback(step, loss)`` after each evaluation.

    Raises:
        InvalidInputError: bad images, ``steps < 1`` or ``lr ≤ 0``.
    """
    check_tensor_image(source, "source", channels=(3,))
    check_tensor_image(reference, "reference", channels=(3,))
    if steps < 1 or not lr > 0:
        raise InvalidInputError(f"steps must be ≥ 1 and lr > 0, got {steps} and {lr}")
    objective = make_loss(loss) if isinstance(loss, str) else loss
    torch.manual_seed(seed)
    pipeline = Pipeline(tune, initial, fixed).to(source.device)
    optimiser = torch.optim.Adam(pipeline.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * step / steps))
    )
    losses: list[float] = []
    trajectory: dict[str, list[float]] = {name: [] for name in pipeline.names}
    best_value, best_params = math.inf, pipeline.as_dict()
    start = time.perf_counter()
    for step in range(steps + 1):
        params = pipeline.as_dict()
        for name, value in params.items():
            trajectory[name].append(value)
        optimiser.zero_grad(set_to_none=True)
        value_t = objective(pipeline(source), reference)
        value = float(value_t.detach())
        if not math.isfinite(value):
            raise InvalidInputError(f"the loss became {value} at step {step}")
        losses.append(value)
        if value < best_value:
            best_value, best_params = value, params
        if callback is not None:
            callback(step, value)
        if step == steps:
            break
        value_t.backward()
        optimiser.step()
        schedule.step()
        pipeline.project()
    wall = time.perf_counter() - start
    with torch.no_grad():
        final = Pipeline(tune, best_params, fixed).to(source.device)(source)
    return GradientResult(
        params=best_params,
        output=final,
        losses=losses,
        trajectory=trajectory,
        best_step=losses.index(best_value),
        converged_step=steps_to_converge(losses),
        wall_time_s=wall,
    )


# --------------------------------------------------------------------------------------------
# derivative-free: coordinate (compass) search over named parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchDimension:
    """A searched parameter: bounds, first step, and whether it takes integer values."""

    low: float
    high: float
    step: float
    integer: bool = False

    def clip(self, value: float) -> float:
        value = min(max(value, self.low), self.high)
        return float(round(value)) if self.integer else value


@dataclass
class SearchResult:
    """A coordinate search: best point and value, and every evaluation in order."""

    params: dict[str, float]
    value: float
    evaluations: list[tuple[dict[str, float], float]] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def best_so_far(self) -> list[float]:
        """Lowest value after each evaluation."""
        values = [value for _, value in self.evaluations]
        return list(np.minimum.accumulate(values)) if values else []


def coordinate_search(
    objective: Callable[[dict[str, float]], float],
    space: Mapping[str, SearchDimension],
    initial: Mapping[str, float],
    *,
    budget: int = 40,
    seed: int = 0,
    min_step: float = 1e-3,
) -> SearchResult:
    """Minimise a black-box ``objective(params) → float`` by compass search.

    Each sweep visits the parameters in a seeded random order and tries ``x ± step`` along each,
    moving to the first improvement (and trying the same direction first next time); a sweep with
    no improvement halves every step. Integer parameters round their trial points and stop
    shrinking at a step of 1. Repeated points are answered from a cache and cost no budget.

    Arguments:
        objective: lower is better; may be any Python function (Pillow, an external binary…).
        space: {name: :class:`SearchDimension`}.
        initial: the start point (clipped to the bounds).
        budget: the most objective evaluations.
        seed: fixes the sweep order.
        min_step: stop when every continuous step is below this (relative to its first step).

    Raises:
        InvalidInputError: empty space, missing start values, or ``budget < 1``.
    """
    _check_search(space, initial, budget)
    rng = np.random.default_rng(seed)
    names = list(space)
    point = {name: space[name].clip(float(initial[name])) for name in names}
    steps = {name: space[name].step for name in names}
    sign = {name: 1.0 for name in names}
    cache: dict[tuple[float, ...], float] = {}
    result = SearchResult(dict(point), math.inf)
    start = time.perf_counter()

    def evaluate(candidate: dict[str, float]) -> float | None:
        key = tuple(candidate[name] for name in names)
        if key in cache:
            return cache[key]
        if len(result.evaluations) >= budget:
            return None
        value = float(objective(dict(candidate)))
        cache[key] = value
        result.evaluations.append((dict(candidate), value))
        return value

    first = evaluate(point)
    current = math.inf if first is None else first
    while len(result.evaluations) < budget:
        improved = False
        for index in rng.permutation(len(names)):
            name = names[int(index)]
            dimension = space[name]
            for direction in (sign[name], -sign[name]):
                candidate = dict(point)
                candidate[name] = dimension.clip(point[name] + direction * steps[name])
                if candidate[name] == point[name]:
                    continue
                value = evaluate(candidate)
                if value is None:
                    break
                if value < current:
                    point, current, sign[name], improved = candidate, value, direction, True
                    break
        if len(result.evaluations) >= budget:
            break
        if not improved and not _halve_steps(space, steps, min_step):
            break  # every step at its minimum and no neighbour is better
    result.params, result.value = point, current
    result.wall_time_s = time.perf_counter() - start
    return result


def _check_search(
    space: Mapping[str, SearchDimension], initial: Mapping[str, float], budget: int
) -> None:
    if not space or budget < 1:
        raise InvalidInputError("coordinate search needs at least one parameter and budget ≥ 1")
    missing = sorted(set(space) - set(initial))
    if missing:
        raise InvalidInputError(f"coordinate search: no start value for {', '.join(missing)}")


def _halve_steps(
    space: Mapping[str, SearchDimension], steps: dict[str, float], min_step: float
) -> bool:
    """Halve every step in place (an integer step stops at 1, a continuous one at ``min_step``
    times its first step); False when no step could shrink."""
    shrunk = False
    for name in steps:
        dimension = space[name]
        if dimension.integer:
            new_step = max(1.0, float(math.floor(steps[name] / 2)))
        else:
            new_step = steps[name] / 2.0
            if new_step < min_step * dimension.step:
                new_step = steps[name]
        shrunk = shrunk or new_step != steps[name]
        steps[name] = new_step
    return shrunk


__all__ = [
    "LOSS_METRICS",
    "LOSS_NAMES",
    "GradientResult",
    "LossFunction",
    "SearchDimension",
    "SearchResult",
    "coordinate_search",
    "judged_directly",
    "loss_names",
    "make_loss",
    "steps_to_converge",
    "tune_gradient",
]
