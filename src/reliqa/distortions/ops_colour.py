"""Colour distortions: saturation (±), white balance (warm +, cool −), tint (magenta +, green −).

Every function: images (N, 3, H, W) float32 in [0, 1], intensity (N,) in [0, 1], optional
``torch.Generator`` (unused: deterministic) → (N, 3, H, W) (unclipped; the catalogue clips).
Saturation scales CIE a*, b* at fixed L*; white balance and tint are per-channel gains in
linear light, normalised so that a neutral grey keeps its luminance: only the cast changes.
"""

from __future__ import annotations

import kornia
import torch
from torch import Tensor

from reliqa.distortions.ops_common import KADID_KNOTS, LevelTable, linear_light_gain, per_sample

SATURATION_GAIN = LevelTable(KADID_KNOTS, (1.0, 1.5, 2.0, 3.0, 6.0, 9.0))
"""Factor on a*, b* (KADID-10k saturation increase: 1, 2, 3, 6, 9; its level 1 is the identity)."""

DESATURATION_FACTOR = LevelTable(KADID_KNOTS, (1.0, 0.4, 0.2, 0.1, 0.05, 0.0))
"""Factor on a*, b* (KADID-10k saturation decrease: 0.4, 0.2, 0.1, 0, −0.4; stops at grey)."""

WHITE_BALANCE_RATIO = LevelTable((0.0, 1.0), (1.0, 2.8), log=True)
"""Ratio of the red gain to the blue gain in linear light (no KADID counterpart)."""

TINT_RATIO = LevelTable((0.0, 1.0), (1.0, 2.0), log=True)
"""Ratio of the red/blue gains to the green gain in linear light (no KADID counterpart)."""

# Rec. 709 luminance of linear sRGB, used to keep a grey's luminance under a colour cast.
_LUMINANCE = (0.2126, 0.7152, 0.0722)


def _scale_chroma(images: Tensor, factor: Tensor) -> Tensor:
    lab = kornia.color.rgb_to_lab(images)
    lab = torch.cat([lab[:, :1], lab[:, 1:] * per_sample(factor)], dim=1)
    return kornia.color.lab_to_rgb(lab, clip=True)


def saturation_up(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """More saturated: CIE a*, b* times 1.5 → 9 at fixed L* (strong levels clip in RGB)."""
    return _scale_chroma(images, SATURATION_GAIN(intensity))


def saturation_down(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Less saturated: CIE a*, b* multiplied by 0.4 → 0 at fixed L* (1.0 is greyscale)."""
    return _scale_chroma(images, DESATURATION_FACTOR(intensity))


def _channel_gains(images: Tensor, gains: Tensor) -> Tensor:
    """Multiply linear-light RGB by (N, 3) gains scaled to keep grey's luminance."""
    weights = torch.tensor(_LUMINANCE, device=images.device, dtype=torch.float32)
    gains = gains / (gains * weights).sum(dim=1, keepdim=True)
    return linear_light_gain(images, gains[:, :, None, None])


def _white_balance(images: Tensor, ratio: Tensor) -> Tensor:
    half = ratio.sqrt()
    return _channel_gains(images, torch.stack([half, torch.ones_like(half), 1.0 / half], dim=1))


def _tint(images: Tensor, ratio: Tensor) -> Tensor:
    return _channel_gains(images, torch.stack([ratio, torch.ones_like(ratio), ratio], dim=1))


def warm(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Warm white balance: red gain over blue gain 1 → 2.8 in linear light (an orange cast)."""
    return _white_balance(images, WHITE_BALANCE_RATIO(intensity))


def cool(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Cool white balance: blue gain over red gain 1 → 2.8 in linear light (a blue cast)."""
    return _white_balance(images, 1.0 / WHITE_BALANCE_RATIO(intensity))


def magenta_tint(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Magenta tint: red and blue gains over the green gain 1 → 2 in linear light."""
    return _tint(images, TINT_RATIO(intensity))


def green_tint(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Green tint: green gain over the red and blue gains 1 → 2 in linear light."""
    return _tint(images, 1.0 / TINT_RATIO(intensity))
