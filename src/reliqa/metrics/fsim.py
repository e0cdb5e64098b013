"""FSIM and FSIMc (Zhang, Zhang, Mou & Zhang 2011), as the official ``FeatureSIM.m``."""

from __future__ import annotations

import functools
import math

import torch

from reliqa.checks import check_data_range, check_tensor_pair
from reliqa.metrics._validate import Reduction, reduce
from reliqa.metrics.color import rgb_to_yiq_fsim
from reliqa.metrics.similarity import (
    magnitude_similarity,
    real_power,
    scharr_gradient_squared,
    similarity_map,
    stacked_pair,
    wang_downsample,
)

# phasecong2 parameters of FeatureSIM.m
_SCALES = 4
_ORIENTATIONS = 4
_MIN_WAVELENGTH = 6.0
_MULT = 2.0
_SIGMA_ON_F = 0.55
_D_THETA_ON_SIGMA = 1.2
_NOISE_K = 2.0
_EPSILON = 1e-4
_PC2_NOISE_RESCALE = 1.7  # FeatureSIM.m's empirical rescaling of the noise threshold for PC_2
# similarity constants of FeatureSIM.m, on the 0..255 scale
_T1, _T2, _T3, _T4, _LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03
FSIM_MIN_SIZE = 8


def _frequency_grid(rows: int, cols: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised frequency coordinates (x along columns, y along rows) as in phasecong2, unshifted."""

    def axis(size: int) -> torch.Tensor:
        if size % 2:
            return torch.arange(-(size - 1) / 2, (size - 1) / 2 + 1, dtype=torch.float64) / (size - 1)
        return torch.arange(-size / 2, size / 2, dtype=torch.float64) / size

    y, x = torch.meshgrid(axis(rows).to(device), axis(cols).to(device), indexing="ij")
    return x, y


@functools.lru_cache(maxsize=4)
def _filter_bank(rows: int, cols: int, device: torch.device) -> tuple[torch.Tensor, tuple[float, ...]]:
    """Log-Gabor × angular-spread filters of phasecong2 and each orientation's noise constant.

    Both depend only on the image size, so they are cached (4 sizes).

    Returns:
        bank: (orientations, scales, rows, cols) float64 filters in the Fourier domain.
        noise_gain: per orientation, (2·Σ_s f_s² + 4·Σ_{i<j} f_i·f_j summed over pixels) / Σ F_0²,
            f_s the spatial filters scaled by √(rows·cols), F_0 the finest Fourier filter; times the
            median-based noise energy it gives the expected squared noise energy.
    """
    x, y = _frequency_grid(rows, cols, device)
    radius = torch.sqrt(x * x + y * y)
    lowpass = torch.fft.ifftshift(1.0 / (1.0 + (radius / 0.45) ** (2 * 15)))
    radius = torch.fft.ifftshift(radius)
    radius[0, 0] = 1.0
    theta = torch.fft.ifftshift(torch.atan2(-y, x))
    sin_theta, cos_theta = torch.sin(theta), torch.cos(theta)
    log_gabors = []
    for scale in range(_SCALES):
        centre = 1.0 / (_MIN_WAVELENGTH * _MULT**scale)
        log_gabor = torch.exp(-(torch.log(radius / centre) ** 2) / (2 * math.log(_SIGMA_ON_F) ** 2)) * lowpass
        log_gabor[0, 0] = 0.0
        log_gabors.append(log_gabor)
    theta_sigma = math.pi / _ORIENTATIONS / _D_THETA_ON_SIGMA
    bank = []
    for orientation in range(_ORIENTATIONS):
        angle = orientation * math.pi / _ORIENTATIONS
        sin_difference = sin_theta * math.cos(angle) - cos_theta * math.sin(angle)
        cos_difference = cos_theta * math.cos(angle) + sin_theta * math.sin(angle)
        delta = torch.abs(torch.atan2(sin_difference, cos_difference))
        spread = torch.exp(-(delta**2) / (2 * theta_sigma**2))
        bank.append(torch.stack([log_gabor * spread for log_gabor in log_gabors]))
    filters = torch.stack(bank)
    spatial = torch.fft.ifft2(filters).real * math.sqrt(rows * cols)
    noise_gain = []
    for orientation in range(_ORIENTATIONS):
        scales = spatial[orientation]
        sum_an2 = float((scales**2).sum())
        total = scales.sum(dim=0)
        sum_ai_aj = (float((total**2).sum()) - sum_an2) / 2  # Σ_{i<j} f_i·f_j from (Σ f)² − Σ f²
        noise_gain.append((2 * sum_an2 + 4 * sum_ai_aj) / float((filters[orientation, 0] ** 2).sum()))
    return filters, tuple(noise_gain)


def phase_congruency(image: torch.Tensor) -> torch.Tensor:
    """Phase congruency map as ``phasecong2`` of ``FeatureSIM.m`` (Kovesi's PC_2 measure).

    4 scales (shortest wavelength 6 px, ×2), 4 orientations, log-Gabor σ_f ratio 0.55, angular
    σ = π/4/1.2, noise threshold from the median of the finest-scale energy (k = 2, then /1.7).

    Arguments:
        image: (N, 1, H, W) luminance on the 0..255 scale.

    Returns:
        (N, 1, H, W) phase congruency in [0, 1].
    """
    batch, _, rows, cols = image.shape
    bank64, noise_gain = _filter_bank(rows, cols, image.device)
    bank = bank64.to(image.dtype)
    spectrum = torch.fft.fft2(image[:, 0])  # (N, H, W)
    energy_all = image.new_zeros(batch, rows, cols)
    amplitude_all = image.new_zeros(batch, rows, cols)
    for orientation in range(_ORIENTATIONS):
        responses = torch.fft.ifft2(spectrum[:, None] * bank[orientation])  # (N, S, H, W)
        even, odd = responses.real, responses.imag
        amplitude = responses.abs()
        sum_even, sum_odd = even.sum(dim=1), odd.sum(dim=1)
        norm = torch.sqrt(sum_even**2 + sum_odd**2) + _EPSILON
        mean_even, mean_odd = (sum_even / norm)[:, None], (sum_odd / norm)[:, None]
        energy = (even * mean_even + odd * mean_odd - torch.abs(even * mean_odd - odd * mean_even)).sum(dim=1)

        median_e2n = torch.quantile((amplitude[:, 0] ** 2).flatten(1), 0.5, dim=1)  # MATLAB median
        # Rayleigh parameter of the noise energy: τ² = E[noise energy²] / 2
        tau = torch.sqrt((-median_e2n / math.log(0.5)) * noise_gain[orientation] / 2)
        threshold = (tau * math.sqrt(math.pi / 2) + _NOISE_K * math.sqrt(2 - math.pi / 2) * tau) / _PC2_NOISE_RESCALE
        energy_all = energy_all + torch.clamp(energy - threshold[:, None, None], min=0.0)
        amplitude_all = amplitude_all + amplitude.sum(dim=1)
    return (energy_all / amplitude_all)[:, None]


def fsim(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    chromatic: bool = True,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """FSIMc (``fsim``; FSIM without the chromatic term, ``fsim_luminance``, with
    ``chromatic=False``) exactly as the official ``FeatureSIM.m``.

    On the YIQ Y channel (0.299 R + 0.587 G + 0.114 B, not rounded): F×F average downsampling
    (``conv2 'same'``, F = max(1, round(min(H, W)/256))), phase congruency PC and Scharr
    gradient magnitude G; S = S_PC · S_G with S_PC = (2·PC1·PC2 + 0.85)/(PC1² + PC2² + 0.85),
    S_G = (2·G1·G2 + 160)/(G1² + G2² + 160); FSIM = Σ S·PCm / Σ PCm, PCm = max(PC1, PC2).
    FSIMc multiplies S by Re[(S_I·S_Q)^0.03] with S_I, S_Q the similarities of I and Q (T = 200).

    Arguments:
        test: (N, 3, H, W) RGB test images in [0, data_range].
        reference: (N, 3, H, W) RGB reference images.
        data_range: value of white (the constants are for 0..255).
        chromatic: compute FSIMc (the default, what published tables call FSIM).
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores in [0, 1]; 1 for identical images.
    """
    check_data_range(data_range)
    check_tensor_pair(test, reference, data_range=data_range, name="fsim" if chromatic else "fsim_luminance", min_size=FSIM_MIN_SIZE,
                      channels=(3,))
    batch = test.shape[0]
    yiq = wang_downsample(rgb_to_yiq_fsim(stacked_pair(test, reference, data_range)))
    luminance = yiq[:, :1]
    congruency = phase_congruency(luminance)
    gradient_squared = scharr_gradient_squared(luminance)
    pc_test, pc_reference = congruency[:batch], congruency[batch:]
    gradient_similarity = magnitude_similarity(gradient_squared[:batch], gradient_squared[batch:], _T2)
    similarity = similarity_map(pc_test, pc_reference, _T1) * gradient_similarity
    if chromatic:
        chroma = similarity_map(yiq[:batch, 1:2], yiq[batch:, 1:2], _T3) * similarity_map(
            yiq[:batch, 2:3], yiq[batch:, 2:3], _T4)
        similarity = similarity * real_power(chroma, _LAMBDA)  # MATLAB's real(z^λ), z may be < 0
    weight = torch.maximum(pc_test, pc_reference)
    scores = (similarity * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3))
    return reduce(scores, reduction)
