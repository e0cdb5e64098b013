"""Benchmark metrics and models on a human-rated dataset: correlations, GMC, plots.

What :func:`run_benchmark` does (``reliqa bench`` is a thin shell over it):

1. **Scoring** goes through :func:`reliqa.batch.runner.run_batch`: each image (and its
   reference) is decoded once for all scorers, same-size images are stacked into one forward
   pass, and every row is appended to ``<out_dir>/scores.csv`` and flushed as it is scored. A
   rerun with the same ``out_dir`` skips the rows already there (resume); an unreadable image,
   or one a metric refuses, becomes a row with an ``error`` and the run goes on.
2. **Direction.** Every correlation is reported so that *higher = agrees with human opinion*:
   a metric whose ``higher_is_better`` is False (NIQE, GMSD, …) is negated before
   correlating, and a DMOS dataset is put on a higher-is-better scale
   (:meth:`IQADataset.quality`). So SRCC = 0.6 for NIQE means "lower NIQE goes with better
   quality, with strength 0.6"; a negative value means the metric disagrees with the humans.
3. **Per metric**, over the rows where it produced a finite score: SRCC, PLCC (raw and after
   the 5-parameter logistic) and KRCC with bootstrap confidence intervals
   (:func:`reliqa.evaluation.correlation.correlation_report`), the GMC surface and its average
   height (:func:`reliqa.surfaces.gmc.gmc`; with per-image MOS std when the dataset has it,
   otherwise GMC's regulator estimates it), a GMC heatmap PNG, an interactive HTML surface, and
   a scatter plot of the metric against MOS.
4. ``summary.json`` in ``out_dir`` holds everything :class:`BenchmarkResult` holds.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reliqa.batch import (
    ERROR_COLUMN,
    IMAGE_COLUMN,
    REFERENCE_COLUMN,
    BatchItem,
    progress_bar,
    run_batch,
)
from reliqa.evaluation.datasets import IQADataset
from reliqa.evaluation.scorers import Scorer, resolve_scorer
from reliqa.exceptions import InvalidInputError, ReliqaError

SCORES_FILE = "scores.csv"
SUMMARY_FILE = "summary.json"


@dataclass
class MetricSummary:
    """Agreement of one metric with the dataset's MOS.

    ``correlations`` is :func:`correlation_report`'s dict (values and CIs, direction-corrected);
    ``gmc_average_height`` maps PLCC/SRCC/KRCC to the GMC surface's average height
    (``gmc_global``: the plain correlations GMC computed; ``gmc_notes``: its remarks); ``plots``
    maps a plot kind to its file. ``error`` explains a metric that could not be evaluated.
    """

    name: str
    higher_is_better: bool
    count: int
    correlations: dict[str, Any] = field(default_factory=dict)
    gmc_average_height: dict[str, float] = field(default_factory=dict)
    gmc_global: dict[str, float] = field(default_factory=dict)
    gmc_notes: list[str] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass
class BenchmarkResult:
    """A finished benchmark: dataset facts, per-metric summaries and where the files are."""

    dataset: str
    root: str
    items: int
    failed: int
    scored_now: int
    mos_higher_is_better: bool
    out_dir: str
    scores_csv: str
    metrics: dict[str, MetricSummary]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_benchmark(
    dataset: IQADataset,
    metrics: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    resume: bool = True,
    workers: int = 0,
    progress: bool = True,
    n_boot: int = 1000,
    gmc_samples: int = 100,
    seed: int = 0,
) -> BenchmarkResult:
    """Score ``dataset`` with every metric/model in ``metrics`` and evaluate against its MOS.

    Args:
        dataset: from :func:`reliqa.evaluation.dataset_layouts.load_dataset` (use ``.head(n)`` to limit).
        metrics: metric or model names (:func:`reliqa.evaluation.scorers.resolve_scorer`).
        out_dir: folder for ``scores.csv``, ``summary.json`` and the plots.
        batch_size: most same-size images per forward pass.
        device: torch device for the scorers (default cpu).
        resume: keep the rows of an earlier run in ``out_dir`` (False: start afresh).
        workers: decoding worker processes (0: decode in this process).
        progress: show a progress bar when stderr is a terminal.
        n_boot: bootstrap resamples for the confidence intervals.
        gmc_samples: GMC query points (seeded Latin hypercube).
        seed: seed of the bootstrap and of the GMC query points.

    Returns:
        A :class:`BenchmarkResult` (also written to ``out_dir/summary.json``).

    Raises:
        InvalidInputError: no metric, a full-reference metric on a no-reference dataset, bad
            batch size.
        UnknownNameError: a name is neither a metric nor a model.
        DataError: ``scores.csv`` in ``out_dir`` was written for other metrics.
    """
    started = time.perf_counter()
    names = list(metrics)
    if not names:
        raise InvalidInputError("--metrics: give at least one metric or model name")
    scorers = {name: resolve_scorer(name) for name in dict.fromkeys(names)}
    _check_kinds(dataset, scorers.values())
    out_dir = Path(out_dir)
    scores_csv = _scores_file(out_dir, resume=resume)

    items = [
        BatchItem(image=str(item.image), reference=str(item.reference) if item.reference else None)
        for item in dataset
    ]
    with progress_bar(progress) as on_progress:
        summary = run_batch(
            items, names, scores_csv, device=device, workers=workers, batch_size=batch_size,
            on_progress=on_progress,
        )
    dataset_rows = _rows_in_order(scores_csv, items)

    summaries = {
        scorer.name: _evaluate(scorer, dataset, dataset_rows, out_dir, n_boot, gmc_samples, seed, device)
        for scorer in scorers.values()
    }
    result = BenchmarkResult(
        dataset=dataset.name,
        root=str(dataset.root),
        items=len(dataset),
        failed=sum(1 for row in dataset_rows if row.get(ERROR_COLUMN) or not row),
        scored_now=summary.scored_now,
        mos_higher_is_better=dataset.higher_is_better,
        out_dir=str(out_dir),
        scores_csv=str(scores_csv),
        metrics=summaries,
        seconds=time.perf_counter() - started,
    )
    (out_dir / SUMMARY_FILE).write_text(json.dumps(_finite_or_none(result.to_dict()), indent=2) + "\n")
    return result


def _check_kinds(dataset: IQADataset, scorers: Iterable[Scorer]) -> None:
    full_reference = [scorer.name for scorer in scorers if scorer.kind == "FR"]
    if full_reference and not dataset.full_reference:
        raise InvalidInputError(
            f"{', '.join(full_reference)}: full-reference, but the {dataset.name} dataset at "
            f"{dataset.root} has no reference images"
        )


def _scores_file(out_dir: Path, *, resume: bool) -> Path:
    """``out_dir``'s scores file (the folder created; an earlier file removed unless ``resume``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_csv = out_dir / SCORES_FILE
    if not resume and scores_csv.exists():
        scores_csv.unlink()
    return scores_csv


