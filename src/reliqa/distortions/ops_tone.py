"""Tone distortions: brightness (brighter +, darker −) and contrast (more +, less −).

Every function: images (N, 3, H, W) float32 in [0, 1], intensity (N,) in [0, 1], optional
``torch.Generator`` (unused: tone curves are deterministic) → (N, 3, H, W) (unclipped; the
catalogue clips). Brightness curves act on RGB like a camera or editor does; contrast curves
act on luma only (Cb, Cr kept), so a contrast change does not also read as a saturation change.
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

from reliqa.distortions.ops_common import (
    KADID_KNOTS,
    LevelTable,
    linear_light_gain,
    luma,
    per_sample,
    replace_luma,
)

BRIGHTEN_AMOUNT = LevelTable(KADID_KNOTS, (0.0, 0.1, 0.2, 0.4, 0.7, 1.1))
"""Mid-grey lift a of the brighten curve: 0.5 → 0.5 + a/2 (KADID-10k brighten)."""

DARKEN_AMOUNT = LevelTable(KADID_KNOTS, (0.0, 0.05, 0.1, 0.2, 0.4, 0.8))
"""Mid-grey drop a of the darken curve: 0.5 → 0.5 − a/2 (KADID-10k darken)."""

GAMMA_EXPONENT = LevelTable((0.0, 1.0), (1.0, 2.2), log=True)
"""Power-law exponent γ = 2.2^t for darkening; brightening uses 1/γ (no KADID counterpart)."""

EXPOSURE_STOPS = LevelTable((0.0, 0.2, 1.0), (0.0, 0.3, 1.5), log=True)
"""Exposure change in stops (EV), applied as a gain of 2^(±EV) in linear light."""

CONTRAST_GAIN = LevelTable(KADID_KNOTS, (1.0, 1.15, 1.3, 1.45, 1.6, 1.8))
"""Linear luma gain about the mean (KADID-10k linear contrast increase: slopes 1.25 → 1.6)."""

CONTRAST_FACTOR = LevelTable(KADID_KNOTS, (1.0, 0.8, 0.6, 0.4, 0.2, 0.1))
"""Linear luma factor about the mean (KADID-10k contrast decrease: output range 0.8 → 0.1)."""

S_CURVE_STEEPNESS = LevelTable(KADID_KNOTS, (0.0, 0.6, 0.9, 1.2, 1.5, 1.9))
"""k of the S-curve 0.5 + 0.5·tanh(k(2Y − 1))/tanh(k); mid-tone slope k/tanh(k): 1.1 → 2.0."""

COMPRESSION_STRENGTH = LevelTable(KADID_KNOTS, (0.0, 0.25, 0.67, 1.5, 4.0, 9.0))
"""k of the roll-off Y' = μ + d/(1 + 2k|d|): range of Y' 0.8 → 0.1 (KADID-10k non-linear)."""


def _midtone_curve(images: Tensor, lift: Tensor) -> Tensor:
    # Parabola through (0, 0), (0.5, 0.5 + lift/2), (1, 1); past lift 0.5 it overshoots and
    # the catalogue's clip flattens it, as KADID-10k's spline curves do at their top levels.
    return images + 2.0 * per_sample(lift) * images * (1.0 - images)


def brighten(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """KADID-10k-style brighten: a mid-tone lifting curve on RGB; the top level clips highlights."""
    return _midtone_curve(images, BRIGHTEN_AMOUNT(intensity))


def darken(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """KADID-10k-style darken: a mid-tone lowering curve on RGB; the top level crushes shadows."""
    return _midtone_curve(images, -DARKEN_AMOUNT(intensity))


def gamma_brighten(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Power law x^(1/γ), γ = 2.2^t: lifts shadows most, keeps black and white."""
    return kornia.enhance.adjust_gamma(images, 1.0 / GAMMA_EXPONENT(intensity))


def gamma_darken(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Power law x^γ, γ = 2.2^t: deepens shadows, keeps black and white."""
    return kornia.enhance.adjust_gamma(images, GAMMA_EXPONENT(intensity))


def _exposure(images: Tensor, stops: Tensor) -> Tensor:
    return linear_light_gain(images, per_sample(torch.exp2(stops)))


def exposure_up(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Over-exposure: linear-light gain of 2^EV (0.3 → 1.5 EV), highlights clip as in a camera."""
    return _exposure(images, EXPOSURE_STOPS(intensity))


def exposure_down(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Under-exposure: linear-light gain of 2^−EV (0.3 → 1.5 EV)."""
    return _exposure(images, -EXPOSURE_STOPS(intensity))


def _luma_about_mean(images: Tensor, factor: Tensor) -> Tensor:
    y = luma(images)
    return replace_luma(images, kornia.enhance.adjust_contrast_with_mean_subtraction(y, factor))


def linear_contrast_up(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Linear contrast stretch of luma about its mean, gain 1.15 → 1.8 (extremes clip)."""
    return _luma_about_mean(images, CONTRAST_GAIN(intensity))


def linear_contrast_down(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Linear contrast reduction of luma towards its mean, factor 0.8 → 0.1."""
    return _luma_about_mean(images, CONTRAST_FACTOR(intensity))


def nonlinear_contrast_up(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Non-linear contrast: an S-shaped tone curve on luma pivoting at mid-grey, keeping 0 and 1.

    Y' = 0.5 + 0.5 · tanh(k(2Y − 1)) / tanh(k); mid-tones steepen, shadows and highlights
    flatten. k from :data:`S_CURVE_STEEPNESS` (k → 0 is the identity).
    """
    k = per_sample(S_CURVE_STEEPNESS(intensity).clamp_min(1e-4))
    y = luma(images)
    return replace_luma(images, 0.5 + 0.5 * torch.tanh(k * (2.0 * y - 1.0)) / torch.tanh(k))


def nonlinear_contrast_down(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Non-linear contrast reduction: luma rolled off towards its mean, extremes most ("faded").

    Y' = μ + d / (1 + 2k|d|) with d = Y − μ; the slope is at most 1 everywhere, so the luma
    spread always shrinks. k from :data:`COMPRESSION_STRENGTH`: with μ = 0.5 the output spans
    0.8 → 0.1, KADID-10k's non-linear contrast levels.
    """
    y = luma(images)
    mean = y.mean(dim=(-2, -1), keepdim=True)
    deviation = y - mean
    k = per_sample(COMPRESSION_STRENGTH(intensity))
    return replace_luma(images, mean + deviation / (1.0 + 2.0 * k * deviation.abs()))
