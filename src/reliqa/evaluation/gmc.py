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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy import stats

from reliqa.evaluation.correlation import (
    CORRELATION_FUNCTIONS,
    as_score_vector,
    describe_rows,
    read_score_columns,
    validate_pair,
)
from reliqa.evaluation.gmc_plot import plot_heatmap, plot_surface_html
from reliqa.exceptions import InvalidInputError, ShapeMismatchError

CORRELATIONS: tuple[str, ...] = ("PLCC", "SRCC", "KRCC")
"""The GMC correlations, in the order of every output."""

DEFAULT_PHI = 4.0
"""Beta precision φ used to estimate per-image MOS std when a dataset has none (docs/gmc.md)."""

SIGMA_FLOOR_FRACTION = 1e-3
"""Bandwidth of the Qd term, as a fraction of the score range, for a pair of two σ = 0 images
(σ_i² + σ_j² = 0 would make it 0/0). Only the Qd term uses it: the per-image factor takes σ
exactly, so a σ = 0 image weighs nothing unless Qs equals its MOS (as the definition and the
authors' code). Raising σ itself to a floor made such an image weigh ~w within a few floors
of its MOS — the issue-11 fault at the top edge of a 0–100 scale."""

REGULATOR_BINS = 100
"""The regulator maps MOS to 0..REGULATOR_BINS and evaluates densities on its integer bins."""

REGULATOR_EPS = 1e-6
"""Added to 2σ̃² in the regulator's Gaussian, as the reference code does (keeps σ = 0 finite)."""

LDS_SIGMA_BINS = 2.0
"""Label-distribution smoothing kernel (std, in regulator bins) when no per-image std exists."""

LDS_RADIUS_BINS = 2
"""Half-width of that kernel in bins (a 5-bin window, the LDS paper's default)."""

_FEATURE_ELEMENTS = 1 << 17  # group pairs whose features are built at once
_PAIR_FEATURES = 8  # Σ W × [pairs, ab, a², b², rank ab, rank a², rank b², sign(a)sign(b)]


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


def _nonnegative_vector(values: ArrayLike, name: str, size: int) -> np.ndarray:
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
        scaled_std = _nonnegative_vector(std, "std", mos_array.size) / (high - low) * REGULATOR_BINS
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


