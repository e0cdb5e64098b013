"""The worked tuning example behind ``reliqa tune`` (docs/tuning.md).

Three tasks on one photo (scikit-image's bundled photos, or a file), each run once per objective
(relational maps, MSE, SSIM and MS-SSIM per RGB channel) with the same pipeline, start point and
step budget:

- **recover**: the reference is :func:`~reliqa.tuning.pipeline.process` of a (slightly noisy)
  photo with known parameters; the pipeline starts at identity on the photo and should find
  them. Reported: the error of each parameter.
- **correct**: the test is the photo degraded by Pillow (blur, cool cast, darker, less
  saturated, JPEG: tools outside reliqa); the pipeline on it is tuned towards the photo.
- **blackbox**: a non-differentiable Pillow pipeline (unsharp mask, then JPEG) on a soft copy
  of the photo; JPEG quality and sharpening strength are found by :func:`coordinate_search`
  under a file-size budget.

Every run is judged by classical metrics (PSNR, SSIM, MS-SSIM, GMSD, FSIM; GMSD and FSIM are
in no objective, a held-out judge for all), by the relational model's score when its weights
load, and by the no-reference model ``hirqa-s`` (higher = better; it never sees the reference):
:mod:`reliqa.tuning.judge`. The images (photo, Pillow degradation, JPEG black box) are
:mod:`reliqa.tuning.photos`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch

from reliqa.catalogue import find
from reliqa.exceptions import InvalidInputError, UnknownNameError
from reliqa.io import load_image
from reliqa.tuning.judge import NO_REFERENCE_JUDGE, Judge, attribute_summary
from reliqa.tuning.loss import shipped_map_network
from reliqa.tuning.optimize import (
    LOSS_NAMES,
    GradientResult,
    LossFunction,
    SearchDimension,
    coordinate_search,
    loss_names,
    make_loss,
    tune_gradient,
)
from reliqa.tuning.photos import (
    DEGRADATION,
    degrade_with_pillow,
    jpeg_sharpen,
    load_photo,
    soften_with_pillow,
)
from reliqa.tuning.pipeline import IDENTITY, PARAMETER_NAMES, process

TASKS: tuple[str, ...] = ("recover", "correct", "blackbox")

TRUTH: dict[str, float] = {
    "exposure": -0.5,
    "gamma": 1.3,
    "saturation": 0.7,
    "temperature": 0.15,
    "tint": -0.1,
    "denoise": 0.0,
    "sharpen": 1.0,
}
"""The parameters the *recover* task hides in its reference."""

INFEASIBLE = 1e3
"""Objective value of a black-box point over the file-size budget (times 1 + the excess bpp)."""

BLACKBOX_BUDGET_BPP = 1.0
"""File-size budget of the *blackbox* task, bits per pixel of the JPEG file."""


# --------------------------------------------------------------------------------------------
# the tasks
# --------------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """One objective's run on one task (JSON-ready through :meth:`to_dict`)."""

    loss: str
    params: dict[str, float]
    output: torch.Tensor
    quality: dict[str, float | None]
    attributes: dict[str, float]
    wall_time_s: float
    steps: int
    converged_step: int
    curve: list[float]
    trajectory: dict[str, list[float]]
    error: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_abs_error(self) -> float | None:
        """Mean absolute parameter error (tasks with a known truth), else None."""
        return None if self.error is None else float(np.mean(list(self.error.values())))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "params": self.params,
            "quality": self.quality,
            "attributes": self.attributes,
            "wall_time_s": self.wall_time_s,
            "steps": self.steps,
            "converged_step": self.converged_step,
            "curve": self.curve,
            "trajectory": self.trajectory,
            **self.extra,
        }
        if self.error is not None:
            data["error"] = self.error
            data["mean_abs_error"] = self.mean_abs_error
        return data


@dataclass
class TaskResult:
    """One task: its images, the state before tuning, and one :class:`RunRecord` per objective."""

    name: str
    source: torch.Tensor
    reference: torch.Tensor
    before: dict[str, float | None]
    before_attributes: dict[str, float]
    runs: dict[str, RunRecord]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def judged(cls, name: str, source: torch.Tensor, reference: torch.Tensor, judge: Judge,
               runs: dict[str, RunRecord], info: dict[str, Any]) -> TaskResult:
        """The task, its state before tuning judged here: ``judge`` and
        :func:`~reliqa.tuning.judge.attribute_summary` of ``source`` against ``reference``."""
        before = judge(source, reference)
        return cls(name, source, reference, before, attribute_summary(source, reference), runs, info)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info,
            "before": {"quality": self.before, "attributes": self.before_attributes},
            "runs": {name: run.to_dict() for name, run in self.runs.items()},
        }


