"""Shared pieces of the distortion operations: intensity → parameter tables, per-sample kernels.

Convention:
    Every operation in ``ops_*.py`` has the signature
    ``op(images, intensity, generator=None) -> images`` with images float32 (N, 3, H, W) in
    [0, 1] and intensity float32 (N,) in [0, 1], one strength per sample. The catalogue wraps
    each operation so that intensity 0 returns the input and the output is clipped to [0, 1].
    Randomness comes only from ``generator`` (on the images' device; None → global RNG), and is
    drawn independently of the intensity, so one seed gives the same noise field, angle or lost
    block order at every strength: a stronger intensity is the same damage, scaled up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import torch
from torch import Tensor

KADID_KNOTS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
"""Intensities of the :class:`LevelTable` knots: 0 (no distortion) and the five KADID-10k levels
(0.2 about its mildest, 1.0 about its strongest; ../shared/KADID_LEVELS.md)."""

BORDER = "replicate"
"""Border of every spatial filter: unlike ``reflect`` it allows kernels larger than the image."""


@dataclass(frozen=True)
class LevelTable:
    """Continuous map from intensity in [0, 1] to an operation's parameter.

    The parameter is interpolated piecewise-linearly between knots; with ``log`` it is
    interpolated in log space between positive knots (for multiplicative parameters such as a
    compression ratio), and linearly on a segment that starts at zero.

    Attributes:
        intensities: increasing knots, first 0.0 and last 1.0.
        values: the parameter at each knot; ``values[0]`` leaves the image unchanged.
        log: interpolate log(value) between positive knots.

    Example:
        >>> table = LevelTable((0.0, 0.2, 1.0), (0.0, 0.5, 5.0), log=True)
        >>> [round(v, 3) for v in table(torch.tensor([0.0, 0.1, 0.2, 0.6, 1.0])).tolist()]
        [0.0, 0.25, 0.5, 1.581, 5.0]
    """

    intensities: tuple[float, ...]
    values: tuple[float, ...]
    log: bool = False

    def __post_init__(self) -> None:
        knots = self.intensities
        if len(knots) != len(self.values) or len(knots) < 2:
            raise ValueError("LevelTable needs as many values as knots, at least two")
        if (
            knots[0] != 0.0
            or knots[-1] != 1.0
            or any(b <= a for a, b in zip(knots, knots[1:], strict=False))
        ):
            raise ValueError(f"LevelTable knots must rise from 0.0 to 1.0, got {knots}")

    def __call__(self, intensity: Tensor) -> Tensor:
        """(N,) intensities → (N,) parameter values (float32, on the intensity's device)."""
        knots = torch.tensor(self.intensities, device=intensity.device, dtype=torch.float32)
        values = torch.tensor(self.values, device=intensity.device, dtype=torch.float32)
        t = intensity.to(torch.float32).clamp(0.0, 1.0)
        segment = (torch.searchsorted(knots, t, right=True) - 1).clamp(0, len(knots) - 2)
        low, high = values[segment], values[segment + 1]
        fraction = ((t - knots[segment]) / (knots[segment + 1] - knots[segment])).clamp(0.0, 1.0)
        linear = torch.lerp(low, high, fraction)
        if not self.log:
            return linear
        positive = (low > 0) & (high > 0)
        tiny = torch.finfo(torch.float32).tiny
        logarithmic = torch.exp(
            torch.lerp(low.clamp_min(tiny).log(), high.clamp_min(tiny).log(), fraction)
        )
        return torch.where(positive, logarithmic, linear)


def per_sample(values: Tensor) -> Tensor:
    """(N,) → (N, 1, 1, 1), to broadcast one value per sample over (N, C, H, W)."""
    return values.view(-1, 1, 1, 1)


def normal(like: Tensor, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Standard normal draws of ``shape`` on ``like``'s device, float32."""
    return torch.randn(shape, generator=generator, device=like.device, dtype=torch.float32)


def uniform(like: Tensor, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) draws of ``shape`` on ``like``'s device, float32."""
    return torch.rand(shape, generator=generator, device=like.device, dtype=torch.float32)


def kernel_grid(radius: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel offsets (u along W, v along H) of a (2r+1, 2r+1) kernel, each (1, 2r+1, 2r+1)."""
    offsets = torch.arange(-radius, radius + 1, device=like.device, dtype=torch.float32)
    v, u = torch.meshgrid(offsets, offsets, indexing="ij")
    return u[None], v[None]


def filter_per_sample(images: Tensor, kernels: Tensor) -> Tensor:
    """Convolve each sample with its own kernel.

    Args:
        images: (N, C, H, W).
        kernels: (N, k, k), odd k, each summing to 1.

    Returns:
        (N, C, H, W), replicate border.
    """
    return kornia.filters.filter2d(images, kernels, border_type=BORDER)


def disk_kernels(radius: Tensor) -> Tensor:
    """Anti-aliased flat disks (defocus point-spread functions), one per sample.

    Args:
        radius: (N,) radii in pixels, >= 0; radius 0 is the identity kernel.

    Returns:
        (N, k, k) kernels summing to 1, k = 2 * ceil(max radius) + 3.
    """
    size = math.ceil(float(radius.max())) + 1
    u, v = kernel_grid(size, radius)
    # Coverage falls linearly over the pixel that the circle's edge crosses, so the kernel
    # grows continuously with the radius instead of jumping by whole pixels.
    weights = (per_sample(radius)[:, 0] + 0.5 - torch.sqrt(u**2 + v**2)).clamp(0.0, 1.0)
    return weights / weights.sum(dim=(-2, -1), keepdim=True)


def line_kernels(length: Tensor, angle: Tensor) -> Tensor:
    """Anti-aliased straight-line kernels (linear motion blur), one per sample.

    kornia's ``get_motion_kernel2d`` takes one integer size for the whole batch; here each
    sample has its own continuous length, so the kernel is drawn directly.

    Args:
        length: (N,) line lengths in pixels, >= 1; length 1 is the identity kernel.
        angle: (N,) directions in radians.

    Returns:
        (N, k, k) kernels summing to 1, k = 2 * ceil(max length / 2) + 3.
    """
    # A segment of the given length centred on the pixel; each pixel weighs by how much of the
    # segment crosses it (1 px wide across, the overlap along), like the box and disk kernels.
    half = length.clamp_min(1.0) / 2.0
    size = math.ceil(float(half.max())) + 1
    u, v = kernel_grid(size, length)
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    along = u * cos + v * sin
    across = -u * sin + v * cos
    weights = (1.0 - across.abs()).clamp_min(0.0) * (half[:, None, None] + 0.5 - along.abs()).clamp(
        0.0, 1.0
    )
    return weights / weights.sum(dim=(-2, -1), keepdim=True)


def box_kernels(width: Tensor) -> Tensor:
    """Anti-aliased square box filters of continuous width, one per sample.

    Args:
        width: (N,) widths in pixels, >= 1; width 1 is the identity kernel.

    Returns:
        (N, k, k) kernels summing to 1.
    """
    size = math.ceil(float(width.max()) / 2.0) + 1
    u, v = kernel_grid(size, width)
    half = per_sample(width)[:, 0] / 2.0
    weights = (half + 0.5 - u.abs()).clamp(0.0, 1.0) * (half + 0.5 - v.abs()).clamp(0.0, 1.0)
    return weights / weights.sum(dim=(-2, -1), keepdim=True)


def linear_light_gain(images: Tensor, gains: Tensor) -> Tensor:
    """Multiply in linear light, as a camera's exposure or channel gains do: sRGB → linear,
    times ``gains``, clipped to [0, 1] (highlights clip), back to sRGB.

    Arguments:
        images: (N, 3, H, W) sRGB in [0, 1].
        gains: (N, 1, 1, 1) one gain per sample, or (N, 3, 1, 1) one per channel.

    Returns:
        (N, 3, H, W) sRGB in [0, 1].
    """
    linear = kornia.color.rgb_to_linear_rgb(images) * gains
    return kornia.color.linear_rgb_to_rgb(linear.clamp(0.0, 1.0))


def luma(images: Tensor) -> Tensor:
    """Rec. 601 luma Y (the Y of kornia's YCbCr), (N, 3, H, W) → (N, 1, H, W)."""
    return kornia.color.rgb_to_ycbcr(images)[:, :1]


def replace_luma(images: Tensor, new_luma: Tensor) -> Tensor:
    """Replace the luma, keep Cb and Cr: (N, 3, H, W), (N, 1, H, W) → (N, 3, H, W)."""
    ycbcr = kornia.color.rgb_to_ycbcr(images)
    return kornia.color.ycbcr_to_rgb(torch.cat([new_luma, ycbcr[:, 1:]], dim=1))
