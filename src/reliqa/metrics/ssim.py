"""SSIM and MS-SSIM (Wang et al. 2004; Wang, Simoncelli & Bovik 2003).

The kernels here (``*_per_channel``) work on any channel count C and average over channels;
the colour handling (MATLAB ``rgb2gray``, RGB, ...) is part of each catalogue name, whose
functional form is ``reliqa.metrics.<name>`` (:mod:`reliqa.metrics.registry`): ``ssim`` is the
kernel on the rounded grey image, ``ssim_rgb`` the kernel on RGB.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from reliqa.checks import check_data_range, check_tensor_pair
from reliqa.metrics._validate import Reduction, check_window_options, reduce
from reliqa.metrics.filters import (
    box_downsample,
    gaussian_window_1d,
    plane_chunk_size,
    separable_filter_valid,
)

MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Scale weights of the official ``msssim.m`` (fine to coarse)."""

WindowKind = Literal["gaussian", "uniform"]


def _window(kind: WindowKind, size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    if kind == "gaussian":
        return gaussian_window_1d(size, sigma, device=like.device, dtype=like.dtype)
    return torch.full((size,), 1.0 / size, device=like.device, dtype=like.dtype)


def ssim_maps(
    test: torch.Tensor,
    reference: torch.Tensor,
    window: torch.Tensor,
    c1: float,
    c2: float,
    sample_covariance: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps at the valid window positions (no validation).

    SSIM needs only σx² + σy², never the two variances apart, so four maps (x, y, x² + y², xy)
    are filtered instead of five, in one separable pass over one stacked tensor.

    Arguments:
        test: (N, C, H, W).
        reference: (N, C, H, W).
        window: (K,) 1-D window; the 2-D window is its outer product.
        c1: stabiliser of the luminance term, (k1 · data_range)².
        c2: stabiliser of the contrast-structure term, (k2 · data_range)².
        sample_covariance: scale (co)variances by K²/(K² − 1) (scikit-image's default).

    Returns:
        ssim_map, cs_map: each (N, C, H - K + 1, W - K + 1).
    """
    channels = test.shape[1]
    stacked = torch.cat(
        [test, reference, torch.addcmul(test * test, reference, reference), test * reference], dim=1
    )
    mu_x, mu_y, sum_of_squares, product = separable_filter_valid(stacked, window).split(channels, dim=1)
    mu_xy = mu_x * mu_y
    mu_sq_sum = torch.addcmul(mu_x * mu_x, mu_y, mu_y)
    variance_sum = sum_of_squares - mu_sq_sum
    covariance = product - mu_xy
    if sample_covariance:
        taps = window.numel() ** 2
        scale = taps / (taps - 1)
        variance_sum, covariance = variance_sum * scale, covariance * scale
    cs_map = (2.0 * covariance + c2) / (variance_sum + c2)
    ssim_map = (2.0 * mu_xy + c1) / (mu_sq_sum + c1) * cs_map
    return ssim_map, cs_map


def _mean_ssim_and_cs(
    test: torch.Tensor,
    reference: torch.Tensor,
    window: torch.Tensor,
    c1: float,
    c2: float,
    sample_covariance: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the SSIM and contrast-structure maps per image and channel (in plane chunks on
    CPU, see :func:`reliqa.metrics.filters.plane_chunk_size`).

    Arguments:
        test: (N, C, H, W).
        reference: (N, C, H, W).
        window: (K,) 1-D window.
        c1: luminance stabiliser.
        c2: contrast-structure stabiliser.
        sample_covariance: see :func:`ssim_maps`.

    Returns:
        mean_ssim, mean_cs: each (N, C).
    """
    batch, channels, height, width = test.shape
    planes_test = test.reshape(batch * channels, 1, height, width)
    planes_reference = reference.reshape(batch * channels, 1, height, width)
    step = plane_chunk_size(batch * channels, height, width, test.device)
    ssim_means, cs_means = [], []
    for start in range(0, batch * channels, step):
        ssim_map, cs_map = ssim_maps(planes_test[start:start + step], planes_reference[start:start + step],
                                     window, c1, c2, sample_covariance)
        ssim_means.append(ssim_map.mean(dim=(1, 2, 3)))
        cs_means.append(cs_map.mean(dim=(1, 2, 3)))
    return torch.cat(ssim_means).view(batch, channels), torch.cat(cs_means).view(batch, channels)


def ssim_per_channel(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    window: WindowKind = "gaussian",
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Structural similarity of each channel, mean of the SSIM map over valid window positions
    and channels (the kernel of ``ssim``, ``ssim_rgb`` and ``ssim_skimage``).

    With the defaults this is Wang's ``ssim_index.m`` / ``ssim.m`` without its automatic
    downsampling: 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, ``filter2(...,'valid')``.

    Arguments:
        test: (N, C, H, W) test images in [0, data_range].
        reference: (N, C, H, W) reference images.
        data_range: value of white (1.0 for reliqa tensors, 255 for 8-bit values).
        window: ``"gaussian"`` or ``"uniform"`` (scikit-image's default 7×7 box).
        window_size: K, taps per side.
        sigma: standard deviation of the Gaussian window.
        k1: luminance stabiliser constant.
        k2: contrast stabiliser constant.
        sample_covariance: unbiased local (co)variances, as scikit-image does by default.
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores in [-1, 1]; 1 for identical images.

    Raises:
        ShapeMismatchError: different shapes.
        InvalidInputError: images smaller than the window, NaN/inf, bad dtype.

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> ssim_per_channel(x, x)
        tensor([1., 1.])
    """
    check_data_range(data_range)
    check_window_options(window_size, sigma, k1, k2)
    check_tensor_pair(test, reference, data_range=data_range, name="ssim", min_size=window_size,
                      size_reason=f"one {window_size}x{window_size} window")
    kernel = _window(window, window_size, sigma, test)
    mean_ssim, _ = _mean_ssim_and_cs(test, reference, kernel, (k1 * data_range) ** 2, (k2 * data_range) ** 2,
                                     sample_covariance)
    return reduce(mean_ssim.mean(dim=1), reduction)


def ms_ssim_min_size(scales: int, window_size: int) -> int:
    """Smallest side for which the coarsest scale still holds one window: (K − 1)·2^(S−1) + 1."""
    return (window_size - 1) * 2 ** (scales - 1) + 1


def ms_ssim_per_channel(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Multi-scale SSIM of each channel as in the official ``msssim.m`` ('product' method),
    averaged over channels (the kernel of ``ms_ssim`` and ``ms_ssim_rgb``).

    Scale s uses the image averaged over 2×2 blocks s − 1 times (``imfilter(ones(2)/4,
    'symmetric')`` then every second pixel); the score is Π_{s<S} cs_s^{w_s} · ssim_S^{w_S}.
    Negative terms are clipped to 0 before the power (MATLAB would return a complex number).

    Arguments:
        test: (N, C, H, W) test images in [0, data_range].
        reference: (N, C, H, W) reference images.
        data_range: value of white.
        weights: one exponent per scale, fine to coarse (S = len(weights)).
        window_size: Gaussian window taps per side.
        sigma: Gaussian window standard deviation.
        k1: luminance stabiliser constant.
        k2: contrast stabiliser constant.
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores in [0, 1]; 1 for identical images (averaged over channels).

    Raises:
        ShapeMismatchError: different shapes.
        InvalidInputError: a side below (K − 1)·2^(S−1) + 1 (161 px for 5 scales and K = 11).
    """
    check_data_range(data_range)
    check_window_options(window_size, sigma, k1, k2)
    scales = len(weights)
    min_size = ms_ssim_min_size(scales, window_size)
    check_tensor_pair(test, reference, data_range=data_range, name="ms_ssim", min_size=min_size,
                      size_reason=f"{scales} scales, each halving the image, with an {window_size}-px "
                                  f"window at the coarsest one")
    kernel = gaussian_window_1d(window_size, sigma, device=test.device, dtype=test.dtype)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    terms = []
    for scale in range(scales):
        if scale > 0:
            test = box_downsample(test, 2, "symmetric")
            reference = box_downsample(reference, 2, "symmetric")
        mean_ssim, mean_cs = _mean_ssim_and_cs(test, reference, kernel, c1, c2)
        terms.append(mean_ssim if scale == scales - 1 else mean_cs)
    exponents = torch.tensor(weights, dtype=test.dtype, device=test.device)
    per_channel = torch.stack(terms, dim=-1).clamp_min(0.0).pow(exponents).prod(dim=-1)
    return reduce(per_channel.mean(dim=1), reduction)


def downsample_factor_wang(height: int, width: int) -> int:
    """Wang's ``ssim.m`` automatic factor F = max(1, round(min(H, W) / 256)), MATLAB rounding."""
    return max(1, math.floor(min(height, width) / 256 + 0.5))


def ssim_downsampled_per_channel(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """SSIM after the automatic downsampling of Wang's ``ssim.m`` (and MATLAB's ``ssim``).

    Both images are averaged over F×F blocks (``imfilter(ones(F)/F², 'symmetric')``, every F-th
    pixel) with F = max(1, round(min(H, W) / 256)), then scored by :func:`ssim`.

    Arguments:
        test: (N, C, H, W) test images in [0, data_range].
        reference: (N, C, H, W) reference images.
        data_range: value of white.
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores in [-1, 1].
    """
    check_tensor_pair(test, reference, data_range=data_range, name="ssim_downsampled", min_size=11,
                      size_reason="one 11x11 window")
    factor = downsample_factor_wang(*test.shape[-2:])
    return ssim_per_channel(box_downsample(test, factor, "symmetric"), box_downsample(reference, factor, "symmetric"),
                data_range, reduction=reduction)