def _gradient_runs(
    source: torch.Tensor,
    reference: torch.Tensor,
    losses: Sequence[str],
    judge: Judge,
    *,
    steps: int,
    lr: float,
    seed: int,
    truth: Mapping[str, float] | None,
    progress: Callable[[str], None] | None,
) -> dict[str, RunRecord]:
    runs = {}
    for name in losses:
        if progress:
            progress(name)
        result: GradientResult = tune_gradient(
            source, reference, make_loss(name), steps=steps, lr=lr, seed=seed
        )
        error = None
        if truth is not None:
            error = {p: abs(result.params[p] - truth[p]) for p in PARAMETER_NAMES}
        runs[name] = RunRecord(
            loss=name,
            params=result.params,
            output=result.output,
            quality=judge(result.output, reference),
            attributes=attribute_summary(result.output, reference),
            wall_time_s=result.wall_time_s,
            steps=steps,
            converged_step=result.converged_step,
            curve=result.losses,
            trajectory=result.trajectory,
            error=error,
            extra={"best_step": result.best_step},
        )
    return runs


def run_recover(
    photo: torch.Tensor,
    losses: Sequence[str] = LOSS_NAMES,
    *,
    judge: Judge,
    steps: int = 150,
    lr: float = 0.05,
    seed: int = 0,
    truth: Mapping[str, float] = TRUTH,
    noise: float = 0.02,
    progress: Callable[[str], None] | None = None,
) -> TaskResult:
    """Task *recover*: find ``truth`` from the photo (plus seeded noise) and its processed copy."""
    generator = torch.Generator().manual_seed(seed)
    source = (photo + noise * torch.randn(photo.shape, generator=generator)).clamp(0.0, 1.0)
    with torch.no_grad():
        reference = process(source, truth)
    runs = _gradient_runs(
        source,
        reference,
        losses,
        judge,
        steps=steps,
        lr=lr,
        seed=seed,
        truth=truth,
        progress=progress,
    )
    info = {"truth": dict(truth), "initial": dict(IDENTITY), "noise": noise}
    return TaskResult.judged("recover", source, reference, judge, runs, info)


def run_correct(
    photo: torch.Tensor,
    losses: Sequence[str] = LOSS_NAMES,
    *,
    judge: Judge,
    steps: int = 150,
    lr: float = 0.05,
    seed: int = 0,
    degraded: torch.Tensor | None = None,
    progress: Callable[[str], None] | None = None,
) -> TaskResult:
    """Task *correct*: tune the pipeline on a Pillow-degraded copy (or ``degraded``) to the photo."""
    source = degrade_with_pillow(photo) if degraded is None else degraded
    runs = _gradient_runs(
        source,
        photo,
        losses,
        judge,
        steps=steps,
        lr=lr,
        seed=seed,
        truth=None,
        progress=progress,
    )
    info: dict[str, Any] = {"degradation": dict(DEGRADATION) if degraded is None else "given"}
    return TaskResult.judged("correct", source, photo, judge, runs, info)


def _blackbox_objective(loss: LossFunction) -> Callable[[torch.Tensor, torch.Tensor], float]:
    def objective(test: torch.Tensor, reference: torch.Tensor) -> float:
        with torch.no_grad():
            return float(loss(test, reference))

    return objective


def _blackbox_objectives(
    losses: Sequence[str], judge: Judge | None
) -> dict[str, Callable[[torch.Tensor, torch.Tensor], float]]:
    """One objective per loss, plus ``relational_score`` (the negative relational score) when
    ``judge`` has a relational model: a black box needs no gradient, so the score can drive it."""
    objectives = {name: _blackbox_objective(make_loss(name)) for name in losses}
    if judge is not None and judge.scorer is not None:
        scorer = judge.scorer
        objectives["relational_score"] = _blackbox_objective(
            lambda test, reference: -scorer(test, reference).score.mean()
        )
    return objectives


