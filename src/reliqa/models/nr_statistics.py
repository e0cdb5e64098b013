"""Classical no-reference image statistics: cheap, label-free descriptors of sharpness, noise,
exposure, colour and blocking that the ``hirqa`` head reads beside its deep features.

Each is a fixed formula (nothing learned) on the image alone. They are not quality scores by
themselves — the variance of the Laplacian rises with noise as well as with detail — but together
with the content-aware deep features a head can tell detail from noise and bokeh from blur
(docs/nr.md, "hirqa").
"""

from __future__ import annotations

import bisect

import torch
import torch.nn.functional as F

from reliqa.checks import check_tensor_image

STATISTIC_NAMES: tuple[str, ...] = (
    "log_laplacian_var_s1",
    "log_laplacian_var_s2",
    "log_laplacian_var_s4",
    "log_gradient_p50",
    "log_gradient_p90",
    "log_gradient_p99",
    "log_noise_sigma",
    "dark_clipped",
    "bright_clipped",
    "luminance_mean",
    "luminance_std",
    "colourfulness",
    "blockiness",
)
"""Order of the columns of :func:`image_statistics`."""

_EPS = 1e-6


def _luminance(images: torch.Tensor) -> torch.Tensor:
    weights = images.new_tensor([0.2989, 0.5870, 0.1140]).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


# The 3×3 filters below are sums of shifted views: a single-channel conv2d runs 10–20× slower
# on the CPU (measured: 18 ms against ~1 ms for a 512² image).


def _laplacian(gray: torch.Tensor) -> torch.Tensor:
    """4-neighbour Laplacian [[0, 1, 0], [1, −4, 1], [0, 1, 0]], valid region."""
    return (
        gray[..., :-2, 1:-1] + gray[..., 2:, 1:-1] + gray[..., 1:-1, :-2] + gray[..., 1:-1, 2:]
        - 4.0 * gray[..., 1:-1, 1:-1]
    )


def _immerkaer(gray: torch.Tensor) -> torch.Tensor:
    """Immerkær's noise mask [[1, −2, 1], [−2, 4, −2], [1, −2, 1]] (the difference of two
    Laplacians, blind to edges of first and second order), valid region."""
    rows = gray[..., :, :-2] - 2.0 * gray[..., :, 1:-1] + gray[..., :, 2:]
    return rows[..., :-2, :] - 2.0 * rows[..., 1:-1, :] + rows[..., 2:, :]


def _laplacian_log_variance(gray: torch.Tensor) -> torch.Tensor:
    response = _laplacian(gray * 255.0).flatten(1)
    return torch.log(response.var(dim=1, unbiased=False) + 1.0)


_SELECTION_BINS = 4096
"""Value bins of :func:`_order_statistics` (about 64 values per bin for a 512² image)."""


def _order_statistics(row: torch.Tensor, ranks: list[int]) -> list[torch.Tensor]:
    """The values of the given ranks (0-based) in the sorted (M,) ``row``, exactly.

    Each ``kthvalue`` over all M values copies and partitions them (~4 ms for a 512² image);
    instead one histogram pass finds which of :data:`_SELECTION_BINS` value bins holds each
    rank, and the selection runs inside that bin only. The bin index is a monotone function
    of the value (subtracting, then dividing and multiplying by positive numbers keep the
    order), so the bins partition the sorted order and the result is the exact order statistic.
    """
    low, high = torch.aminmax(row)
    span = high - low
    if span == 0:
        return [high for _ in ranks]
    # (row − low)/span ≤ span/span = 1 exactly, so no bin index exceeds the last one
    bins = ((row - low) / span).mul_(_SELECTION_BINS - 1).to(torch.int32)
    cumulative = torch.bincount(bins, minlength=_SELECTION_BINS).cumsum(0).tolist()
    members: dict[int, torch.Tensor] = {}  # neighbouring ranks usually share a bin
    values = []
    for rank in ranks:
        index = bisect.bisect_right(cumulative, rank)  # the first bin holding > rank values
        if index not in members:
            members[index] = row[bins == index]
        start = cumulative[index - 1] if index else 0
        values.append(members[index].kthvalue(rank - start + 1).values)
    return values


def _quantiles(values: torch.Tensor, levels: tuple[float, ...]) -> torch.Tensor:
    """(N, M) → (N, len(levels)), as ``torch.quantile`` (linear interpolation) but by
    order-statistic selection (:func:`_order_statistics`), which needs no sort."""
    count = values.shape[1]
    lows = [int(level * (count - 1)) for level in levels]
    ranks = [rank for low in lows for rank in (low, min(low + 1, count - 1))]
    rows = []
    for row in values:
        found = _order_statistics(row, ranks)
        rows.append(torch.stack([
            lower + (level * (count - 1) - low) * (upper - lower)
            for level, low, lower, upper in zip(levels, lows, found[0::2], found[1::2])
        ]))
    return torch.stack(rows)