def _as_points(points: ArrayLike) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise InvalidInputError(f"points: expected shape (K, 2) of (Qs, Qd), got {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise InvalidInputError(f"points: NaN or infinite value at {describe_rows(bad.tolist())}")
    return array


# --------------------------------------------------------------------------------------------
# The exact grouped computation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Groups:
    """Images grouped by equal (MOS, σ, w); every per-group array is (M,), float64 on ``device``."""

    count: torch.Tensor
    mos: torch.Tensor
    sigma: torch.Tensor
    log_weight: torch.Tensor
    pred_mean: torch.Tensor
    pred_dev: torch.Tensor  # Σ (s − mean)² within the group
    rank_mean: torch.Tensor
    rank_dev: torch.Tensor
    mos_rank: torch.Tensor  # dense rank of the group's MOS over the whole set
    pair_sigma_floor: float  # σ_g² + σ_h² below this (two σ = 0 groups) is raised to it
    image_group: torch.Tensor  # (N,) long, sorted ascending
    image_pred_rank: torch.Tensor  # (N,) long, dense rank of s (0-based), same order
    pred_rank_count: int


def _group_images(
    pred: np.ndarray,
    mos: np.ndarray,
    sigma: np.ndarray,
    weights: np.ndarray,
    device: torch.device,
    pair_sigma_floor: float,
) -> _Groups:
    keys = np.column_stack([mos, sigma, weights])
    unique, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    size = unique.shape[0]
    count = np.bincount(group, minlength=size).astype(np.float64)
    pred_rank = stats.rankdata(pred, method="dense").astype(np.int64) - 1

    def mean_and_deviation(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.bincount(group, values, size) / count
        return mean, np.bincount(group, (values - mean[group]) ** 2, size)

    pred_mean, pred_dev = mean_and_deviation(pred - pred.mean())
    rank_mean, rank_dev = mean_and_deviation(pred_rank.astype(np.float64))
    order = np.argsort(group, kind="stable")
    with np.errstate(divide="ignore"):
        log_weight = np.log(unique[:, 2])

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, device=device)

    return _Groups(
        count=tensor(count),
        mos=tensor(unique[:, 0]),
        sigma=tensor(unique[:, 1]),
        log_weight=tensor(log_weight),
        pred_mean=tensor(pred_mean),
        pred_dev=tensor(pred_dev),
        rank_mean=tensor(rank_mean),
        rank_dev=tensor(rank_dev),
        mos_rank=tensor(stats.rankdata(unique[:, 0], method="dense").astype(np.float64)),
        pair_sigma_floor=pair_sigma_floor,
        image_group=tensor(group[order]),
        image_pred_rank=tensor(pred_rank[order]),
        pred_rank_count=int(pred_rank.max()) + 1,
    )


def _concordance(groups: _Groups, first: int, last: int) -> torch.Tensor:
    """C[g, h] = Σ_{i∈g, j∈h} sign(s_i − s_j) for g in [first, last), h in [first, M): (R, C)."""
    size = groups.count.numel()
    ranks = groups.pred_rank_count
    image_group, image_rank = groups.image_group, groups.image_pred_rank
    begin, end = torch.searchsorted(
        image_group, torch.tensor([first, last], device=image_group.device)
    ).tolist()
    rows = last - first
    # histogram[g, t] = images of group g whose prediction has dense rank t
    histogram = torch.zeros(rows * ranks, dtype=torch.float64, device=image_group.device)
    histogram.index_add_(
        0,
        (image_group[begin:end] - first) * ranks + image_rank[begin:end],
        torch.ones(end - begin, dtype=torch.float64, device=image_group.device),
    )
    histogram = histogram.view(rows, ranks)
    at_or_below = histogram.cumsum(dim=1)
    # signed[g, t] = #(s_i > rank t) − #(s_i < rank t) over i in g
    signed = (groups.count[first:last, None] - at_or_below) - (at_or_below - histogram)
    # Sum signed[g, rank of j] over the images j of each group h (contiguous, groups sorted):
    # differences of a running sum at the group boundaries (integers, exact in float64).
    running = torch.zeros(
        image_group.numel() - begin + 1, rows, dtype=torch.float64, device=image_group.device
    )
    torch.cumsum(signed.T.contiguous()[image_rank[begin:]], dim=0, out=running[1:])
    boundaries = torch.searchsorted(
        image_group[begin:], torch.arange(first, size + 1, device=image_group.device)
    )
    concordance = (running[boundaries[1:]] - running[boundaries[:-1]]).T
    return concordance


def _pair_features(
    groups: _Groups, first: int, last: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per group pair (g, h), g in [first, last), h in [first, M), h ≥ g: the weighted-sum
    features (8, R·C), |y_g − y_h| (R, C) and σ_g² + σ_h² (R, C). Pairs with h < g or no image
    pair (a single-image group with itself) get zero features."""
    device = groups.count.device
    row_index = torch.arange(first, last, device=device)[:, None]
    column_index = torch.arange(first, groups.count.numel(), device=device)[None, :]
    same = row_index == column_index
    upper = (row_index <= column_index).to(torch.float64)
    n_row, n_column = groups.count[first:last, None], groups.count[None, first:]
    pairs = torch.where(same, n_row * (n_row - 1) / 2, n_row * n_column) * upper

    def squared_differences(dev: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        # Σ_{i∈g, j∈h} (x_i − x_j)² from within-group deviations: no cancellation.
        between = (
            n_column * dev[first:last, None]
            + n_row * dev[None, first:]
            + n_row * n_column * (mean[first:last, None] - mean[None, first:]) ** 2
        )
        return torch.where(same, n_row * dev[first:last, None], between) * upper

    mos_difference = groups.mos[first:last, None] - groups.mos[None, first:]
    rank_difference = groups.mos_rank[first:last, None] - groups.mos_rank[None, first:]
    pred_difference = groups.pred_mean[first:last, None] - groups.pred_mean[None, first:]
    predicted_rank_difference = groups.rank_mean[first:last, None] - groups.rank_mean[None, first:]
    features = torch.stack(
        [
            pairs,
            pairs * mos_difference * pred_difference,
            squared_differences(groups.pred_dev, groups.pred_mean),
            pairs * mos_difference**2,
            pairs * rank_difference * predicted_rank_difference,
            squared_differences(groups.rank_dev, groups.rank_mean),
            pairs * rank_difference**2,
            torch.sign(mos_difference) * _concordance(groups, first, last) * upper,
        ]
    ).reshape(_PAIR_FEATURES, -1)
    sigma_sum = groups.sigma[first:last, None] ** 2 + groups.sigma[None, first:] ** 2
    sigma_sum = sigma_sum.clamp_min(groups.pair_sigma_floor)
    return features, mos_difference.abs(), sigma_sum


def _weighted_pair_sums(
    groups: _Groups,
    qs: torch.Tensor,
    qd: torch.Tensor,
    memory_elements: int,
    *,
    running_max: bool = False,
) -> torch.Tensor:
    """Σ_pairs W · feature for every query point: (K, 8), each point's W scaled by exp(−shift_k).

    The shift keeps every exp() argument ≤ 0. By default it is the bound 2·max_g log u_g
    (the coupling term is ≤ 0), known before the pass, so it folds into the matrix product.
    ``running_max=True`` uses the exact maximum instead, updated block by block and rescaling
    the sums (a streaming log-sum-exp): one more pass, needed only when the bound is so loose
    that the largest weights would underflow (see :func:`gmc_values`).

    On CPU the bands of group pairs are shared among ``torch.get_num_threads()`` Python threads,
    each running single-threaded kernels (torch and numpy release the GIL). The kernels are
    small (inner dimension 4, 8 output rows), where OpenMP's intra-op threads gain little and,
    on a machine whose cores are busy, spin and lose several-fold.
    """
    size = groups.count.numel()
    points = qs.numel()
    device = qs.device
    # log of the per-image factors u_g = w_g · exp(−(Qs − y_g)²/(2σ_g²)): (M, K)
    # A σ = 0 group: exp(−(Qs − y)²/0) is 0 (log −inf) unless Qs = y, where its limit is 1.
    offset = (qs[None, :] - groups.mos[:, None]) ** 2
    variance = 2 * groups.sigma[:, None] ** 2
    zero = variance == 0
    log_factor = groups.log_weight[:, None] - torch.where(
        zero,
        torch.where(offset == 0, 0.0, math.inf),
        offset / torch.where(zero, 1.0, variance),
    )
    if running_max:
        shift = torch.full((points,), -math.inf, dtype=torch.float64, device=device)
    else:
        shift = 2 * log_factor.amax(dim=0)
        shift = torch.where(torch.isinf(shift), torch.zeros_like(shift), shift)
        log_factor = log_factor - shift / 2
    bands = []
    first = 0
    while first < size:  # bands of rows whose features are built at once
        last = first + min(size - first, max(1, _FEATURE_ELEMENTS // (size - first)))
        bands.append((first, last))
        first = last
    workers = torch.get_num_threads() if device.type == "cpu" else 1
    if workers <= 1:
        parts = [_band_sums(groups, bands, log_factor, qd, shift, memory_elements, running_max)]
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                parts = list(
                    pool.map(
                        lambda k: _band_sums(
                            groups,
                            bands[k::workers],
                            log_factor,
                            qd,
                            shift,
                            memory_elements,
                            running_max,
                        ),
                        range(workers),
                    )
                )
        finally:
            torch.set_num_threads(threads)
    shifts = torch.stack([part_shift for _, part_shift in parts])
    total_shift = shifts.amax(dim=0)
    finite_shift = torch.where(torch.isinf(total_shift), torch.zeros_like(total_shift), total_shift)
    sums = torch.stack(
        [part_sums * torch.exp(part_shift - finite_shift) for part_sums, part_shift in parts]
    ).sum(dim=0)
    return sums.T


def _band_sums(
    groups: _Groups,
    bands: list[tuple[int, int]],
    log_factor: torch.Tensor,
    qd: torch.Tensor,
    shift: torch.Tensor,
    memory_elements: int,
    running_max: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted sums (8, K) over the group pairs of ``bands``, and the shift they are in."""
    size = groups.count.numel()
    points = qd.numel()
    device = qd.device
    sums = torch.zeros(_PAIR_FEATURES, points, dtype=torch.float64, device=device)
    qd_powers = torch.stack([qd**2, qd, torch.ones_like(qd)])  # (3, K)
    buffer = torch.empty(
        min(max(memory_elements, size * points), size * size * points),
        dtype=torch.float64,
        device=device,
    )
    for first, last in bands:
        columns = size - first
        # the (pairs × points) work in sub-bands of `step` rows that fit the buffer (in cache)
        step = max(1, memory_elements // (columns * points))
        features, distance, sigma_sum = _pair_features(groups, first, last)
        # exponent[g, h, k] = log u_gk + log u_hk − (Qd_k − |b|)²/(2S), the square expanded
        # (−Qd²/(2S) + Qd|b|/S − b²/(2S)) so that one batched matrix product over
        # [Qd², Qd, 1, log u_g] writes it in a single pass. Pairs that do not exist get a very
        # negative constant: their weight is exactly 0 and they never set the running maximum.
        inverse = 1.0 / sigma_sum
        constant = torch.where(
            features[0].view_as(distance) > 0, -0.5 * distance**2 * inverse, -1e300
        )
        coefficients = torch.stack(
            [-0.5 * inverse, distance * inverse, constant, torch.ones_like(inverse)], dim=-1
        )
        for band in range(first, last, step):
            band_end = min(last, band + step)
            height = band_end - band
            powers = torch.cat(
                [qd_powers.expand(height, 3, points), log_factor[band:band_end, None, :]], dim=1
            )
            exponent = buffer[: height * columns * points].view(height, columns, points)
            torch.baddbmm(
                log_factor[None, first:, :],
                coefficients[band - first : band_end - first],
                powers,
                out=exponent,
            )
            if running_max:
                new_shift = torch.maximum(shift, exponent.amax(dim=(0, 1)))
                finite_shift = torch.where(
                    torch.isinf(new_shift), torch.zeros_like(new_shift), new_shift
                )
                exponent -= finite_shift
                sums *= torch.exp(shift - finite_shift)
                shift = new_shift
            _exp_inplace(exponent)
            band_features = features[:, (band - first) * columns : (band_end - first) * columns]
            sums += band_features @ exponent.view(-1, points)
    return sums, shift


def _exp_inplace(tensor: torch.Tensor) -> None:
    # On CPU numpy's float64 exp is about 3× faster than torch's (SIMD exp); same values to
    # the last ulp or so, far below the 1e-9 target. Other devices use torch.
    if tensor.device.type == "cpu":
        array = tensor.numpy()
        np.exp(array, out=array)
    else:
        torch.exp_(tensor)


def _correlations_from_sums(sums: np.ndarray) -> np.ndarray:
    """(K, 8) weighted sums → (K, 3) PLCC, SRCC, KRCC; NaN where a denominator is 0."""
    total, ab, aa, bb, rank_ab, rank_aa, rank_bb, concordant = sums.T
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.column_stack(
            [ab / np.sqrt(aa * bb), rank_ab / np.sqrt(rank_aa * rank_bb), concordant / total]
        )
    undefined = ~(np.column_stack([aa * bb, rank_aa * rank_bb, total]) > 0)
    values[undefined | ~np.isfinite(values)] = np.nan
    return np.clip(values, -1.0, 1.0)


def gmc_values(
    pred: ArrayLike,
    mos: ArrayLike,
    std: ArrayLike,
    weights: ArrayLike,
    points: ArrayLike,
    *,
    bandwidth_multiplier: float = 1.0,
    score_range: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    memory_elements: int | None = None,
) -> np.ndarray:
    """PLCC-, SRCC- and KRCC-GMC at each query point: the computational core of :func:`gmc`.

    Arguments:
        pred, mos, std, weights: (N,) per image; ``std`` ≥ 0, ``weights`` ≥ 0.
        points: (K, 2) query points (Qs, Qd).
        bandwidth_multiplier: scales every σ (the Granularity Modulator's bandwidths).
        score_range: sets the Qd-term floor for two σ = 0 images, ``SIGMA_FLOOR_FRACTION`` ×
            its width (default min..max).
        device: torch device of the computation (float64); "cuda" runs the same code on a GPU.
        memory_elements: size of the (group pairs × points) blocks, in float64 elements;
            default 2**19 on CPU (4 MB: stays in cache), 2**25 on a GPU (fewer, larger kernels).

    Returns:
        (K, 3) float64 in the order of :data:`CORRELATIONS`; NaN where the correlation is
        undefined at that point (no pair has weight, or every weighted pair is tied).
    """
    pred_array, mos_array = validate_pair(pred, mos, min_samples=2)
    std_array = _nonnegative_vector(std, "std", mos_array.size)
    weight_array = _nonnegative_vector(weights, "weights", mos_array.size)
    query = _as_points(points)
    if not (math.isfinite(bandwidth_multiplier) and bandwidth_multiplier > 0):
        raise InvalidInputError(
            f"bandwidth_multiplier must be a positive number, got {bandwidth_multiplier}"
        )
    low, high = resolve_score_range(mos_array, score_range)
    sigma = std_array * bandwidth_multiplier
    torch_device = torch.device(device)
    groups = _group_images(
        pred_array,
        mos_array,
        sigma,
        weight_array,
        torch_device,
        pair_sigma_floor=2 * (SIGMA_FLOOR_FRACTION * (high - low)) ** 2,
    )
    qs = torch.as_tensor(query[:, 0], device=torch_device)
    qd = torch.as_tensor(query[:, 1], device=torch_device)
    if memory_elements is None:
        memory_elements = 1 << 19 if torch_device.type == "cpu" else 1 << 25
    sums = _weighted_pair_sums(groups, qs, qd, memory_elements)
    # Total weight ≥ pairs · e^−600 means the largest weight is ≥ e^−600, so anything flushed to
    # 0 (< e^−707) is < 1e-39 of the total: the fast pass is exact to rounding. Otherwise redo
    # those points with the exact running maximum.
    pair_count = mos_array.size * (mos_array.size - 1) / 2
    loose = ~(sums[:, 0] >= pair_count * math.exp(-600.0))
    if bool(loose.any()):
        sums[loose] = _weighted_pair_sums(
            groups, qs[loose], qd[loose], memory_elements, running_max=True
        )
    return _correlations_from_sums(sums.cpu().numpy())


# --------------------------------------------------------------------------------------------
# Surface fitting and the public entry point
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """A correlation surface fitted on a regular grid.

    ``qs`` (G,) and ``qd`` (G,) are the grid axes; ``values`` is (G, G) indexed [qd, qs],
    clipped to [−1, 1]; ``bandwidth`` is the local-linear regression's (Qs, Qd) bandwidth.
    """

    qs: np.ndarray
    qd: np.ndarray
    values: np.ndarray
    bandwidth: tuple[float, float]

    @property
    def average_height(self) -> float:
        """Mean of the surface over the grid (the region the query points cover)."""
        return float(self.values.mean())


def local_linear(
    points: np.ndarray,
    values: np.ndarray,
    at: np.ndarray,
    bandwidth: Sequence[float] | np.ndarray,
    *,
    leave_one_out: bool = False,
) -> np.ndarray:
    """Local-linear kernel regression (Gaussian product kernel) of ``values`` (K,) observed at
    ``points`` (K, D), evaluated at ``at`` (E, D) → (E,).

    The estimator of statsmodels' ``KernelReg(reg_type='ll')`` (same weighted least squares,
    same pseudo-inverse), vectorised over evaluation points: statsmodels loops over them in
    Python, which made one cross-validated surface take seconds instead of milliseconds.
    ``leave_one_out=True`` (requires ``at is points``) drops each point from its own fit.
    """
    offsets = points[None, :, :] - at[:, None, :]  # (E, K, D)
    kernel = np.exp(-0.5 * np.sum((offsets / np.asarray(bandwidth)) ** 2, axis=2))  # (E, K)
    if leave_one_out:
        np.fill_diagonal(kernel, 0.0)
    design = np.concatenate([np.ones(offsets.shape[:2] + (1,)), offsets], axis=2)  # (E, K, D+1)
    weighted = design * kernel[:, :, None]
    gram = np.einsum("ekd,ekf->edf", weighted, design)
    moments = np.einsum("ekd,k->ed", weighted, values)
    with np.errstate(over="ignore", invalid="ignore"):  # no kernel mass at a point: NaN there
        return np.einsum("edf,ef->ed", np.linalg.pinv(gram), moments)[:, 0]


def cross_validated_bandwidth(points: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bandwidths (D,) minimising the leave-one-out squared error of :func:`local_linear`,
    by Nelder-Mead from the normal-reference rule 1.06·std·K^(−1/(4+D)) — statsmodels'
    ``bw='cv_ls'`` procedure."""
    from scipy import optimize

    start = 1.06 * points.std(axis=0) * points.shape[0] ** (-1.0 / (4 + points.shape[1]))

    def loss(bandwidth: np.ndarray) -> float:
        if np.any(np.abs(bandwidth) < 1e-12):  # the simplex may probe 0: no fit there
            return math.inf
        fitted = local_linear(points, values, points, np.abs(bandwidth), leave_one_out=True)
        error = float(np.mean((values - fitted) ** 2))
        return error if math.isfinite(error) else math.inf

    return np.abs(optimize.fmin(loss, start, maxiter=1000, maxfun=1000, disp=False))


def fit_surface(
    points: ArrayLike,
    values: ArrayLike,
    *,
    grid: int = 50,
    qs_range: Sequence[float] | None = None,
    qd_range: Sequence[float] | None = None,
) -> Surface:
    """Fit a surface through GMC values by local-linear kernel regression.

    Arguments:
        points: (K, 2) query points (Qs, Qd); rows whose value is NaN are left out.
        values: (K,) correlation at each point.
        grid: number of grid nodes per axis.
        qs_range, qd_range: grid extent (default: the points' extent).

    Gaussian product kernel, bandwidths chosen by least-squares leave-one-out cross-validation
    (:func:`cross_validated_bandwidth`, as statsmodels ``KernelReg(reg_type='ll', bw='cv_ls')``).
    """
    query = _as_points(points)
    z = np.asarray(values, dtype=np.float64)
    if z.shape != (query.shape[0],):
        raise ShapeMismatchError(f"values: expected shape ({query.shape[0]},), got {z.shape}")
    usable = np.isfinite(z)
    if usable.sum() < 5:
        raise InvalidInputError(
            f"a surface needs at least 5 non-degenerate points, got {int(usable.sum())}"
        )
    qs_low, qs_high = qs_range if qs_range is not None else (query[:, 0].min(), query[:, 0].max())
    qd_low, qd_high = qd_range if qd_range is not None else (query[:, 1].min(), query[:, 1].max())
    qs_axis = np.linspace(qs_low, qs_high, grid)
    qd_axis = np.linspace(qd_low, qd_high, grid)
    bandwidth = cross_validated_bandwidth(query[usable], z[usable])
    mesh_qs, mesh_qd = np.meshgrid(qs_axis, qd_axis)
    fitted = local_linear(
        query[usable], z[usable], np.column_stack([mesh_qs.ravel(), mesh_qd.ravel()]), bandwidth
    )
    surface = np.clip(fitted.reshape(grid, grid), -1.0, 1.0)
    return Surface(qs_axis, qd_axis, surface, (float(bandwidth[0]), float(bandwidth[1])))


def average_height(
    points: ArrayLike,
    values: ArrayLike,
    *,
    grid: int = 50,
    qs_range: Sequence[float] | None = None,
    qd_range: Sequence[float] | None = None,
) -> float:
    """The mean height of the surface :func:`fit_surface` fits through ``values`` (K,) at
    ``points`` (K, 2), over the grid spanning ``qs_range`` × ``qd_range``."""
    return fit_surface(
        points, values, grid=grid, qs_range=qs_range, qd_range=qd_range
    ).average_height


@dataclass(frozen=True)
class GMCResult:
    """GMC of one set of predictions.

    ``qs``, ``qd`` (K,) are the query points; ``values[name]`` (K,) the GMC correlation there
    (NaN at a degenerate point: see :attr:`degenerate`); ``surfaces[name]`` the fitted
    :class:`Surface`; ``average_height[name]`` its mean; ``global_`` the ordinary correlation
    over the whole set (SRCC with average ranks, KRCC τ-b, PLCC raw).
    """

    qs: np.ndarray
    qd: np.ndarray
    values: dict[str, np.ndarray]
    surfaces: dict[str, Surface]
    average_height: dict[str, float]
    global_: dict[str, float]
    score_range: tuple[float, float]
    bandwidth_multiplier: float = 1.0
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> dict[str, np.ndarray]:
        """``{"Qs": (K,), "Qd": (K,), "PLCC": (K,), …}``."""
        return {"Qs": self.qs, "Qd": self.qd, **self.values}

    @property
    def degenerate(self) -> dict[str, np.ndarray]:
        """Per correlation, (K,) bool: True where it is undefined at that point (value NaN)."""
        return {name: np.isnan(values) for name, values in self.values.items()}

    def surface(self, name: str = "SRCC") -> Surface:
        """The fitted surface of one correlation (grid axes and (G, G) values)."""
        return self.surfaces[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"points": [{"Qs", "Qd", "PLCC", …}], "average_height": {…},
        "global": {…}, "degenerate_points": {…}}`` (NaN stays float NaN: JSON writers turn it
        into null)."""
        names = list(self.values)
        rows = [
            {
                "Qs": float(self.qs[k]),
                "Qd": float(self.qd[k]),
                **{n: float(self.values[n][k]) for n in names},
            }
            for k in range(self.qs.size)
        ]
        return {
            "points": rows,
            "average_height": dict(self.average_height),
            "global": dict(self.global_),
            "degenerate_points": {name: int(mask.sum()) for name, mask in self.degenerate.items()},
        }


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
    device: str | torch.device = "cpu",
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
        device: torch device for the pair sums ("cuda" on a GPU).

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
    unknown = [name for name in correlations if name not in CORRELATIONS]
    if unknown or not correlations:
        raise InvalidInputError(
            f"correlations: expected some of {', '.join(CORRELATIONS)}, got {list(correlations)}"
        )
    pred_array, mos_array = validate_pair(pred, mos)
    low, high = resolve_score_range(mos_array, score_range)
    notes = []
    if std is None:
        std_array = beta_std(mos_array, phi=phi, score_range=(low, high))
        notes.append(
            f"per-image std estimated from a Beta model (phi = {phi:g}) over [{low:g}, {high:g}]"
        )
    else:
        std_array = _nonnegative_vector(std, "std", mos_array.size)
    if weights is None:
        weight_array = regulator_weights(mos_array, std, score_range=(low, high))
    else:
        weight_array = _nonnegative_vector(weights, "weights", mos_array.size)
    query = (
        latin_hypercube_points(samples, seed, score_range=(low, high))
        if points is None
        else _as_points(points)
    )
    table = gmc_values(
        pred_array,
        mos_array,
        std_array,
        weight_array,
        query,
        bandwidth_multiplier=bandwidth_multiplier,
        score_range=(low, high),
        device=device,
    )
    values = {name: table[:, CORRELATIONS.index(name)] for name in correlations}
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


__all__ = [
    "CORRELATIONS",
    "DEFAULT_PHI",
    "GMCResult",
    "Surface",
    "average_height",
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
