"""VSI, the visual saliency-induced index (Zhang, Shen & Li 2014), as the authors' ``VSI.m`` with
its SDSP saliency (Zhang, Gu & Li 2013), and piq's variant of it."""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_linear_rgb, rgb_to_xyz

from reliqa.exceptions import InvalidInputError
from reliqa.metrics._validate import Reduction
from reliqa.metrics.color import apply_color_matrix
from reliqa.metrics.filters import box_downsample, imresize_matlab
from reliqa.metrics.similarity import (
    checked_pair_scores,
    magnitude_similarity,
    nonnegative_power,
    real_power,
    scharr_gradient_squared,
    similarity_map,
    stacked_pair,
)
from reliqa.metrics.ssim import downsample_factor_wang

VsiVariant = Literal["matlab", "piq"]

# VSI.m's L, M, N opponent colours (rows L, M, N).
VSI_LMN_MATRIX: tuple[tuple[float, float, float], ...] = (
    (0.06, 0.63, 0.27),
    (0.30, 0.04, -0.35),
    (0.34, -0.60, 0.17),
)
# Constants of VSI.m (0..255 scale) and of its SDSP.
VSI_C_VS, VSI_C_GM, VSI_C_CHROMA = 1.27, 386.0, 130.0
VSI_ALPHA, VSI_LAMBDA = 0.40, 0.020
SDSP_SIGMA_F, SDSP_OMEGA_0, SDSP_SIGMA_D, SDSP_SIGMA_C = 1.34, 0.021, 145.0, 0.001
SDSP_SIZE = 256
# CIE L*a*b* of VSI.m's RGB2Lab: reference white D50, the CIE ε and κ.
_D50_WHITE = (0.9642, 1.0, 0.8251)
_LAB_EPSILON, _LAB_KAPPA = 0.008856, 903.3
VSI_MIN_SIZE = 2


