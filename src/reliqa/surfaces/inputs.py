"""GMC inputs: the score range, per-image MOS std (Beta model), Distribution-Regulator
weights and query points (see :mod:`reliqa.surfaces.gmc`, docs/gmc.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from reliqa.evaluation.correlation import (
    as_score_vector,
    describe_rows,
    read_score_columns,
)
from reliqa.exceptions import InvalidInputError, ShapeMismatchError

DEFAULT_PHI = 4.0
"""Beta precision φ used to estimate per-image MOS std when a dataset has none (docs/gmc.md)."""
REGULATOR_BINS = 100
"""The regulator maps MOS to 0..REGULATOR_BINS and evaluates densities on its integer bins."""

REGULATOR_EPS = 1e-6
"""Added to 2σ̃² in the regulator's Gaussian, as the reference code does (keeps σ = 0 finite)."""

LDS_SIGMA_BINS = 2.0
"""Label-distribution smoothing kernel (std, in regulator bins) when no per-image std exists."""

LDS_RADIUS_BINS = 2
"""Half-width of that kernel in bins (a 5-bin window, the LDS paper's default)."""
# --------------------------------------------------------------------------------------------
# Inputs: score range, std, regulator weights, query points
# --------------------------------------------------------------------------------------------


def resolve_score_range(
    mos: np.ndarray, score_range: Sequence[float] | None
) -> tuple[float, float]:
    """``score_range`` as (low, high), defaulting to the MOS minimum and maximum."""
    if score_range is None:
        low, high = float(mos.min()), float(mos.max())
    else:
        if len(score_range) != 2:
            raise InvalidInputError(f"score_range: expected (low, high), got {score_range!r}")
        low, high = (float(value) for value in score_range)
        outside = np.flatnonzero((mos < low) | (mos > high))
        if outside.size:
            raise InvalidInputError(
                f"mos: value outside score_range [{low:g}, {high:g}] at {describe_rows(outside.tolist())}"
            )
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise InvalidInputError(
            f"score_range must be finite with low < high, got ({low:g}, {high:g})"
        )
    return low, high


def nonnegative_vector(values: ArrayLike, name: str, size: int) -> np.ndarray:
    array = as_score_vector(values, name)
    if array.size != size:
        raise ShapeMismatchError(f"{name} has {array.size} values but mos has {size}")
    negative = np.flatnonzero(array < 0)
    if negative.size:
        raise InvalidInputError(f"{name}: negative value at {describe_rows(negative.tolist())}")
    return array


def beta_std(
    mos: ArrayLike, *, phi: float = DEFAULT_PHI, score_range: Sequence[float] | None = None
) -> np.ndarray:
    """Per-image MOS std (N,) estimated from a Beta model of the ratings.

    Convention:
        MOS is rescaled to μ ∈ [0, 1] over ``score_range`` (default: min..max of ``mos``; pass
        the rating scale, e.g. (1, 5), when you know it). Ratings of an image are modelled as
        Beta with mean μ and precision φ, whose variance is μ(1 − μ)/(1 + φ); so
        σ = (high − low) · sqrt(μ(1 − μ)/(1 + φ)). Larger φ = more agreement between raters.
    """
    mos_array = as_score_vector(mos, "mos")
    if not (math.isfinite(phi) and phi > 0):
        raise InvalidInputError(f"phi must be a positive number, got {phi}")
    low, high = resolve_score_range(mos_array, score_range)
    mean = (mos_array - low) / (high - low)
    return (high - low) * np.sqrt(mean * (1.0 - mean) / (1.0 + phi))


def regulator_weights(
    mos: ArrayLike,
    std: ArrayLike | None = None,
    *,
    score_range: Sequence[float] | None = None,
) -> np.ndarray:
    """Distribution-Regulator weights (N,): the inverse density of MOS around each image.

    Convention:
        MOS is mapped to ỹ ∈ [0, 100] over ``score_range`` (default min..max of ``mos``, as the
        authors' code). With per-image ``std`` (mapped alike to σ̃) the density on the integer
        bins b = 0..100 is ``dens(b) = Σ_k exp(−(b − ỹ_k)² / (2σ̃_k² + 1e-6))``; without it,
        label-distribution smoothing: the histogram of floor(ỹ) smoothed by a Gaussian of
        2 bins (5-bin window). Then ``w_i = 100 · fl32(1 / dens(floor(ỹ_i)))``: the scale 100
        and the float32 rounding are those of the authors' code, so that these weights equal
        the reference file bit for bit (the scale cancels in every GMC correlation).
    """
    mos_array = as_score_vector(mos, "mos")
    low, high = resolve_score_range(mos_array, score_range)
    scaled = (mos_array - low) / (high - low) * REGULATOR_BINS
    bin_of_image = np.floor(scaled).astype(np.int64)
    bins = np.arange(REGULATOR_BINS + 1, dtype=np.float64)
    if std is not None:
        scaled_std = nonnegative_vector(std, "std", mos_array.size) / (high - low) * REGULATOR_BINS
        density = np.zeros_like(bins)
        for start in range(0, mos_array.size, 4096):  # (101, 4096) at a time
            part = slice(start, start + 4096)
            density += np.exp(
                -((bins[:, None] - scaled[None, part]) ** 2)
                / (2 * scaled_std[None, part] ** 2 + REGULATOR_EPS)
            ).sum(axis=1)
    else:
        from scipy.ndimage import gaussian_filter1d

        histogram = np.bincount(bin_of_image, minlength=bins.size).astype(np.float64)
        density = gaussian_filter1d(
            histogram, LDS_SIGMA_BINS, mode="constant", truncate=LDS_RADIUS_BINS / LDS_SIGMA_BINS
        )
    inverse = (1.0 / density[bin_of_image]).astype(np.float32).astype(np.float64)
    return REGULATOR_BINS * inverse


def latin_hypercube_points(
    n: int, seed: int = 0, *, score_range: Sequence[float] = (0.0, 1.0)
) -> np.ndarray:
    """``n`` query points (n, 2) = (Qs, Qd) by seeded Latin-hypercube sampling.

    Qs covers ``score_range`` = (low, high) and Qd covers [0, high − low], one point per
    1/n-stratum of each axis (``scipy.stats.qmc.LatinHypercube``); the reference points of
    the authors fill exactly these strata over KADID-10k's MOS range.
    """
    from scipy.stats import qmc

    if n < 1:
        raise InvalidInputError(f"samples must be at least 1, got {n}")
    low, high = (float(value) for value in score_range)
    unit = qmc.LatinHypercube(d=2, rng=np.random.default_rng(seed)).random(n)
    return np.column_stack([low + unit[:, 0] * (high - low), unit[:, 1] * (high - low)])


def read_points(path: str | Path) -> np.ndarray:
    """Query points (K, 2) from a CSV with columns ``Qs`` and ``Qd`` (other columns ignored)."""
    columns = read_score_columns(path, ("Qs", "Qd"))
    points = np.column_stack([columns["Qs"], columns["Qd"]])
    if points.shape[0] == 0:
        raise InvalidInputError(f"{path}: no query points")
    return points


def as_points(points: ArrayLike) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise InvalidInputError(f"points: expected shape (K, 2) of (Qs, Qd), got {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise InvalidInputError(f"points: NaN or infinite value at {describe_rows(bad.tolist())}")
    return array
