"""SR-SIM, the spectral residual based similarity (Zhang & Li 2012), as the authors' ``SR_SIM.m``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import box_blur, get_gaussian_kernel1d

from reliqa.metrics._validate import Reduction
from reliqa.metrics.color import yiq_luminance
from reliqa.metrics.filters import imresize_matlab
from reliqa.metrics.similarity import (
    checked_pair_scores,
    magnitude_similarity,
    scharr_gradient_squared,
    similarity_map,
    stacked_pair,
    wang_downsample,
)

# SR_SIM.m: saliency at a quarter of the size, 3x3 average of the log amplitude, 10x10 Gaussian
# (σ = 3.8) on the saliency; similarity constants on the 0..255 scale.
SRSIM_SCALE, SRSIM_AVERAGE, SRSIM_GAUSSIAN, SRSIM_SIGMA = 0.25, 3, 10, 3.8
SRSIM_C1, SRSIM_C2, SRSIM_ALPHA = 0.40, 225.0, 0.50
# The saliency map at a quarter of the size must hold the 10-tap Gaussian.
SRSIM_MIN_SIZE = 40


def spectral_residual_saliency(image: torch.Tensor) -> torch.Tensor:
    """Spectral residual visual saliency (Hou & Zhang 2007) as ``SR_SIM.m`` computes it.

    ``imresize(I, 0.25)`` (bicubic, antialiased); log amplitude A and phase φ of the 2-D FFT;
    residual R = A − 3×3 mean of A (replicated edge); saliency |ifft2(exp(R + iφ))|², filtered
    with a 10×10 Gaussian (σ = 3.8, zero boundary, MATLAB's placement of an even window),
    min-max normalised per image (``mat2gray``) and resized back (bicubic).

    Arguments:
        image: (N, 1, H, W) luminance on the 0..255 scale, H, W ≥ 40.

    Returns:
        (N, 1, H, W) saliency in [0, 1].
    """
    height, width = image.shape[-2:]
    small = imresize_matlab(image, scale=SRSIM_SCALE)
    spectrum = torch.fft.fft2(small)
    eps = torch.finfo(image.dtype).eps
    log_amplitude = torch.log(spectrum.abs() + eps)
    residual = log_amplitude - box_blur(log_amplitude, (SRSIM_AVERAGE, SRSIM_AVERAGE), border_type="replicate")
    saliency = torch.fft.ifft2(torch.polar(torch.exp(residual), spectrum.angle())).abs().pow(2)
    gaussian = get_gaussian_kernel1d(SRSIM_GAUSSIAN, SRSIM_SIGMA, force_even=True,
                                     device=image.device, dtype=image.dtype)[0]
    # imfilter 'same' with an even window of 10: output i sees samples i − 4 … i + 5.
    before, after = (SRSIM_GAUSSIAN - 1) // 2, SRSIM_GAUSSIAN // 2
    padded = F.pad(saliency, (before, after, before, after))
    saliency = F.conv2d(F.conv2d(padded, gaussian.view(1, 1, -1, 1)), gaussian.view(1, 1, 1, -1))
    low = saliency.amin(dim=(2, 3), keepdim=True)
    high = saliency.amax(dim=(2, 3), keepdim=True)
    saliency = (saliency - low) / (high - low + eps)
    return imresize_matlab(saliency, size=(height, width))


def _srsim_scores(test: torch.Tensor, reference: torch.Tensor, data_range: float) -> torch.Tensor:
    """Scores of validated (n, C, H, W) pairs → (n,) (the body of :func:`srsim`)."""
    batch = test.shape[0]
    luminance = yiq_luminance(wang_downsample(stacked_pair(test, reference, data_range)))
    saliency = spectral_residual_saliency(luminance)
    gradient_squared = scharr_gradient_squared(luminance)
    saliency_test, saliency_reference = saliency[:batch], saliency[batch:]
    similarity = similarity_map(saliency_test, saliency_reference, SRSIM_C1) * magnitude_similarity(
        gradient_squared[:batch], gradient_squared[batch:], SRSIM_C2).pow(SRSIM_ALPHA)
    weight = torch.maximum(saliency_test, saliency_reference)
    eps = torch.finfo(weight.dtype).eps
    scores = (similarity * weight).sum(dim=(1, 2, 3)) / (weight.sum(dim=(1, 2, 3)) + eps)
    return scores


def srsim(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """SR-SIM as the authors' ``SR_SIM.m`` (luminance only).

    Convention:
        Test first, reference second (SR-SIM is symmetric in the two).

    Steps: values scaled to 0..255; F×F average and every F-th pixel (``conv2 'same'``, zero
    boundary, F = max(1, round(min(H, W)/256)), MATLAB rounding); Y = 0.299 R + 0.587 G +
    0.114 B; spectral residual saliency VS (:func:`spectral_residual_saliency`) and Scharr
    gradient magnitude G of both; S = S(VS_t, VS_r; 0.40) · S(G_t, G_r; 225)^0.5 with
    S(a, b; c) = (2ab + c)/(a² + b² + c); score = Σ S·VSm / Σ VSm, VSm = max(VS_t, VS_r).

    Arguments:
        test: (N, C, H, W) test images in [0, data_range], C = 3 (RGB) or 1 (luminance).
        reference: (N, C, H, W) reference images, same shape.
        data_range: value of white (the constants are for 0..255).
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores in [0, 1]; 1 for identical images, higher is better.

    Raises:
        InvalidInputError: see :func:`reliqa.checks.check_tensor_pair`; smaller than 40 px.
        ShapeMismatchError: the shapes differ.

    Examples:
        >>> reference = torch.rand(2, 3, 64, 64)
        >>> srsim(reference, reference).round(decimals=4)
        tensor([1., 1.])
    """
    # Images of 384 px or more are downsampled by F >= 2 and stay >= 192 px, so 40 px suffices.
    return checked_pair_scores(
        lambda first, second: _srsim_scores(first, second, data_range), test, reference, data_range, reduction,
        name="srsim", min_size=SRSIM_MIN_SIZE,
        size_reason="the saliency map at a quarter of the size must hold a 10-px Gaussian",
    )
