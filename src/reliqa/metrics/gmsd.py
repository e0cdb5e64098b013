"""Gradient Magnitude Similarity Deviation (Xue, Zhang, Mou & Bovik 2014)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reliqa.metrics._validate import Reduction, check_data_range, check_pair, reduce
from reliqa.metrics.filters import box_downsample

GMSD_THRESHOLD_8BIT: float = 170.0
"""The constant T of ``GMSD.m``, for 0..255 images."""


def gradient_magnitude(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """√(Gx² + Gy²) with ``conv2(I, k, 'same')`` (zero boundary) for k and its transpose.

    Arguments:
        image: (N, C, H, W).
        kernel: (3, 3) horizontal derivative kernel; the vertical one is its transpose.

    Returns:
        (N, C, H, W). A tiny floor under the square root keeps the gradient finite on flat areas.
    """
    batch, channels, height, width = image.shape
    # conv2 flips the kernel; the sign of a derivative does not change its magnitude.
    weight = torch.stack([kernel, kernel.t()])[:, None]
    gradients = F.conv2d(image.reshape(batch * channels, 1, height, width), weight, padding=1)
    squared = gradients.pow(2).sum(dim=1)
    return squared.clamp_min(1e-20).sqrt().view(batch, channels, height, width)


def gmsd(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    downsample: bool = True,
    threshold: float | None = None,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """GMSD as in the official ``GMSD.m``: standard deviation of the gradient-magnitude similarity.

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
    check_pair(test, reference, metric="gmsd", min_size=4 if downsample else 2,
               size_reason="a gradient needs at least 2 pixels after the 2x downsampling")
    if threshold is None:
        threshold = GMSD_THRESHOLD_8BIT * (data_range / 255.0) ** 2
    if downsample:
        test, reference = box_downsample(test, 2, "zero"), box_downsample(reference, 2, "zero")
    kernel = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=test.dtype, device=test.device) / 3.0
    magnitude_test = gradient_magnitude(test, kernel)
    magnitude_reference = gradient_magnitude(reference, kernel)
    similarity = (2.0 * magnitude_test * magnitude_reference + threshold) / (
        magnitude_test.pow(2) + magnitude_reference.pow(2) + threshold
    )
    per_channel = similarity.flatten(2).std(dim=-1, correction=1)
    return reduce(per_channel.mean(dim=1), reduction)
