"""Visual Information Fidelity in the pixel domain (VIFp; Sheikh & Bovik 2006)."""

from __future__ import annotations

import torch

from reliqa.checks import check_data_range, check_tensor_pair
from reliqa.metrics._validate import Reduction, reduce
from reliqa.metrics.filters import gaussian_window_1d, local_moments, separable_filter_valid

VIF_NOISE_VARIANCE_8BIT: float = 2.0
"""σ_n² of ``vifp_mscale.m`` (the HVS noise), for 0..255 images."""

_VIF_EPS_8BIT = 1e-10  # the thresholds of vifp_mscale.m, on the 0..255 scale
VIF_SCALES = 4


def _window_size(scale: int) -> int:
    """Window of scale s = 0..3 in ``vifp_mscale.m``: 2^(4 − s) + 1 taps (17, 9, 5, 3), σ = N/5."""
    return 2 ** (VIF_SCALES - scale) + 1


def vif_min_size() -> int:
    """Smallest side for which all four scales hold their window (found by following the sizes)."""
    side = 1
    while True:
        size, fits = side, True
        for scale in range(VIF_SCALES):
            window = _window_size(scale)
            if scale > 0:
                size = -(-(size - window + 1) // 2) if size >= window else 0
            if size < window:
                fits = False
                break
        if fits:
            return side
        side += 1


def vifp_per_channel(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    noise_variance: float | None = None,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """VIFp of each channel exactly as the official ``vifp_mscale.m`` (4 scales, Gaussian windows,
    σ_n² = 2), averaged over channels (the kernel of ``vifp``, which takes the rounded grey image).

    At scale s (windows 17, 9, 5, 3 taps, σ = N/5) the reference and test are, for s > 0,
    filtered ('valid') and subsampled by 2; local moments give the gain g = σ_rt / σ_r² and
    the distortion variance σ_v² = σ_t² − g·σ_rt, with the official clipping rules; the score is
    Σ log10(1 + g²σ_r² / (σ_v² + σ_n²)) / Σ log10(1 + σ_r² / σ_n²) over all scales and pixels.
    It is not symmetric: ``reference`` is the undistorted image.

    Arguments:
        test: (N, C, H, W) test (distorted) images in [0, data_range].
        reference: (N, C, H, W) reference images.
        data_range: value of white.
        noise_variance: σ_n² on the scale of the input; default 2·(data_range/255)².
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores ≥ 0 (1 for identical images; above 1 for contrast enhancement), averaged
        over channels.
    """
    check_data_range(data_range)
    check_tensor_pair(test, reference, data_range=data_range, name="vif", min_size=vif_min_size(),
                      size_reason="4 scales with 17-, 9-, 5- and 3-px windows")
    scale_sq = (data_range / 255.0) ** 2
    sigma_n = VIF_NOISE_VARIANCE_8BIT * scale_sq if noise_variance is None else noise_variance
    eps = _VIF_EPS_8BIT * scale_sq
    numerator = test.new_zeros(test.shape[:2])
    denominator = test.new_zeros(test.shape[:2])
    for scale in range(VIF_SCALES):
        size = _window_size(scale)
        window = gaussian_window_1d(size, size / 5.0, device=test.device, dtype=test.dtype)
        if scale > 0:
            reference = separable_filter_valid(reference, window)[..., ::2, ::2]
            test = separable_filter_valid(test, window)[..., ::2, ::2]
        _, _, var_ref, var_test, covariance = local_moments(reference, test, window)
        var_ref, var_test = var_ref.clamp_min(0.0), var_test.clamp_min(0.0)
        gain = covariance / (var_ref + eps)
        var_noise = var_test - gain * covariance
        flat_ref = var_ref < eps
        gain = gain.masked_fill(flat_ref, 0.0)
        var_noise = torch.where(flat_ref, var_test, var_noise)
        var_ref = var_ref.masked_fill(flat_ref, 0.0)
        flat_test = var_test < eps
        gain = gain.masked_fill(flat_test, 0.0)
        var_noise = var_noise.masked_fill(flat_test, 0.0)
        negative = gain < 0
        var_noise = torch.where(negative, var_test, var_noise)
        gain = gain.clamp_min(0.0)
        var_noise = var_noise.clamp_min(eps)
        numerator = numerator + torch.log10(1 + gain * gain * var_ref / (var_noise + sigma_n)).sum(dim=(2, 3))
        denominator = denominator + torch.log10(1 + var_ref / sigma_n).sum(dim=(2, 3))
    return reduce((numerator / denominator).mean(dim=1), reduction)
