"""GMC values at query points: the exact grouped pair sums (see :mod:`reliqa.surfaces.gmc`).

W_ij depends on an image only through (y, σ, w), so images sharing all three form a group and
every pair sum factorises into per-group statistics; per query point the cost is one
exponential per pair of groups, in log-space with a shift so that nothing underflows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy import stats

from reliqa.checks import resolve_device
from reliqa.evaluation.correlation import (
    validate_pair,
)
from reliqa.exceptions import InvalidInputError
from reliqa.surfaces.inputs import as_points, nonnegative_vector, resolve_score_range

SIGMA_FLOOR_FRACTION = 1e-3
"""Bandwidth of the Qd term, as a fraction of the score range, for a pair of two σ = 0 images
(σ_i² + σ_j² = 0 would make it 0/0). Only the Qd term uses it: the per-image factor takes σ
exactly, so a σ = 0 image weighs nothing unless Qs equals its MOS (as the definition and the
authors' code). Raising σ itself to a floor made such an image weigh ~w within a few floors
of its MOS — the issue-11 fault at the top edge of a 0–100 scale."""
_FEATURE_ELEMENTS = 1 << 17  # group pairs whose features are built at once
_PAIR_FEATURES = 8  # Σ W × [pairs, ab, a², b², rank ab, rank a², rank b², sign(a)sign(b)]

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
    device: str | torch.device | None = None,
    memory_elements: int | None = None,
) -> np.ndarray:
    """PLCC-, SRCC- and KRCC-GMC at each query point: the computational core of :func:`gmc`.

    Arguments:
        pred, mos, std, weights: (N,) per image; ``std`` ≥ 0, ``weights`` ≥ 0.
        points: (K, 2) query points (Qs, Qd).
        bandwidth_multiplier: scales every σ (the Granularity Modulator's bandwidths).
        score_range: sets the Qd-term floor for two σ = 0 images, ``SIGMA_FLOOR_FRACTION`` ×
            its width (default min..max).
        device: torch device of the computation (float64; default cpu, checked by
            :func:`reliqa.checks.resolve_device`); "cuda" runs the same code on a GPU.
        memory_elements: size of the (group pairs × points) blocks, in float64 elements;
            default 2**19 on CPU (4 MB: stays in cache), 2**25 on a GPU (fewer, larger kernels).

    Returns:
        (K, 3) float64, columns PLCC, SRCC, KRCC (:data:`reliqa.surfaces.gmc.CORRELATIONS`); NaN where the correlation is
        undefined at that point (no pair has weight, or every weighted pair is tied).
    """
    pred_array, mos_array = validate_pair(pred, mos, min_samples=2)
    std_array = nonnegative_vector(std, "std", mos_array.size)
    weight_array = nonnegative_vector(weights, "weights", mos_array.size)
    query = as_points(points)
    if not (math.isfinite(bandwidth_multiplier) and bandwidth_multiplier > 0):
        raise InvalidInputError(
            f"bandwidth_multiplier must be a positive number, got {bandwidth_multiplier}"
        )
    low, high = resolve_score_range(mos_array, score_range)
    sigma = std_array * bandwidth_multiplier
    torch_device = resolve_device(device)
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