def run_blackbox(
    photo: torch.Tensor,
    losses: Sequence[str] = LOSS_NAMES,
    *,
    judge: Judge,
    budget: int = 40,
    seed: int = 0,
    budget_bpp: float = BLACKBOX_BUDGET_BPP,
    soft_radius: float = 1.2,
    score_objective: bool = True,
    progress: Callable[[str], None] | None = None,
) -> TaskResult:
    """Task *blackbox*: JPEG quality and unsharp mask of a soft photo, by coordinate search.

    The objective is the loss of the JPEG against the photo; files over ``budget_bpp`` bits
    per pixel are infeasible (objective :data:`INFEASIBLE` × (1 + excess bpp): above every
    feasible point, and lower closer to the budget, so a search that starts over it walks back).
    Start: quality 20, no sharpening. With ``score_objective`` and a judge whose relational
    model loaded, one more search is driven by the relational *score* (its negative, run
    ``relational_score``): a black box needs no gradient, so the score head can drive it.
    """
    source = soften_with_pillow(photo, soft_radius)
    pixels = photo.shape[-2] * photo.shape[-1]
    space = {
        "quality": SearchDimension(5, 95, 16, integer=True),
        "sharpen": SearchDimension(0, 300, 80, integer=True),
    }
    start = {"quality": 20.0, "sharpen": 0.0}
    runs = {}
    objectives = _blackbox_objectives(losses, judge if score_objective else None)
    for name, score in objectives.items():
        if progress:
            progress(name)

        def objective(params: dict[str, float], score: Callable[..., float] = score) -> float:
            output, size = jpeg_sharpen(source, params["quality"], params["sharpen"])
            bpp = 8.0 * size / pixels
            if bpp > budget_bpp:  # infeasible: worse than any feasible point, less so if closer
                return INFEASIBLE * (1.0 + bpp - budget_bpp)
            return score(output, photo)

        search = coordinate_search(objective, space, start, budget=budget, seed=seed)
        output, size = jpeg_sharpen(source, search.params["quality"], search.params["sharpen"])
        values = [value for _, value in search.evaluations]
        finite = [v if math.isfinite(v) else float("nan") for v in values]
        runs[name] = RunRecord(
            loss=name,
            params=search.params,
            output=output,
            quality=judge(output, photo),
            attributes=attribute_summary(output, photo),
            wall_time_s=search.wall_time_s,
            steps=len(values),
            converged_step=int(np.argmin(values)) if values else 0,
            curve=finite,
            trajectory={key: [params[key] for params, _ in search.evaluations] for key in space},
            extra={"bpp": 8.0 * size / pixels, "evaluations": len(values)},
        )
    start_output, start_size = jpeg_sharpen(source, start["quality"], start["sharpen"])
    info = {
        "budget_bpp": budget_bpp,
        "start": start,
        "start_bpp": 8.0 * start_size / pixels,
        "soft_radius": soft_radius,
        "start_quality": judge(start_output, photo),
    }
    return TaskResult.judged("blackbox", source, photo, judge, runs, info)


def _weights_hashes() -> dict[str, str | None]:
    """sha256 of the shipped weights the loss and the judges used (from their model cards)."""
    from reliqa.models.weights import read_model_card

    hashes: dict[str, str | None] = {}
    for name in ("relational", NO_REFERENCE_JUDGE):
        try:
            hashes[name] = str(read_model_card(name).get("sha256"))
        except Exception:  # a missing card is reported as None, the run goes on
            hashes[name] = None
    return hashes


@dataclass
class ExampleResult:
    """All tasks of one ``reliqa tune`` run."""

    config: dict[str, Any]
    tasks: dict[str, TaskResult]
    wall_time_s: float
    scorer_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "tasks": {name: task.to_dict() for name, task in self.tasks.items()},
            "wall_time_s": self.wall_time_s,
            "relational_score_unavailable": self.scorer_error,
        }


def _check_example_names(tasks: Sequence[str], losses: Sequence[str]) -> None:
    bad = [t for t in tasks if t not in TASKS] + [x for x in losses if x not in loss_names()]
    if bad or not tasks or not losses:
        raise UnknownNameError(
            f"unknown or no tasks/losses ({', '.join(bad) or 'none given'}); tasks: "
            f"{', '.join(TASKS)}; losses: {', '.join(loss_names())}"
        )


