"""Noise distortions (noise +).

Every function: images (N, 3, H, W) float32 in [0, 1], intensity (N,) in [0, 1], optional
``torch.Generator`` → (N, 3, H, W) (unclipped; the catalogue clips). The random field is drawn
at unit strength and scaled by the intensity's parameter, so for one seed a stronger intensity
is the same noise, stronger.
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

from reliqa.distortions.ops_common import KADID_KNOTS, LevelTable, normal, per_sample, uniform

# KADID-10k levels 1..5 sit at intensity 0.2, 0.4, ..., 1.0; intensity 0 is "no noise".

GAUSSIAN_VARIANCE = LevelTable(KADID_KNOTS, (0.0, 0.001, 0.002, 0.003, 0.005, 0.01))
"""Variance of additive white Gaussian noise on RGB (KADID-10k white noise)."""

CHROMA_VARIANCE = LevelTable(KADID_KNOTS, (0.0, 0.00015, 0.00075, 0.0015, 0.003, 0.0045))
"""Variance of white noise on Cb and Cr: 1.5 × KADID-10k's 'white noise in colour component'
(0.0001 … 0.003 on Y, Cb and Cr), which gives the same RGB error with luma left clean."""

SHOT_SCALE = LevelTable(KADID_KNOTS, (0.0, 0.003, 0.006, 0.009, 0.015, 0.03))
"""Shot-noise variance per unit of linear signal, 1 / (photons at full scale): 333 → 33."""

IMPULSE_DENSITY = LevelTable(KADID_KNOTS, (0.0, 0.001, 0.005, 0.01, 0.02, 0.03))
"""Fraction of values set to 0 or 1 (KADID-10k impulse noise)."""

SPECKLE_VARIANCE = LevelTable(KADID_KNOTS, (0.0, 0.001, 0.005, 0.01, 0.02, 0.05))
"""Variance of the multiplicative noise factor (KADID-10k multiplicative noise)."""


def gaussian_noise(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Additive white Gaussian noise, independent per pixel and channel."""
    std = per_sample(GAUSSIAN_VARIANCE(intensity).sqrt())
    return images + std * normal(images, tuple(images.shape), generator)


def chroma_noise(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """White Gaussian noise on the chroma channels Cb, Cr only (colour speckles, luma kept)."""
    ycbcr = kornia.color.rgb_to_ycbcr(images)
    n, _, h, w = images.shape
    std = per_sample(CHROMA_VARIANCE(intensity).sqrt())
    chroma = ycbcr[:, 1:] + std * normal(images, (n, 2, h, w), generator)
    return kornia.color.ycbcr_to_rgb(torch.cat([ycbcr[:, :1], chroma], dim=1))


def shot_noise(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Signal-dependent photon (shot) noise, as a camera sensor makes it.

    The image is taken to linear light, each value gets noise of variance ``k · signal``
    (the Gaussian approximation of Poisson counts with 1/k photons at full scale, accurate at
    the 33+ photons used here and continuous in k), and goes back to sRGB, so shadows end up
    noisier than highlights. k from :data:`SHOT_SCALE`, set so the PSNR matches
    :func:`gaussian_noise` at the same intensity on photos (docs/distortions.md).
    """
    linear = kornia.color.rgb_to_linear_rgb(images)
    std = (per_sample(SHOT_SCALE(intensity)) * linear).sqrt()
    noisy = (linear + std * normal(images, tuple(images.shape), generator)).clamp(0.0, 1.0)
    return kornia.color.linear_rgb_to_rgb(noisy)


def impulse_noise(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Salt-and-pepper noise: a fraction of the values (per channel) set to 0 or 1 at random."""
    hit = uniform(images, tuple(images.shape), generator) < per_sample(IMPULSE_DENSITY(intensity))
    salt = uniform(images, tuple(images.shape), generator) < 0.5
    return torch.where(hit, salt.to(images.dtype), images)


def speckle_noise(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Multiplicative Gaussian noise: x + x · n, n ~ N(0, variance)."""
    std = per_sample(SPECKLE_VARIANCE(intensity).sqrt())
    return images * (1.0 + std * normal(images, tuple(images.shape), generator))
