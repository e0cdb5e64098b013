"""HaarPSI, the Haar wavelet-based perceptual similarity index (Reisenhofer, Bosse, Kutyniok &
Wiegand 2018), as the authors' ``haarpsi.py`` / ``HaarPSI.m``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reliqa.metrics._validate import Reduction, check_data_range, check_pair, reduce
from reliqa.metrics.color import rgb_to_yiq_fsim
from reliqa.metrics.filters import box_downsample
from reliqa.metrics.similarity import similarity_map

HAARPSI_C: float = 30.0
"""The constant C of the local similarities, for 0..255 images."""
HAARPSI_ALPHA: float = 4.2
"""The slope α of the logistic function."""
HAARPSI_SCALES = 3
HAARPSI_MIN_SIZE = 2 ** (HAARPSI_SCALES + 1)  # the coarsest Haar filter (8 px) after the 2x subsampling


def haar_coefficients(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Haar wavelet responses of one scale, as the authors' ``conv2(X, h, 'same')``.

    The filter of scale s has 2^s × 2^s taps: +1/2^s on its first half of rows, −1/2^s on the
    second half (its transpose for the other orientation). It is a box sum along one axis
    times a difference of two half-boxes along the other, so each response comes from two
    running means (``avg_pool2d`` with stride 1) and one subtraction, not a 2^s × 2^s
    convolution. Zero boundary, the even filter placed as MATLAB's ``'same'`` places it.

    Arguments:
        image: (N, 1, H, W).
        scale: s ≥ 1.

    Returns:
        (N, 2, H, W): the response of the row-split filter (index 0) and of its transpose (1).
    """
    size = 2**scale
    half = size // 2
    padded = F.pad(image, (half - 1, half, half - 1, half))  # (H + size - 1, W + size - 1)
    height, width = image.shape[-2:]
    # Row-split filter: full box along W, half boxes along H, difference of the two halves.
    rows = F.avg_pool2d(padded, (half, size), stride=1)  # (H + half, W)
    # (1/size)·(sum of the first half − sum of the second) = half · (difference of the two means)
    vertical = (rows[..., :height, :] - rows[..., half:half + height, :]) * half
    columns = F.avg_pool2d(padded, (size, half), stride=1)  # (H, W + half)
    horizontal = (columns[..., :width] - columns[..., half:half + width]) * half
    return torch.cat([vertical, horizontal], dim=1)


def haarpsi(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    subsample: bool = True,
    c: float = HAARPSI_C,
    alpha: float = HAARPSI_ALPHA,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """HaarPSI as in the authors' reference code (``haarpsi.py``, ``HaarPSI.m``).

    Convention:
        Test first, reference second. Colour images go to YIQ with the authors' matrix (Y =
        0.299 R + 0.587 G + 0.114 B, I = 0.596 R − 0.274 G − 0.322 B, Q = 0.211 R − 0.523 G +
        0.312 B); a single channel is taken as Y alone.

    Steps: values scaled to 0..255; 2×2 average and every second pixel (``subsample``); Haar
    wavelet responses of scales 1, 2, 3 in two orientations on Y; for each orientation the
    local similarity S = mean over scales 1, 2 of (2·|a|·|b| + C)/(a² + b² + C), weighted by
    W = max(|a₃|, |b₃|) (scale 3); for colour a third similarity of the 2×2-averaged |I|, |Q|
    (mean of the two), weighted by the mean of the two weights. Score = (logit(Σ σ(α·S)·W /
    Σ W) / α)², σ the logistic function, C = 30, α = 4.2.

    Arguments:
        test: (N, C, H, W) test images in [0, data_range], C = 3 (RGB) or 1 (luminance).
        reference: (N, C, H, W) reference images, same shape.
        data_range: value of white (the constants are for 0..255).
        subsample: the 2× average downsampling of the reference code (part of its definition).
        c: the similarity constant C on the 0..255 scale.
        alpha: the logistic slope α.
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores in [0, 1]; 1 for identical images, higher is better.

    Raises:
        InvalidInputError: see :func:`reliqa.checks.check_tensor_pair`; smaller than 16 px
            (8 px after the subsampling, the coarsest Haar filter).
        ShapeMismatchError: the shapes differ.

    Examples:
        >>> reference = torch.rand(2, 3, 64, 64)
        >>> haarpsi(reference, reference).round(decimals=4)
        tensor([1., 1.])
    """
    check_data_range(data_range)
    min_size = HAARPSI_MIN_SIZE if subsample else HAARPSI_MIN_SIZE // 2
    check_pair(test, reference, data_range=data_range, metric="haarpsi", min_size=min_size,
               size_reason="the coarsest Haar filter is 8 px after the 2x subsampling")
    batch, channels = test.shape[:2]
    images = torch.cat([test, reference]) * (255.0 / data_range)
    if channels == 3:
        images = rgb_to_yiq_fsim(images)
    if subsample:
        images = box_downsample(images, 2, "zero")
    luminance = images[:, :1]
    magnitudes = [haar_coefficients(luminance, scale).abs() for scale in range(1, HAARPSI_SCALES + 1)]
    magnitude_test = [magnitude[:batch] for magnitude in magnitudes]
    magnitude_reference = [magnitude[batch:] for magnitude in magnitudes]
    weights = torch.maximum(magnitude_test[2], magnitude_reference[2])  # (N, 2, h, w)
    local = (similarity_map(magnitude_test[0], magnitude_reference[0], c)
             + similarity_map(magnitude_test[1], magnitude_reference[1], c)) / 2  # (N, 2, h, w)
    if channels == 3:
        # conv2(X, ones(2)/4, 'same') on I and Q: the window of output i covers samples i, i + 1.
        chroma = F.avg_pool2d(F.pad(images[:, 1:], (0, 1, 0, 1)), 2, stride=1).abs()
        chroma_similarity = similarity_map(chroma[:batch], chroma[batch:], c).mean(dim=1, keepdim=True)
        local = torch.cat([local, chroma_similarity], dim=1)
        weights = torch.cat([weights, weights.mean(dim=1, keepdim=True)], dim=1)
    eps = torch.finfo(local.dtype).eps
    pooled = ((torch.sigmoid(alpha * local) * weights).sum(dim=(1, 2, 3)) + eps) / (weights.sum(dim=(1, 2, 3)) + eps)
    scores = (torch.logit(pooled) / alpha) ** 2
    return reduce(scores, reduction)
