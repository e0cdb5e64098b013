"""Sharpness distortions: blurs (sharpness −) and sharpening (sharpness +).

Every function: images (N, 3, H, W) float32 in [0, 1], intensity (N,) in [0, 1], optional
``torch.Generator`` → (N, 3, H, W) (unclipped; the catalogue clips). Parameters in pixels.
"""

from __future__ import annotations

import math

import kornia
import torch
from torch import Tensor

from reliqa.distortions.ops_common import (
    BORDER,
    LevelTable,
    disk_kernels,
    filter_per_sample,
    line_kernels,
    luma,
    per_sample,
    uniform,
)

# KADID-10k's level 1 of Gaussian (sigma 0.1) and motion blur (length 1) leaves an image
# unchanged, so for those intensity 0.2 maps to level 2 and the parameter grows in log space up
# to level 5 at 1.0 (between 0 and 0.2 it grows linearly from "no blur"). Lens blur's level 1
# (a 3 x 3 disk) is already visible, so its five levels sit at intensity 0.2, 0.4, ..., 1.0.
GAUSSIAN_SIGMA = LevelTable((0.0, 0.2, 1.0), (0.0, 0.5, 5.0), log=True)
"""Gaussian standard deviation in px (KADID-10k: 0.1, 0.5, 1, 2, 5)."""

LENS_RADIUS = LevelTable((0.0, 0.2, 0.4, 0.6, 0.8, 1.0), (0.0, 1.0, 2.0, 4.0, 6.0, 8.0))
"""Defocus disk radius in px (KADID-10k: 1, 2, 4, 6, 8)."""

MOTION_LENGTH = LevelTable((0.0, 0.2, 1.0), (1.0, 2.0, 10.0), log=True)
"""Motion streak length in px (KADID-10k 'radius', MATLAB fspecial length: 1, 2, 4, 6, 10)."""

HIGH_BOOST_AMOUNT = LevelTable((0.0, 0.2, 0.4, 0.6, 0.8, 1.0), (0.0, 1.0, 2.0, 3.0, 6.0, 12.0))
"""Unsharp amount on CIE L* with sigma 3 px (KADID-10k high sharpen: 1, 2, 3, 6, 12)."""

HIGH_BOOST_SIGMA = 3.0

UNSHARP_AMOUNT = LevelTable((0.0, 0.2, 1.0), (0.0, 0.5, 4.0), log=True)
"""Unsharp amount on RGB with sigma 1 px (no KADID counterpart; calibrated by PSNR)."""

UNSHARP_SIGMA = 1.0

DENOISE_EPS = LevelTable((0.0, 0.2, 1.0), (0.0, 1e-4, 1e-1), log=True)
"""Guided-filter regulariser (squared luma units): local variation below about sqrt(eps) is
flattened (no KADID counterpart; its 'denoise' also leaves noise behind)."""

DENOISE_RADIUS = 4


def _gaussian(images: Tensor, sigma: Tensor) -> Tensor:
    """Per-sample Gaussian blur; sigma (N,) in px, >= 0 (0 leaves the sample unchanged)."""
    sigma = sigma.clamp_min(1e-3)
    radius = max(1, math.ceil(4.0 * float(sigma.max())))
    sigmas = sigma[:, None].expand(-1, 2)
    return kornia.filters.gaussian_blur2d(images, 2 * radius + 1, sigmas, border_type=BORDER)


def gaussian_blur(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Isotropic Gaussian blur, sigma from :data:`GAUSSIAN_SIGMA` (0.5 → 5 px)."""
    return _gaussian(images, GAUSSIAN_SIGMA(intensity))


def lens_blur(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Defocus blur with a flat disk point-spread function, radius from :data:`LENS_RADIUS`."""
    return filter_per_sample(images, disk_kernels(LENS_RADIUS(intensity)))


def motion_blur(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Linear motion blur in a random direction (uniform over 180°, drawn from ``generator``)."""
    angle = uniform(images, (images.shape[0],), generator) * math.pi
    return filter_per_sample(images, line_kernels(MOTION_LENGTH(intensity), angle))


def high_boost_sharpen(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """KADID-10k's 'high sharpen': a wide unsharp mask (sigma 3 px) on CIE L*, colour untouched.

    L* ← L* + amount · (L* − G_σ * L*), amount from :data:`HIGH_BOOST_AMOUNT` (1 → 12).
    """
    lab = kornia.color.rgb_to_lab(images)
    lightness = lab[:, :1]
    blurred = _gaussian(lightness, torch.full_like(intensity, HIGH_BOOST_SIGMA))
    sharpened = lightness + per_sample(HIGH_BOOST_AMOUNT(intensity)) * (lightness - blurred)
    lab = torch.cat([sharpened.clamp(0.0, 100.0), lab[:, 1:]], dim=1)
    return kornia.color.lab_to_rgb(lab, clip=True)


def unsharp_mask(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Fine-detail unsharp masking on RGB: x + amount · (x − G_1px * x), amount 0.5 → 4."""
    blurred = _gaussian(images, torch.full_like(intensity, UNSHARP_SIGMA))
    return images + per_sample(UNSHARP_AMOUNT(intensity)) * (images - blurred)


def denoise_smoothing(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Over-eager noise reduction: an edge-preserving guided filter that wipes out fine texture.

    Self-guided by luma over a 9 × 9 window (radius 4 px), regulariser eps from
    :data:`DENOISE_EPS`: texture and low-contrast detail smooth away while strong edges stay,
    the 'waxy' look of aggressive phone-camera denoising. Loss of detail, hence sharpness −.
    """
    eps = DENOISE_EPS(intensity).clamp_min(1e-8)
    return kornia.filters.guided_blur(
        luma(images), images, 2 * DENOISE_RADIUS + 1, eps, border_type=BORDER
    )
