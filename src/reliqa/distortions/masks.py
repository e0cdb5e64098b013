"""Spatial masks: where, and how strongly, a distortion applies inside a frame.

Convention:
    A mask batch is a float32 tensor of shape (N, 1, H, W) with values in [0, 1]: 0 = the pixel
    keeps the input, 1 = the pixel takes the fully distorted value, values between blend the two
    (soft edges). Exact zeros are real zeros, so truth maps are exactly 0.5 there.

Families (:data:`MASK_FAMILIES`), from the whole frame down to small blobs:

- ``full``: the whole frame (all ones);
- ``fractal``: fractal (multi-octave Perlin) noise thresholded with a soft edge, large regions
  (1–4 lattice cells across the longer side);
- ``blobs``: the same noise at a fine scale (4–16 cells) with low coverage: scattered blobs;
- ``rectangle`` / ``ellipse``: one axis-aligned rectangle / ellipse with a feathered edge;
- ``half``: a half-plane through the frame at any angle (a half-frame), feathered edge.

Every random choice is drawn from a CPU ``torch.Generator`` and only the finished parameters move
to the target device, so a seed gives the same masks on CPU and GPU (up to float rounding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from reliqa.exceptions import InvalidInputError, UnknownNameError

MASK_FAMILIES: tuple[str, ...] = ("full", "fractal", "blobs", "rectangle", "ellipse", "half")
"""Names accepted by :func:`random_masks`."""

DEFAULT_FAMILY_WEIGHTS: dict[str, float] = {
    "full": 0.2,
    "fractal": 0.3,
    "blobs": 0.2,
    "rectangle": 0.1,
    "ellipse": 0.1,
    "half": 0.1,
}
"""How often :func:`random_masks` draws each family when no weights are given."""

MIN_CELL_PIXELS: float = 16.0
"""Smallest noise lattice cell in pixels: keeps blob edges smooth (bounded mask gradient)."""

NOISE_STEP: int = 4
"""Noise masks are computed on a grid this much coarser and upsampled (frames ≥ 32 px)."""


def smoothstep(x: torch.Tensor) -> torch.Tensor:
    """Cubic Hermite step: 0 for x ≤ 0, 1 for x ≥ 1, C¹-smooth in between (any shape)."""
    s = x.clamp(0.0, 1.0)
    return s.mul(-2.0).add_(3.0).mul_(s).mul_(s)


def _check_size(batch: int, height: int, width: int) -> None:
    if batch < 1 or height < 1 or width < 1:
        raise InvalidInputError(
            f"mask batch and size must be positive, got batch={batch}, size=({height}, {width})"
        )


def _per_sample(value: float | torch.Tensor, batch: int, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float32).flatten()
    if tensor.numel() == 1:
        return tensor.expand(batch).clone()
    if tensor.numel() != batch:
        raise InvalidInputError(f"{name}: expected one value or {batch}, got {tensor.numel()}")
    return tensor


def _fade(t: torch.Tensor) -> torch.Tensor:
    # Perlin's quintic fade: zero first and second derivative at the lattice points, so the noise
    # is C²-smooth across cell borders.
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(
    batch: int,
    height: int,
    width: int,
    cells: float | torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """2-D Perlin gradient noise, one independent field per sample.

    Convention:
        ``cells`` is the number of lattice cells across the frame's LONGER side (it may differ
        per sample and need not be an integer): 1 gives one smooth swell over the frame, 16
        gives features about 1/16 of the frame wide. The lattice is randomly offset per sample.

    Arguments:
        batch: N, number of fields.
        height, width: H, W of each field.
        cells: one value or a (N,) tensor, > 0.
        generator: CPU generator for the random gradients and offsets.
        device: where the field is computed.

    Returns:
        (N, 1, H, W) float32, values roughly in [-0.7, 0.7], zero at every lattice point.
    """
    _check_size(batch, height, width)
    cells_n = _per_sample(cells, batch, "cells")
    if not bool((cells_n > 0).all()):
        raise InvalidInputError(f"cells must be > 0, got {cells_n.tolist()}")
    lattice = math.ceil(float(cells_n.max())) + 2
    angles = torch.rand(batch, lattice, lattice, generator=generator) * (2.0 * math.pi)
    offsets = torch.rand(batch, 2, generator=generator)
    gradients = torch.stack((angles.cos(), angles.sin()), dim=-1).to(device)  # (N, L, L, 2)
    cells_n, offsets = cells_n.to(device), offsets.to(device)

    side = float(max(height, width))
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / side
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / side
    rows, rows_offset = _axis_weights(ys[None] * cells_n[:, None] + offsets[:, :1], lattice)
    cols, cols_offset = _axis_weights(xs[None] * cells_n[:, None] + offsets[:, 1:], lattice)
    # Perlin noise is bilinear in the corner terms, and every corner term is a product of a
    # row factor and a column factor, so the whole field is two chains of batched matrix
    # products: noise = R·Gx·Cf^T + Rf·Gy·C^T. This is much faster than gathering the four
    # corner gradients per pixel.
    noise = rows @ gradients[..., 0] @ cols_offset.transpose(1, 2)
    noise = noise + rows_offset @ gradients[..., 1] @ cols.transpose(1, 2)
    return noise[:, None]


def _axis_weights(coordinate: torch.Tensor, lattice: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation matrices of one axis for :func:`perlin_noise`.

    Arguments:
        coordinate: (N, P) lattice coordinates of the P pixels along the axis.
        lattice: number of lattice points along the axis.

    Returns:
        Two (N, P, lattice) matrices: the fade weights of the two neighbouring lattice points,
        and the same weights times the signed offset from each point.
    """
    low = coordinate.floor()
    fraction = coordinate - low
    fade = _fade(fraction)
    index = low.long()
    weights = torch.zeros(*coordinate.shape, lattice, device=coordinate.device)
    offsets = torch.zeros_like(weights)
    for step, weight in ((0, 1.0 - fade), (1, fade)):
        target = (index + step)[..., None]
        weights.scatter_add_(2, target, weight[..., None])
        offsets.scatter_add_(2, target, (weight * (fraction - step))[..., None])
    return weights, offsets


