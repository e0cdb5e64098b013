"""Granularity-Modulated Correlation (GMC): where along the quality scale a model ranks well.

A global SRCC says how well a model orders *all* images. GMC asks the same question locally:
at a query point (Qs, Qd) — a quality scale Qs and a quality difference Qd — it weights every
unordered image pair {i, j} by how well the pair sits there, and computes a weighted
correlation. Over many points this gives a surface; its mean is the "average height".

Definition (the authors' code, see ``../shared/data/README.md``), with y the MOS, s the
prediction, σ the per-image MOS standard deviation and w the Distribution-Regulator weights::

    W_ij = exp(−(Qs−y_i)²/(2σ_i²)) · exp(−(Qs−y_j)²/(2σ_j²))
           · exp(−(Qd−|y_i−y_j|)²/(2(σ_i²+σ_j²))) · w_i · w_j
    PLCC-GMC = Σ W a b / sqrt(Σ W a² · Σ W b²),   a = s_i − s_j, b = y_i − y_j
    SRCC-GMC = the same on dense ranks of s and y over the whole set
    KRCC-GMC = Σ W sign(a) sign(b) / Σ W

- **Granularity Modulator**: the Gaussian bandwidths σ_i (times ``bandwidth_multiplier``).
  Without per-image std, σ_i comes from a Beta model of the ratings (:func:`beta_std`).
- **Distribution Regulator**: w_i ∝ 1 / (density of MOS around y_i), so that crowded parts of
  the scale do not dominate (:func:`regulator_weights`).

How it is computed (exact, no pruning): W_ij depends on an image only through (y, σ, w), so
images sharing all three form a *group* and every pair sum factorises into per-group
statistics — counts, means and squared deviations of s and of its ranks, and, for KRCC, the
signed concordance count between two groups. Per query point the cost is then one exponential
per *pair of groups*: O(M²) with M ≤ N groups (KADID-10k: N = 10,125 images, M = 1,933,
1.9 M group pairs instead of 51 M image pairs). The weights are evaluated in log-space with a
running per-point maximum (as in a streaming log-sum-exp), so they never underflow to 0/0.
See docs/gmc.md for the decisions the definition leaves open.

Modules: :mod:`~reliqa.surfaces.inputs` (score range, std, regulator weights, query
points), :mod:`~reliqa.surfaces.pairs` (the grouped pair sums, :func:`gmc_values`),
:mod:`~reliqa.surfaces.fit` (surface fitting), :mod:`~reliqa.surfaces.plot`
(pictures), :mod:`~reliqa.surfaces.result` (:class:`GMCResult`); this module holds the public
entry point :func:`gmc` and re-exports the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

from reliqa.evaluation.correlation import (
    CORRELATION_FUNCTIONS,
    validate_pair,
)
from reliqa.exceptions import InvalidInputError
from reliqa.surfaces.fit import (
    Surface,
    cross_validated_bandwidth,
    fit_surface,
    local_linear,
)
from reliqa.surfaces.inputs import (
    DEFAULT_PHI,
    as_points,
    beta_std,
    latin_hypercube_points,
    nonnegative_vector,
    read_points,
    regulator_weights,
    resolve_score_range,
)
from reliqa.surfaces.pairs import SIGMA_FLOOR_FRACTION, gmc_values
from reliqa.surfaces.plot import plot_heatmap, plot_surface_html
from reliqa.surfaces.result import CORRELATIONS, GMCResult


def gmc(
    pred: ArrayLike,
    mos: ArrayLike,
    std: ArrayLike | None = None,
    *,
    weights: ArrayLike | None = None,
    points: ArrayLike | None = None,
    samples: int = 100,
    seed: int = 0,
    bandwidth_multiplier: float = 1.0,
    correlations: Sequence[str] = CORRELATIONS,
    phi: float = DEFAULT_PHI,
    score_range: Sequence[float] | None = None,
    grid: int = 50,
    device: str | torch.device | None = None,
) -> GMCResult:
    """Granularity-Modulated Correlation of predictions ``pred`` (N,) with ``mos`` (N,).

    Arguments:
        pred: (N,) predicted quality, higher = better (negate a lower-is-better metric).
        mos: (N,) mean opinion scores, higher = better.
        std: (N,) per-image MOS std; if None it is estimated by :func:`beta_std` with ``phi``.
        weights: (N,) Distribution-Regulator weights; default :func:`regulator_weights` (Gaussian
            density with the given ``std``, label-distribution smoothing without).
        points: (K, 2) query points (Qs, Qd); default ``samples`` Latin-hypercube points from
            ``seed`` over ``score_range`` × [0, its width].
        bandwidth_multiplier: scales the Granularity Modulator's σ (1 = the authors' setting).
        correlations: which of PLCC, SRCC, KRCC to report.
        score_range: the MOS scale (low, high); default its observed min..max.
        grid: surface grid nodes per axis (average height = mean over that grid).
        device: torch device for the pair sums (default cpu; "cuda" on a GPU).

    Returns:
        A :class:`GMCResult`. A correlation that is undefined at a point (every weighted pair
        tied, or no pair with weight) is NaN there, flagged in ``result.degenerate`` and left
        out of the surface fit.

    Example:
        >>> import numpy as np
        >>> mos = np.linspace(1, 5, 50)
        >>> result = gmc(mos, mos, np.full(50, 0.5), samples=10)
        >>> bool(np.allclose(result.values["SRCC"], 1.0))
        True
    """
    _check_correlations(correlations)
    pred_array, mos_array = validate_pair(pred, mos)
    low, high = resolve_score_range(mos_array, score_range)
    notes: list[str] = []
    std_array, weight_array = _std_and_weights(
        mos_array, std, weights, phi=phi, score_range=(low, high), notes=notes
    )
    query = (
        latin_hypercube_points(samples, seed, score_range=(low, high))
        if points is None
        else as_points(points)
    )
    table = gmc_values(
        pred_array, mos_array, std_array, weight_array, query,
        bandwidth_multiplier=bandwidth_multiplier, score_range=(low, high), device=device,
    )
    values = {name: table[:, CORRELATIONS.index(name)] for name in correlations}
    surfaces, heights = _fit_surfaces(query, values, grid=grid, score_range=(low, high), notes=notes)
    global_values = {
        name: CORRELATION_FUNCTIONS[name](pred_array, mos_array) for name in correlations
    }
    return GMCResult(
        qs=query[:, 0].copy(),
        qd=query[:, 1].copy(),
        values=values,
        surfaces=surfaces,
        average_height=heights,
        global_=global_values,
        score_range=(low, high),
        bandwidth_multiplier=bandwidth_multiplier,
        notes=notes,
    )


def _check_correlations(correlations: Sequence[str]) -> None:
    unknown = [name for name in correlations if name not in CORRELATIONS]
    if unknown or not correlations:
        raise InvalidInputError(
            f"correlations: expected some of {', '.join(CORRELATIONS)}, got {list(correlations)}"
        )


def _std_and_weights(
    mos: np.ndarray,
    std: ArrayLike | None,
    weights: ArrayLike | None,
    *,
    phi: float,
    score_range: tuple[float, float],
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """The per-image std and regulator weights: the given ones (checked), else estimated (the
    weights from the *given* std: without one the regulator smooths the labels instead)."""
    low, high = score_range
    if std is None:
        std_array = beta_std(mos, phi=phi, score_range=(low, high))
        notes.append(
            f"per-image std estimated from a Beta model (phi = {phi:g}) over [{low:g}, {high:g}]"
        )
    else:
        std_array = nonnegative_vector(std, "std", mos.size)
    if weights is None:
        weight_array = regulator_weights(mos, std, score_range=(low, high))
    else:
        weight_array = nonnegative_vector(weights, "weights", mos.size)
    return std_array, weight_array


def _fit_surfaces(
    query: np.ndarray,
    values: dict[str, np.ndarray],
    *,
    grid: int,
    score_range: tuple[float, float],
    notes: list[str],
) -> tuple[dict[str, Surface], dict[str, float]]:
    """A surface and its average height per correlation; NaN (and a note) with under 5 defined
    points; a note for each correlation undefined somewhere."""
    low, high = score_range
    surfaces: dict[str, Surface] = {}
    heights: dict[str, float] = {}
    for name, column in values.items():
        if np.isfinite(column).sum() >= 5:
            surfaces[name] = fit_surface(
                query, column, grid=grid, qs_range=(low, high), qd_range=(0.0, high - low)
            )
            heights[name] = surfaces[name].average_height
        else:
            heights[name] = math.nan
            notes.append(f"{name}: fewer than 5 non-degenerate points, no surface")
        degenerate = int(np.isnan(column).sum())
        if degenerate:
            notes.append(f"{name}: undefined at {degenerate} of {column.size} points (NaN)")
    return surfaces, heights

__all__ = [
    "CORRELATIONS",
    "DEFAULT_PHI",
    "SIGMA_FLOOR_FRACTION",
    "GMCResult",
    "Surface",
    "beta_std",
    "cross_validated_bandwidth",
    "fit_surface",
    "gmc",
    "gmc_values",
    "latin_hypercube_points",
    "local_linear",
    "plot_heatmap",
    "plot_surface_html",
    "read_points",
    "regulator_weights",
    "resolve_score_range",
]
