"""Pictures and the HTML report of a tuning run (``reliqa tune --out DIR``).

Every figure is drawn on Matplotlib's Agg canvas directly (no pyplot state) and returned as an
(H, W, 3) uint8 array; :func:`write_report` saves them as PNGs beside ``report.html`` (which
embeds them) and ``results.json``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from reliqa.io import save_image, to_uint8_array
from reliqa.tuning.example import ExampleResult, TaskResult
from reliqa.tuning.loss import relational_loss
from reliqa.tuning.optimize import judged_directly

# One colour per objective by its position in a task's runs (every task runs the objectives in
# the same order; the black box's extra score-driven search comes last), so any objective name
# gets a colour of its own without a list of names here.
_PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_TITLES = {
    "recover": "recover known parameters",
    "correct": "correct a Pillow degradation",
    "blackbox": "black box: JPEG quality + sharpening, size budget",
}


def _canvas_array(figure: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def images_figure(task: TaskResult, title: str | None = None) -> np.ndarray:
    """One row: the test before tuning, each objective's result, the reference."""
    panels: list[tuple[str, torch.Tensor]] = [("before (test)", task.source)]
    panels += [(f"{name}", run.output) for name, run in task.runs.items()]
    panels.append(("reference", task.reference))
    figure = Figure(figsize=(2.3 * len(panels), 2.75), dpi=100, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (label, image) in zip(axes, panels):
        ax.imshow(to_uint8_array(image))
        ax.set_axis_off()
        ax.set_title(label, fontsize=10)
    if title:
        figure.suptitle(title, fontsize=11)
    return _canvas_array(figure)


def maps_figure(test: torch.Tensor, reference: torch.Tensor, title: str) -> np.ndarray:
    """The relational maps of ``test`` against ``reference`` (panels of changed attributes)."""
    from reliqa.reports.maps import render_maps

    with torch.no_grad():
        _, terms = relational_loss(test, reference, return_terms=True)
    return render_maps(test, terms.maps, title=title)


def curves_figure(result: ExampleResult) -> np.ndarray:
    """Loss curves, one panel per task: the loss relative to its start (log scale)."""
    tasks = list(result.tasks.values())
    figure = Figure(figsize=(4.2 * len(tasks), 3.2), dpi=100, layout="constrained")
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for ax, task in zip(axes, tasks):
        positive = False
        for position, (name, run) in enumerate(task.runs.items()):
            colour = _PALETTE[position % len(_PALETTE)]
            curve = np.asarray(run.curve, dtype=float)
            if task.name == "blackbox":
                curve = np.fmin.accumulate(np.where(np.isfinite(curve), curve, np.inf))
            finite = curve[np.isfinite(curve)]
            first = finite[0] if finite.size else 1.0
            relative = curve / first if first > 0 else curve
            positive = positive or bool((relative[np.isfinite(relative)] > 0).any())
            ax.plot(relative, color=colour, label=name, linewidth=1.4)
            ax.axvline(run.converged_step, color=colour, linestyle=":", linewidth=0.8)
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel("evaluation (best so far)" if task.name == "blackbox" else "step")
        ax.set_ylabel("loss / loss at start")
        ax.set_title(_TITLES.get(task.name, task.name), fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _canvas_array(figure)


def trajectories_figure(task: TaskResult) -> np.ndarray:
    """Each parameter's value along each objective's run (dashed: the truth, when known)."""
    names = list(next(iter(task.runs.values())).trajectory)
    truth = task.info.get("truth")
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure = Figure(figsize=(3.2 * columns, 2.4 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(names):
            ax.set_axis_off()
            continue
        name = names[index]
        for position, (loss, run) in enumerate(task.runs.items()):
            colour = _PALETTE[position % len(_PALETTE)]
            ax.plot(run.trajectory[name], color=colour, label=loss, linewidth=1.3)
        if truth and name in truth:
            ax.axhline(truth[name], color="black", linestyle="--", linewidth=1.0, label="truth")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        if index == 0:
            ax.legend(fontsize=7)
    figure.suptitle(f"parameter trajectories: {_TITLES.get(task.name, task.name)}", fontsize=11)
    return _canvas_array(figure)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def quality_table(task: TaskResult) -> tuple[list[str], list[list[str]]]:
    """Rows per objective: final quality by every judge, steps to converge, wall time.

    A value the objective optimised directly is marked ``*`` (it is not a held-out judge).
    """
    metrics = list(next(iter(task.runs.values())).quality)
    header = ["objective", *metrics, "converged at", "wall s"]
    rows = [["(before)", *(_fmt(task.before[m]) for m in metrics), "", ""]]
    for name, run in task.runs.items():
        own = set(judged_directly(name))
        cells = [_fmt(run.quality[m]) + ("*" if m in own else "") for m in metrics]
        rows.append([name, *cells, str(run.converged_step), f"{run.wall_time_s:.1f}"])
    return header, rows


def params_table(task: TaskResult) -> tuple[list[str], list[list[str]]]:
    """Rows per objective: the parameters found (and, for *recover*, the truth and the errors)."""
    names = list(next(iter(task.runs.values())).params)
    truth = task.info.get("truth")
    header = ["objective", *names]
    rows = []
    if truth:
        rows.append(["truth", *(_fmt(truth[n], 3) for n in names)])
    for loss, run in task.runs.items():
        cells = []
        for n in names:
            cell = _fmt(run.params[n], 3)
            if run.error is not None:
                cell += f" (±{run.error[n]:.3f})"
            cells.append(cell)
        rows.append([loss, *cells])
    return header, rows


def write_report(result: ExampleResult, out: str | os.PathLike) -> dict[str, str]:
    """Write ``report.html``, ``results.json``, the PNG figures and each run's output image.

    Returns:
        {"report", "results", "<figure name>": path, …} of the written files.
    """
    from reliqa.reports.html import Picture, ReportPage

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    results_path = folder / "results.json"
    results_path.write_text(json.dumps(jsonable(result.to_dict()), indent=2, allow_nan=False))
    written["results"] = str(results_path)

    config = result.config
    page = ReportPage(
        "reliqa tune: a pipeline tuned by relational maps, MSE, SSIM and MS-SSIM",
        f"image {config['image']}, size {config['size']}, {config['steps']} gradient steps "
        f"(lr {config['lr']}), black-box budget {config['budget']} evaluations, seed "
        f"{config['seed']}, {config['threads']} CPU threads; total {result.wall_time_s:.1f} s.",
    )
    page.paragraph(
        "Judges: PSNR, SSIM, MS-SSIM (official definitions), GMSD and FSIM (in no objective: "
        "a held-out judge for all), the relational loss and the relational model's score. "
        "A value marked * was optimised directly by that row's objective.",
        note=True,
    )
    if result.scorer_error:
        page.paragraph(
            f"The relational score is unavailable in this run ({result.scorer_error}).", note=True
        )
    figures: dict[str, np.ndarray] = {"curves": curves_figure(result)}
    for name, task in result.tasks.items():
        page.heading(_TITLES.get(name, name))
        figures[f"{name}_images"] = images_figure(task)
        page.pictures(
            [Picture(figures[f"{name}_images"], "before, each objective's result, reference")]
        )
        header, rows = quality_table(task)
        page.table(header, rows)
        header, rows = params_table(task)
        page.table(header, rows)
        if "relational" in task.runs:
            before = maps_figure(task.source, task.reference, "maps before tuning")
            after = maps_figure(
                task.runs["relational"].output,
                task.reference,
                "maps after tuning (relational objective)",
            )
            figures[f"{name}_maps_before"], figures[f"{name}_maps_after"] = before, after
            page.pictures(
                [
                    Picture(before, "relational maps of the test before tuning"),
                    Picture(after, "… and of the relational objective's result"),
                ]
            )
        figures[f"{name}_trajectories"] = trajectories_figure(task)
        page.pictures([Picture(figures[f"{name}_trajectories"], "per-parameter trajectories")])
        for loss, run in task.runs.items():
            written[f"{name}_{loss}_output"] = str(
                save_image(run.output, folder / f"{name}_{loss}.png")
            )
    page.heading("loss curves")
    page.pictures([Picture(figures["curves"], "loss relative to its start; dotted: converged")])
    for key, array in figures.items():
        path = folder / f"{key}.png"
        Image.fromarray(array).save(path)
        written[key] = str(path)
    written["report"] = str(page.save(folder / "report.html"))
    return written


def jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return jsonable(value.item())
    return value


__all__ = [
    "curves_figure",
    "images_figure",
    "jsonable",
    "maps_figure",
    "params_table",
    "quality_table",
    "trajectories_figure",
    "write_report",
]