def fractal_noise(
    batch: int,
    height: int,
    width: int,
    cells: float | torch.Tensor,
    *,
    octaves: int = 3,
    persistence: float = 0.5,
    step: int = 1,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Fractal (fBm) noise: Perlin octaves at cells·2^k with amplitude persistence^k, standardised.

    Octaves whose cells would be smaller than :data:`MIN_CELL_PIXELS` are left out per sample,
    so the field stays smooth on small frames.

    Arguments:
        batch, height, width, cells, generator, device: as in :func:`perlin_noise`.
        octaves: number of octaves (≥ 1).
        persistence: amplitude ratio between successive octaves.
        step: compute the field on a grid ``step`` times coarser and upsample it bilinearly
            (the noise has no detail finer than :data:`MIN_CELL_PIXELS`, so a step of up to a
            quarter of that loses nothing visible and saves most of the work).

    Returns:
        (N, 1, H, W) float32 with zero mean and unit standard deviation per sample (a constant
        field, e.g. a 1×1 frame, stays 0).
    """
    if octaves < 1 or step < 1:
        raise InvalidInputError(f"octaves and step must be ≥ 1, got {octaves} and {step}")
    cells_n = _per_sample(cells, batch, "cells")
    finest = max(height, width) / MIN_CELL_PIXELS
    coarse = (-(-height // step), -(-width // step))
    total = torch.zeros(batch, 1, *coarse, device=device)
    for octave in range(octaves):
        octave_cells = cells_n * 2.0**octave
        keep = (octave == 0) | (octave_cells <= finest)
        layer = perlin_noise(batch, *coarse, octave_cells, generator=generator, device=device)
        total += layer * (persistence**octave * keep.to(device, torch.float32)).view(-1, 1, 1, 1)
    flat = total.flatten(1)
    mean = flat.mean(dim=1).view(-1, 1, 1, 1)
    std = flat.std(dim=1, correction=0).view(-1, 1, 1, 1)
    total = (total - mean) / std.clamp_min(1e-6)
    if coarse != (height, width):
        total = F.interpolate(total, size=(height, width), mode="bilinear", align_corners=False)
    return total


def threshold_noise(
    noise: torch.Tensor, coverage: float | torch.Tensor, feather: float | torch.Tensor
) -> torch.Tensor:
    """Soft threshold of standardised noise into a mask covering about ``coverage`` of the frame.

    Convention:
        The soft band is scaled by the field's steepest step between neighbouring pixels, so the
        mask never changes by more than 1.5 / ``feather`` between two neighbours: where the noise
        is steepest the edge is ``feather`` pixels wide, elsewhere it is wider.

    Arguments:
        noise: (N, 1, H, W) standardised noise (see :func:`fractal_noise`).
        coverage: one value or (N,), fraction of the frame inside the mask, in (0, 1).
        feather: one value or (N,), narrowest width of the soft edge in pixels (> 0).

    Returns:
        (N, 1, H, W) mask in [0, 1]: exactly 0 below the edge band, exactly 1 above it.
    """
    batch = noise.shape[0]
    coverage_n = _per_sample(coverage, batch, "coverage").clamp(1e-4, 1 - 1e-4)
    feather_n = _per_sample(feather, batch, "feather").clamp_min(1e-3).to(noise.device)
    # For Gaussian-like noise the (1 - coverage) quantile is ndtri(1 - coverage).
    level = torch.special.ndtri(1.0 - coverage_n).to(noise.device).view(-1, 1, 1, 1)
    steepest = torch.zeros(batch, device=noise.device)
    if noise.shape[-2] > 1:
        steepest = torch.maximum(steepest, noise.diff(dim=-2).abs().flatten(1).amax(dim=1))
    if noise.shape[-1] > 1:
        steepest = torch.maximum(steepest, noise.diff(dim=-1).abs().flatten(1).amax(dim=1))
    width = (steepest * feather_n).clamp_min(1e-3).view(-1, 1, 1, 1)
    return smoothstep((noise - level) / width + 0.5)


def _pixel_grid(
    height: int, width: int, device: torch.device | str | None
) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5
    return ys.view(1, 1, -1, 1), xs.view(1, 1, 1, -1)


def _column(values: torch.Tensor, device: torch.device | str | None) -> torch.Tensor:
    return values.to(device, torch.float32).view(-1, 1, 1, 1)


def _feathered_edge(distance: torch.Tensor, feather: torch.Tensor) -> torch.Tensor:
    """Mask from a signed distance to a shape's border: 0.5 on the border, rising to 1 inside
    over a soft edge ``feather`` pixels wide (at least 1e-3) centred on it.

    Arguments:
        distance: (N, 1, H, W) signed distance in pixels, positive inside.
        feather: (N,) width of the soft edge in pixels.

    Returns:
        (N, 1, H, W) mask in [0, 1].
    """
    return smoothstep(distance / _column(feather, distance.device).clamp_min(1e-3) + 0.5)


def rectangle_mask(
    height: int,
    width: int,
    center: torch.Tensor,
    half_size: torch.Tensor,
    feather: torch.Tensor,
) -> torch.Tensor:
    """Axis-aligned rectangles with a feathered edge.

    Arguments:
        height, width: H, W of the frame.
        center: (N, 2) centres (y, x) in pixels.
        half_size: (N, 2) half heights and half widths in pixels.
        feather: (N,) width of the soft edge in pixels (the edge is centred on the border).

    Returns:
        (N, 1, H, W) mask in [0, 1].
    """
    device = center.device
    ys, xs = _pixel_grid(height, width, device)
    inside_y = _column(half_size[:, 0], device) - (ys - _column(center[:, 0], device)).abs()
    inside_x = _column(half_size[:, 1], device) - (xs - _column(center[:, 1], device)).abs()
    distance = torch.minimum(inside_y, inside_x)  # signed distance to the border, 1-Lipschitz
    return _feathered_edge(distance, feather)


def ellipse_mask(
    height: int,
    width: int,
    center: torch.Tensor,
    radii: torch.Tensor,
    feather: torch.Tensor,
) -> torch.Tensor:
    """Axis-aligned ellipses with a feathered edge.

    Arguments:
        height, width: H, W of the frame.
        center: (N, 2) centres (y, x) in pixels.
        radii: (N, 2) semi-axes (y, x) in pixels, > 0.
        feather: (N,) width of the soft edge in pixels.

    Returns:
        (N, 1, H, W) mask in [0, 1].
    """
    device = center.device
    ys, xs = _pixel_grid(height, width, device)
    radius_y = _column(radii[:, 0], device).clamp_min(1e-3)
    radius_x = _column(radii[:, 1], device).clamp_min(1e-3)
    dy = (ys - _column(center[:, 0], device)) / radius_y
    dx = (xs - _column(center[:, 1], device)) / radius_x
    # (1 - r) · min radius approximates the signed distance and is 1-Lipschitz.
    distance = (1.0 - torch.sqrt(dy * dy + dx * dx)) * torch.minimum(radius_y, radius_x)
    return _feathered_edge(distance, feather)


def half_frame_mask(
    height: int,
    width: int,
    angle: torch.Tensor,
    offset: torch.Tensor,
    feather: torch.Tensor,
) -> torch.Tensor:
    """Half-planes: the side of a straight line through the frame, with a feathered edge.

    Arguments:
        height, width: H, W of the frame.
        angle: (N,) direction (radians) of the normal pointing INTO the masked half; 0 masks the
            right side, π/2 the bottom.
        offset: (N,) shift of the line from the frame centre along the normal, in pixels
            (positive shrinks the masked half).
        feather: (N,) width of the soft edge in pixels.

    Returns:
        (N, 1, H, W) mask in [0, 1].
    """
    device = angle.device
    ys, xs = _pixel_grid(height, width, device)
    normal_y, normal_x = _column(angle.sin(), device), _column(angle.cos(), device)
    distance = (ys - height / 2.0) * normal_y + (xs - width / 2.0) * normal_x
    distance = distance - _column(offset, device)
    return _feathered_edge(distance, feather)


def _uniform(
    low: float, high: float, count: int, generator: torch.Generator | None
) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator)


def _log_uniform(
    low: float, high: float, count: int, generator: torch.Generator | None
) -> torch.Tensor:
    return torch.exp(_uniform(math.log(low), math.log(high), count, generator))


def _family_masks(
    family: str,
    count: int,
    height: int,
    width: int,
    generator: torch.Generator | None,
    device: torch.device | str | None,
) -> torch.Tensor:
    short, long = float(min(height, width)), float(max(height, width))
    # Soft edges 3–15 % of the short side (2–5 % for small blobs), at least two pixels.
    low, high = (0.02, 0.05) if family == "blobs" else (0.03, 0.15)
    feather = (_uniform(low, high, count, generator) * short).clamp_min(2.0)
    if family == "full":
        return torch.ones(count, 1, height, width, device=device)
    if family in ("fractal", "blobs"):
        finest = max(1.0, long / MIN_CELL_PIXELS)
        if family == "fractal":
            cells = _log_uniform(1.0, 4.0, count, generator).clamp_max(finest)
            coverage = _uniform(0.2, 0.9, count, generator)
        else:
            cells = _log_uniform(4.0, 16.0, count, generator).clamp_max(finest)
            coverage = _uniform(0.05, 0.3, count, generator)
        step = NOISE_STEP if min(height, width) >= 8 * NOISE_STEP else 1
        noise = fractal_noise(
            count, height, width, cells, step=step, generator=generator, device=device
        )
        return threshold_noise(noise, coverage, feather)
    if family in ("rectangle", "ellipse"):
        center = torch.rand(count, 2, generator=generator) * torch.tensor([height, width])
        extent = _uniform(0.15, 0.5, 2 * count, generator).view(count, 2)
        extent = extent * torch.tensor([height, width], dtype=torch.float32)
        center, extent, feather = center.to(device), extent.to(device), feather.to(device)
        if family == "rectangle":
            return rectangle_mask(height, width, center, extent, feather)
        return ellipse_mask(height, width, center, extent, feather)
    if family == "half":
        angle = _uniform(0.0, 2.0 * math.pi, count, generator)
        offset = _uniform(-0.25, 0.25, count, generator) * short
        return half_frame_mask(height, width, angle.to(device), offset.to(device), feather.to(device))
    raise UnknownNameError(f"unknown mask family {family!r}; known: {', '.join(MASK_FAMILIES)}")


def random_masks(
    batch: int,
    height: int,
    width: int,
    *,
    families: Sequence[str] | dict[str, float] | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw one random mask per sample, mixing families and scales.

    Arguments:
        batch: N.
        height, width: H, W.
        families: the families to draw from, uniformly (a sequence) or with weights (a dict);
            default :data:`DEFAULT_FAMILY_WEIGHTS`.
        generator: CPU generator; the same seed gives the same masks.
        device: where the masks are built.

    Returns:
        (N, 1, H, W) float32 masks in [0, 1].

    Raises:
        InvalidInputError: a non-positive size, or no family with positive weight.
        UnknownNameError: an unknown family name.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_masks(2, 8, 8, generator=g).shape
        torch.Size([2, 1, 8, 8])
    """
    _check_size(batch, height, width)
    weights = _family_weights(families)
    names = list(weights)
    probabilities = torch.tensor([weights[name] for name in names], dtype=torch.float32)
    choice = torch.multinomial(probabilities, batch, replacement=True, generator=generator)
    masks = torch.empty(batch, 1, height, width, device=device)
    for index, family in enumerate(names):
        members = (choice == index).nonzero().flatten()
        if members.numel():
            masks[members.to(device)] = _family_masks(
                family, members.numel(), height, width, generator, device
            )
    return masks


def _family_weights(families: Sequence[str] | dict[str, float] | None) -> dict[str, float]:
    if families is None:
        return dict(DEFAULT_FAMILY_WEIGHTS)
    weights = dict(families) if isinstance(families, dict) else dict.fromkeys(families, 1.0)
    unknown = [name for name in weights if name not in MASK_FAMILIES]
    if unknown:
        raise UnknownNameError(
            f"unknown mask family {unknown[0]!r}; known: {', '.join(MASK_FAMILIES)}"
        )
    weights = {name: float(w) for name, w in weights.items() if w > 0}
    if not weights:
        raise InvalidInputError("families: need at least one family with a positive weight")
    return weights