def rgb_to_lab_d50(image: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] → CIE L*a*b* relative to the D50 white, as ``RGB2Lab`` of ``VSI.m``.

    The sRGB decoding and the (D65) sRGB → XYZ matrix are kornia's; only the white point differs
    from ``kornia.color.rgb_to_lab`` (D65), which is why the last step is written out here.

    Arguments:
        image: (N, 3, H, W) sRGB in [0, 1].

    Returns:
        (N, 3, H, W): L* in [0, 100], a*, b*.
    """
    xyz = rgb_to_xyz(rgb_to_linear_rgb(image))
    white = torch.tensor(_D50_WHITE, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    ratio = xyz / white
    linear = (_LAB_KAPPA * ratio + 16.0) / 116.0
    # cube root as exp(log(x)/3): 2x faster than pow(1/3) on CPU; the clamp keeps the unused
    # branch's gradient finite
    cubic = torch.exp(torch.log(ratio.clamp_min(_LAB_EPSILON)) / 3.0)
    f = torch.where(ratio > _LAB_EPSILON, cubic, linear)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


@functools.lru_cache(maxsize=4)
@torch.inference_mode(False)  # cached tensors must serve autograd too, whoever computes first
def _sdsp_priors(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """SDSP's log-Gabor filter (Fourier domain, unshifted) and centre prior at size × size.

    Returns:
        log_gabor: (size, size); centre: (size, size), both float64.
    """
    # logGabor of VSI.m: frequencies (k − (fix(n/2) + 1))/(n − mod(n, 2)), radius > 0.5 masked to 0.
    frequencies = (torch.arange(size, dtype=torch.float64) - size // 2) / (size - size % 2)
    v, u = torch.meshgrid(frequencies, frequencies, indexing="ij")
    radius = torch.sqrt(u * u + v * v)
    radius = torch.fft.ifftshift(torch.where(radius > 0.5, 0.0, radius))
    radius[0, 0] = 1.0
    log_gabor = torch.exp(-(torch.log(radius / SDSP_OMEGA_0) ** 2) / (2 * SDSP_SIGMA_F**2))
    log_gabor = torch.where(radius == 0, 0.0, log_gabor)  # masked frequencies: exp(−∞) = 0
    log_gabor[0, 0] = 0.0
    coordinates = torch.arange(1, size + 1, dtype=torch.float64) - size / 2
    centre = torch.exp(-(coordinates[:, None] ** 2 + coordinates[None, :] ** 2) / SDSP_SIGMA_D**2)
    return log_gabor.to(device), centre.to(device)


def sdsp(image: torch.Tensor, *, variant: VsiVariant = "matlab") -> torch.Tensor:
    """SDSP visual saliency (frequency, location and colour priors) with VSI's parameters.

    The image is resized to 256 × 256 (bilinear), converted to L*a*b* (D50), band-pass filtered
    with a log-Gabor filter (ω₀ = 0.021, σ_F = 1.34) per channel: S_F = ‖response‖; centre prior
    S_D = exp(−‖p − c‖²/145²); colour prior S_C = 1 − exp(−(a'² + b'²)/0.001²) with a', b' the
    min-max normalised a*, b*; S = S_F·S_D·S_C resized back and min-max normalised per image.

    Arguments:
        image: (N, 3, H, W) RGB on the 0..255 scale.
        variant: ``"matlab"``: ``imresize(..., 'bilinear')`` as MATLAB does it
            (:func:`reliqa.metrics.filters.imresize_matlab`: antialiased when shrinking,
            symmetric boundary); ``"piq"``: piq's resizes (``F.interpolate`` without
            antialiasing; ``align_corners=True`` on the way back).

    Returns:
        (N, 1, H, W) saliency in [0, 1].
    """
    height, width = image.shape[-2:]
    if variant == "matlab":
        small = imresize_matlab(image / 255.0, size=(SDSP_SIZE, SDSP_SIZE), kernel="linear")
    else:
        small = F.interpolate(image / 255.0, size=(SDSP_SIZE, SDSP_SIZE), mode="bilinear", align_corners=False)
    lab = rgb_to_lab_d50(small)
    log_gabor, centre = _sdsp_priors(SDSP_SIZE, image.device)
    response = torch.fft.ifft2(torch.fft.fft2(lab) * log_gabor.to(lab.dtype)).real
    # ‖response‖ with a zero (not NaN) gradient where it is 0 (flat images)
    frequency = nonnegative_power(response.pow(2).sum(dim=1, keepdim=True), 0.5)
    chroma = lab[:, 1:]
    low = chroma.amin(dim=(2, 3), keepdim=True)
    high = chroma.amax(dim=(2, 3), keepdim=True)
    eps = torch.finfo(lab.dtype).eps
    normalised = (chroma - low) / (high - low + eps)
    # exp(-x) for x up to 2/0.001² = 2e6: beyond 80 it is below 1e-34 and 1 - it rounds to 1, so
    # the exponent is capped there (exp of huge negative numbers takes a slow path: 10x on CPU).
    distance = (normalised.pow(2).sum(dim=1, keepdim=True) / SDSP_SIGMA_C**2).clamp_max(80.0)
    colour = 1.0 - torch.exp(-distance)
    saliency = frequency * centre.to(lab.dtype) * colour
    if variant == "matlab":
        saliency = imresize_matlab(saliency, size=(height, width), kernel="linear")
    else:
        saliency = F.interpolate(saliency, size=(height, width), mode="bilinear", align_corners=True)
    low = saliency.amin(dim=(2, 3), keepdim=True)
    high = saliency.amax(dim=(2, 3), keepdim=True)
    return (saliency - low) / (high - low + eps)  # MATLAB mat2gray


def _downsample(image: torch.Tensor, factor: int, variant: VsiVariant) -> torch.Tensor:
    """VSI.m: ``conv2(X, ones(F)/F², 'same')`` and every F-th pixel. piq pads by replicating the
    edge and puts the window one pixel earlier for even F (rows i − 1, i instead of i, i + 1)."""
    if variant == "matlab" or factor == 1:
        return box_downsample(image, factor, "zero")
    before, after = factor // 2, (factor - 1) // 2
    padded = F.pad(image, (before, after, before, after), mode="replicate")
    return F.avg_pool2d(padded, factor)


def _vsi_scores(test: torch.Tensor, reference: torch.Tensor, data_range: float, variant: VsiVariant) -> torch.Tensor:
    """Scores of validated (n, C, H, W) pairs → (n,) (the body of :func:`vsi`)."""
    batch = test.shape[0]
    images = stacked_pair(test, reference, data_range)
    saliency = sdsp(images, variant=variant)
    features = torch.cat([saliency, apply_color_matrix(images, VSI_LMN_MATRIX)], dim=1)
    factor = downsample_factor_wang(*test.shape[-2:])
    if variant == "piq":
        factor = max(1, round(min(test.shape[-2:]) / 256))  # Python's round: half to even
    features = _downsample(features, factor, variant)
    saliency, luminance, chroma = features[:, :1], features[:, 1:2], features[:, 2:]
    gradient_squared = scharr_gradient_squared(luminance)
    saliency_test, saliency_reference = saliency[:batch], saliency[batch:]
    saliency_similarity = similarity_map(saliency_test, saliency_reference, VSI_C_VS)
    gradient_similarity = magnitude_similarity(gradient_squared[:batch], gradient_squared[batch:], VSI_C_GM)
    chroma_similarity = similarity_map(chroma[:batch], chroma[batch:], VSI_C_CHROMA).prod(dim=1, keepdim=True)
    similarity = (saliency_similarity * gradient_similarity.pow(VSI_ALPHA)
                  * real_power(chroma_similarity, VSI_LAMBDA))
    weight = torch.maximum(saliency_test, saliency_reference)
    eps = torch.finfo(weight.dtype).eps
    scores = ((similarity * weight).sum(dim=(1, 2, 3)) + eps) / (weight.sum(dim=(1, 2, 3)) + eps)
    return scores


def vsi(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    variant: VsiVariant = "matlab",
    reduction: Reduction = "none",
) -> torch.Tensor:
    """VSI as the authors' ``VSI.m`` (``variant="matlab"``) or as piq computes it (``"piq"``).

    Convention:
        Test first, reference second (VSI is symmetric in the two).

    Steps: values scaled to 0..255; SDSP saliency VS of both images (:func:`sdsp`); L, M, N
    opponent colours; F×F average and every F-th pixel of VS and LMN (F = max(1,
    round(min(H, W)/256))); Scharr gradient magnitude G of L; S = S_VS · S_G^0.4 ·
    Re[(S_M·S_N)^0.02] with S(a, b; c) = (2ab + c)/(a² + b² + c), c = 1.27 (VS), 386 (G),
    130 (M, N); score = Σ S·VSm / Σ VSm, VSm = max(VS_test, VS_reference).

    Arguments:
        test: (N, 3, H, W) RGB test images in [0, data_range].
        reference: (N, 3, H, W) RGB reference images, same shape.
        data_range: value of white (the constants are for 0..255).
        variant: ``"matlab"`` (the official values) or ``"piq"`` (piq 0.8's resizing and
            downsampling; see docs/metrics.md).
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores in [0, 1]; 1 for identical images, higher is better.

    Raises:
        InvalidInputError: see :func:`reliqa.checks.check_tensor_pair` (RGB only); an unknown
            ``variant``.
        ShapeMismatchError: the shapes differ.

    Examples:
        >>> reference = torch.rand(2, 3, 32, 32)
        >>> vsi(reference, reference).round(decimals=4)
        tensor([1., 1.])
    """
    if variant not in ("matlab", "piq"):
        raise InvalidInputError(f"vsi: variant must be 'matlab' or 'piq', got {variant!r}")
    return checked_pair_scores(
        lambda first, second: _vsi_scores(first, second, data_range, variant), test, reference, data_range, reduction,
        name="vsi", min_size=VSI_MIN_SIZE, channels=(3,),
    )

