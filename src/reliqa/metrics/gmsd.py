"""Gradient Magnitude Similarity Deviation (Xue, Zhang, Mou & Bovik 2014)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reliqa.checks import check_data_range, check_tensor_pair
from reliqa.metrics._validate import Reduction, reduce
from reliqa.metrics.filters import box_downsample, plane_chunk_size

GMSD_THRESHOLD_8BIT: float = 170.0
"""The constant T of ``GMSD.m``, for 0..255 images."""


def prewitt_gradient_squared(image: torch.Tensor) -> torch.Tensor:
    """Gx² + Gy² with the Prewitt-like kernels of ``GMSD.m`` ([1 0 −1]/3 over three rows, and its
    transpose), as ``conv2(I, k, 'same')`` with a zero boundary.

    The kernels are separable (a 3-tap box times a central difference), so both gradients come
    from a few shifted slices of one zero-padded tensor instead of a convolution.

    Arguments:
        image: (N, C, H, W).

    Returns:
        (N, C, H, W) squared gradient magnitude times 9 (the kernels' 1/3 is left to the caller).
    """
    padded = F.pad(image, (1, 1, 1, 1))
    column_box = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]  # (H, W + 2)
    row_box = padded[..., :, :-2] + padded[..., :, 1:-1] + padded[..., :, 2:]  # (H + 2, W)
    gradient_x = column_box[..., 2:] - column_box[..., :-2]
    gradient_y = row_box[..., 2:, :] - row_box[..., :-2, :]
    return torch.addcmul(gradient_x * gradient_x, gradient_y, gradient_y)


def _gms_deviation(test: torch.Tensor, reference: torch.Tensor, downsample: bool, threshold: float) -> torch.Tensor:
    """GMSD of (P, 1, H, W) planes → (P,), no validation."""
    if downsample:
        test, reference = box_downsample(test, 2, "zero"), box_downsample(reference, 2, "zero")
    squared_test, squared_reference = prewitt_gradient_squared(torch.cat([test, reference])).chunk(2)
    # 2·m1·m2 = 2·√(m1²·m2²): one square root; the floor keeps its gradient finite on flat areas.
    # The squared gradients are 9× too large (kernel 1/3 left out), so the threshold is 9× too.
    cross = (squared_test * squared_reference).clamp_min(1e-30).sqrt()
    similarity = (2.0 * cross + 9.0 * threshold) / (squared_test + squared_reference + 9.0 * threshold)
    return similarity.flatten(1).std(dim=-1, correction=1)


def gmsd_per_channel(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    downsample: bool = True,
    threshold: float | None = None,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """GMSD of each channel as in the official ``GMSD.m`` (the kernel of ``gmsd`` and ``gmsd_rgb``):
    standard deviation of the gradient-magnitude similarity.

    Steps of ``GMSD.m``: average 2×2 (``conv2(Y, ones(2)/4, 'same')``, zero boundary) and keep
    every second pixel; Prewitt-like gradients ``[1 0 -1]/3`` in x and y (``conv2 'same'``);
    GMS = (2·m1·m2 + T) / (m1² + m2² + T) with T = 170 on the 0..255 scale; score = ``std2``
    (N − 1 normalisation) of the GMS map over all pixels. Channels are scored separately and
    averaged.

    Arguments:
        test: (N, C, H, W) test images in [0, data_range].
        reference: (N, C, H, W) reference images.
        data_range: value of white.
        downsample: apply the 2× average downsampling of ``GMSD.m`` (part of its definition).
        threshold: T on the scale of the input; default 170·(data_range/255)².
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores ≥ 0; LOWER is better, 0 for identical images.
    """
    check_data_range(data_range)
    check_tensor_pair(test, reference, data_range=data_range, name="gmsd", min_size=4 if downsample else 2,
                      size_reason="a gradient needs at least 2 pixels after the 2x downsampling")
    if threshold is None:
        threshold = GMSD_THRESHOLD_8BIT * (data_range / 255.0) ** 2
    batch, channels, height, width = test.shape
    planes_test = test.reshape(batch * channels, 1, height, width)
    planes_reference = reference.reshape(batch * channels, 1, height, width)
    step = plane_chunk_size(batch * channels, height, width, test.device)
    deviations = [
        _gms_deviation(planes_test[start:start + step], planes_reference[start:start + step], downsample, threshold)
        for start in range(0, batch * channels, step)
    ]
    per_channel = torch.cat(deviations).view(batch, channels)
    return reduce(per_channel.mean(dim=1), reduction)
