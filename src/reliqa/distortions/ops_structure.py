"""Structural distortions (structure +): pixelation, jitter, lost blocks.

Every function: images (N, 3, H, W) float32 in [0, 1], intensity (N,) in [0, 1], optional
``torch.Generator`` → (N, 3, H, W). Random draws (displacements, block order and colours) do
not depend on the intensity, so for one seed a stronger intensity moves the same pixels
further or loses a superset of the same blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from reliqa.distortions.ops_common import (
    KADID_KNOTS,
    LevelTable,
    box_kernels,
    filter_per_sample,
    normal,
    uniform,
)

PIXEL_BLOCK = LevelTable(KADID_KNOTS, (1.0, 1.6, 2.2, 3.0, 4.2, 6.0))
"""Mosaic cell size in px. KADID-10k's pixelate (cells 1.13 … 3.45 px) resizes by nearest
neighbour, which misaligns and aliases; averaged, aligned cells need to be larger to match it."""

JITTER_STD = LevelTable(KADID_KNOTS, (0.0, 0.25, 0.4, 0.6, 1.2, 2.4))
"""Displacement std in px. KADID-10k's jitter (0.05 … 1 px) scatters five times, each pass
also blurring; one pass needs about √5 × its top level, and more at the mild end."""

LOST_FRACTION = LevelTable(KADID_KNOTS, (0.0, 0.0104, 0.0208, 0.0313, 0.0417, 0.0521))
"""Fraction of blocks lost: KADID-10k's 2 … 10 colour blocks of 32² px in 512 × 384 px."""

LOST_BLOCKS_PER_SIDE = 12
"""Block side = shorter image side / 12 (32 px in KADID-10k's 384-px-high images)."""


def _sample(images: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """Read images bilinearly at pixel coordinates y, x of shape (N, H, W) (centres at integers)."""
    height, width = images.shape[-2:]
    grid = torch.stack([(2.0 * x + 1.0) / width - 1.0, (2.0 * y + 1.0) / height - 1.0], dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _pixel_coordinates(images: Tensor) -> tuple[Tensor, Tensor]:
    n, _, height, width = images.shape
    device, dtype = images.device, torch.float32
    y, x = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype),
        torch.arange(width, device=device, dtype=dtype),
        indexing="ij",
    )
    return y.expand(n, -1, -1), x.expand(n, -1, -1)


def pixelation(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Mosaic: each cell of b × b px (b continuous, 1.6 → 6) takes the cell's mean colour.

    A box filter of width b averages each cell, then every pixel reads its cell's centre; a
    cell larger than the image reads the nearest border value.
    """
    block = PIXEL_BLOCK(intensity)
    averaged = filter_per_sample(images, box_kernels(block))
    y, x = _pixel_coordinates(images)
    size = block[:, None, None]
    centre_y = (torch.floor((y + 0.5) / size) + 0.5) * size - 0.5
    centre_x = (torch.floor((x + 0.5) / size) + 0.5) * size - 0.5
    return _sample(averaged, centre_y, centre_x)


def jitter(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each pixel read from a randomly displaced spot (Gaussian, std 0.25 → 2.4 px, bilinear)."""
    n, _, height, width = images.shape
    y, x = _pixel_coordinates(images)
    std = JITTER_STD(intensity)[:, None, None]
    offset_y = std * normal(images, (n, height, width), generator)
    offset_x = std * normal(images, (n, height, width), generator)
    return _sample(images, y + offset_y, x + offset_x)


def lost_blocks(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Blocks replaced by flat random colours, as lost packets or KADID-10k's colour blocks.

    The image is tiled into blocks of side max(1, round(min(H, W) / 12)); a fraction
    1 % → 5.2 % of them is lost. The blocks are lost in a random order fixed by the generator,
    so a stronger intensity loses the same blocks and more. The fractional part of the count
    fades the next block in, which keeps the damage strictly rising with intensity (ordinal
    sets need no ties between nearby levels).
    """
    n, _, height, width = images.shape
    side = max(1, round(min(height, width) / LOST_BLOCKS_PER_SIDE))
    rows, columns = -(-height // side), -(-width // side)
    order = uniform(images, (n, rows * columns), generator).argsort(dim=1).argsort(dim=1)
    colours = uniform(images, (n, 3, rows, columns), generator)
    count = LOST_FRACTION(intensity) * rows * columns
    lost = (count[:, None] - order).clamp(0.0, 1.0).view(n, 1, rows, columns)

    def to_pixels(blocks: Tensor) -> Tensor:
        return blocks.repeat_interleave(side, dim=-2).repeat_interleave(side, dim=-1)[
            ..., :height, :width
        ]

    return torch.lerp(images, to_pixels(colours), to_pixels(lost))