def _rows_by_key(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    from reliqa.batch import read_results

    return {(row.get(REFERENCE_COLUMN) or "", row[IMAGE_COLUMN]): row for row in read_results(path)}


def _rows_in_order(path: Path, items: Sequence[BatchItem]) -> list[dict[str, str]]:
    """The results row of each item, in the items' order (``{}`` for an item without one)."""
    rows = _rows_by_key(path)
    return [rows.get((item.reference or "", item.image), {}) for item in items]


def _evaluate(
    scorer: Scorer,
    dataset: IQADataset,
    rows: Sequence[dict[str, str]],
    out_dir: Path,
    n_boot: int,
    gmc_samples: int,
    seed: int,
    device: str | torch.device | None = None,
) -> MetricSummary:
    """Correlations, GMC and plots of one metric over the rows where it has a finite score."""
    values = np.array([_as_float(row.get(scorer.name)) for row in rows], dtype=np.float64)
    valid = np.isfinite(values)
    summary = MetricSummary(scorer.name, scorer.higher_is_better, int(valid.sum()))
    if summary.count < 3:
        summary.error = f"only {summary.count} image(s) scored; correlations need at least 3"
        return summary
    prediction = values[valid] if scorer.higher_is_better else -values[valid]
    quality = dataset.quality()[valid]
    std_all = dataset.std()
    std = std_all[valid] if std_all is not None else None
    try:
        from reliqa.evaluation.correlation import correlation_report
        from reliqa.surfaces.gmc import gmc, plot_heatmap, plot_surface_html

        summary.correlations = correlation_report(prediction, quality, n_boot=n_boot, seed=seed)
        surface = gmc(prediction, quality, std=std, samples=gmc_samples, seed=seed, device=device)
        summary.gmc_average_height = {k: float(v) for k, v in surface.average_height.items()}
        summary.gmc_global = {k: float(v) for k, v in surface.global_.items()}
        summary.gmc_notes = list(surface.notes)
        heatmap, html = out_dir / f"gmc_{scorer.name}.png", out_dir / f"gmc_{scorer.name}.html"
        plot_heatmap(surface, heatmap)
        plot_surface_html(surface, html)
        summary.plots = {"gmc_heatmap": str(heatmap), "gmc_surface": str(html)}
    except ReliqaError as error:
        summary.error = str(error)
    scatter = out_dir / f"scatter_{scorer.name}.png"
    _scatter_plot(values[valid], dataset.mos()[valid], scorer, dataset, scatter)
    summary.plots["scatter"] = str(scatter)
    return summary


def _as_float(text: str | None) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def _scatter_plot(values: np.ndarray, mos: np.ndarray, scorer: Scorer, dataset: IQADataset, path: Path) -> None:
    """Metric (x, native direction) against MOS as published (y)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4), dpi=120)
    axes.scatter(values, mos, s=6, alpha=0.5, linewidths=0)
    axes.set_xlabel(f"{scorer.name} ({'higher' if scorer.higher_is_better else 'lower'} = better)")
    axes.set_ylabel(f"{'MOS' if dataset.higher_is_better else 'DMOS'} ({dataset.name})")
    axes.set_title(f"{scorer.name} on {dataset.name} ({values.size} images)")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _finite_or_none(value: Any) -> Any:
    """JSON has no NaN/inf: they become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, np.generic):
        return _finite_or_none(value.item())
    return value