def _gradient_log_percentiles(gray: torch.Tensor) -> torch.Tensor:
    dx = gray[..., :, 1:] - gray[..., :, :-1]
    dy = gray[..., 1:, :] - gray[..., :-1, :]
    magnitude = torch.sqrt(dx[..., :-1, :] ** 2 + dy[..., :, :-1] ** 2).flatten(1) * 255.0
    return torch.log(_quantiles(magnitude, (0.5, 0.9, 0.99)) + 1.0)


def _log_noise_sigma(gray: torch.Tensor) -> torch.Tensor:
    # Immerkær (1996): σ = sqrt(π/2) / (6 (W−2)(H−2)) Σ |I * N|, on the 0..255 scale
    response = _immerkaer(gray * 255.0).abs().flatten(1)
    sigma = (torch.pi / 2) ** 0.5 / 6.0 * response.mean(dim=1)
    return torch.log(sigma + 0.1)


def _colourfulness(images: torch.Tensor) -> torch.Tensor:
    # Hasler & Süsstrunk (2003), on the 0..1 scale
    red, green, blue = images.unbind(dim=1)
    rg = (red - green).flatten(1)
    yb = (0.5 * (red + green) - blue).flatten(1)
    spread = torch.sqrt(rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False))
    centre = torch.sqrt(rg.mean(dim=1) ** 2 + yb.mean(dim=1) ** 2)
    return spread + 0.3 * centre


def _blockiness(gray: torch.Tensor) -> torch.Tensor:
    # JPEG's 8×8 grid: mean absolute step across block boundaries relative to the mean step
    # inside blocks (≈ 1 for an image without a grid, > 1 with blocking)
    dx = (gray[..., :, 1:] - gray[..., :, :-1]).abs().mean(dim=(1, 2))
    dy = (gray[..., 1:, :] - gray[..., :-1, :]).abs().mean(dim=(1, 3))
    columns = torch.arange(dx.shape[-1], device=gray.device)
    rows = torch.arange(dy.shape[-1], device=gray.device)
    on_x, on_y = (columns % 8) == 7, (rows % 8) == 7
    boundary = dx[:, on_x].mean(dim=1) + dy[:, on_y].mean(dim=1)
    inside = dx[:, ~on_x].mean(dim=1) + dy[:, ~on_y].mean(dim=1)
    return torch.log((boundary + _EPS) / (inside + _EPS))


def image_statistics(images: torch.Tensor) -> torch.Tensor:
    """Classical statistics of each image: (N, 3, H, W) in [0, 1], H, W ≥ 32 → (N, 13) float32,
    columns :data:`STATISTIC_NAMES`.

    Sharpness: log variance of the 4-neighbour Laplacian of the luminance (0..255) at scales
    1, 1/2, 1/4, and log percentiles 50/90/99 of the gradient magnitude; noise: log of
    Immerkær's σ estimate; exposure: share of pixels at ≤ 2/255 and ≥ 253/255 luminance, mean
    and std of the luminance; colour: Hasler–Süsstrunk colourfulness; coding: log ratio of the
    steps across 8×8 block boundaries to those inside blocks.

    Example:
        >>> flat = torch.full((1, 3, 64, 64), 0.5)
        >>> image_statistics(flat).shape
        torch.Size([1, 13])
    """
    check_tensor_image(images, "images", channels=(3,), min_size=32)
    return image_statistics_unchecked(images)


def image_statistics_unchecked(images: torch.Tensor) -> torch.Tensor:
    """:func:`image_statistics` without the input check, for callers that have checked the
    whole batch once (the check reads every pixel)."""
    images = images.float()
    gray = _luminance(images)
    half = F.avg_pool2d(gray, 2)
    quarter = F.avg_pool2d(half, 2)
    columns = [
        _laplacian_log_variance(gray),
        _laplacian_log_variance(half),
        _laplacian_log_variance(quarter),
    ]
    flat = gray.flatten(1)
    statistics = torch.cat(
        [
            torch.stack(columns, dim=1),
            _gradient_log_percentiles(gray),
            torch.stack(
                [
                    _log_noise_sigma(gray),
                    (flat <= 2.0 / 255.0).float().mean(dim=1),
                    (flat >= 253.0 / 255.0).float().mean(dim=1),
                    flat.mean(dim=1),
                    flat.std(dim=1, correction=0),
                    _colourfulness(images),
                    _blockiness(gray),
                ],
                dim=1,
            ),
        ],
        dim=1,
    )
    return statistics