def _example_images(
    image: str, size: int, reference: str | None, test: str | None, losses: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The photo and, with ``reference`` and ``test``, the given degraded copy (else None),
    checked to be large enough for the losses."""
    degraded = None
    if reference is not None and test is not None:
        photo, degraded = load_image(reference), load_image(test)
        if photo.shape != degraded.shape or photo.shape[0] != 1:
            raise InvalidInputError(
                f"reference {reference} and test {test} must be single images of the same size, "
                f"got {tuple(photo.shape)} and {tuple(degraded.shape)}"
            )
    else:
        photo = load_photo(image, size)
    side = min(photo.shape[-2:])
    for loss in losses:  # the catalogue's minimum size of each metric objective
        entry = find(loss)
        least = int(entry.info.extra.get("min_size") or 1) if entry else 1
        if side < least:
            raise InvalidInputError(f"the {loss} loss needs images of at least {least} px, got {side}")
    return photo, degraded


def run_example(
    image: str = "astronaut",
    *,
    size: int = 256,
    tasks: Sequence[str] = TASKS,
    losses: Sequence[str] = LOSS_NAMES,
    steps: int = 150,
    lr: float = 0.05,
    budget: int = 40,
    seed: int = 0,
    reference: str | None = None,
    test: str | None = None,
    progress: Callable[[str], None] | None = None,
    on_task: Callable[[ExampleResult], object] | None = None,
) -> ExampleResult:
    """Run the worked example; see the module docstring.

    Arguments:
        image: a ``skimage.data`` photo name or an image file (the reference photo).
        size: side of the square working image (MS-SSIM needs ≥ 161).
        tasks: any of :data:`TASKS`.
        losses: any of :func:`~reliqa.tuning.optimize.loss_names` (default
            :data:`~reliqa.tuning.optimize.LOSS_NAMES`).
        steps, lr: gradient tuning budget and learning rate.
        budget: objective evaluations of each black-box search.
        seed: makes every run repeatable.
        reference, test: two files of the same size: the *correct* task then tunes the pipeline
            on ``test`` towards ``reference`` (no resizing) instead of the built-in degradation.
        progress: called with a short label before each run.
        on_task: called after each task but the last with the result so far (the finished
            tasks), e.g. to write them at once: a run stopped later keeps them. After the last
            task the returned result is complete, so it is not called again (a caller that
            writes both would write the same report twice).

    Raises:
        InvalidInputError / UnknownNameError: bad names, sizes or files.
    """
    _check_example_names(tasks, losses)
    if (reference is None) != (test is None):
        raise InvalidInputError("give both a reference and a test image, or neither")
    torch.manual_seed(seed)
    begin = time.perf_counter()
    photo, degraded = _example_images(image, size, reference, test, losses)
    judge = Judge.create()
    shipped_map_network(str(photo.device))  # loaded here, so no run's wall time includes it
    results: dict[str, TaskResult] = {}
    config = {
        "image": image if reference is None else {"reference": reference, "test": test},
        "size": list(photo.shape[-2:]),
        "tasks": list(tasks),
        "losses": list(losses),
        "steps": steps,
        "lr": lr,
        "budget": budget,
        "seed": seed,
        "threads": torch.get_num_threads(),
        "weights_sha256": _weights_hashes(),
    }

    def label(task: str) -> Callable[[str], None] | None:
        return None if progress is None else (lambda name: progress(f"{task}: {name}"))

    def finished(task: str, result: TaskResult) -> None:
        results[task] = result
        if on_task is not None and len(results) < len(set(tasks)):
            on_task(ExampleResult(config, dict(results), time.perf_counter() - begin, judge.scorer_error))

    runners: dict[str, Callable[..., TaskResult]] = {  # in the order of TASKS
        "recover": partial(run_recover, photo, losses, judge=judge, steps=steps, lr=lr, seed=seed),
        "correct": partial(
            run_correct, photo, losses, judge=judge, steps=steps, lr=lr, seed=seed, degraded=degraded
        ),
        "blackbox": partial(run_blackbox, photo, losses, judge=judge, budget=budget, seed=seed),
    }
    for task, run in runners.items():
        if task in tasks:
            finished(task, run(progress=label(task)))
    return ExampleResult(config, results, time.perf_counter() - begin, judge.scorer_error)


__all__ = [
    "TASKS",
    "TRUTH",
    "ExampleResult",
    "RunRecord",
    "TaskResult",
    "run_blackbox",
    "run_correct",
    "run_example",
    "run_recover",
]
