"""HaarPSI, the Haar wavelet-based perceptual similarity index (Reisenhofer, Bosse, Kutyniok &
Wiegand 2018), as the authors' ``haarpsi.py`` / ``HaarPSI.m``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reliqa.metrics._validate import Reduction
from reliqa.metrics.color import rgb_to_yiq_fsim
from reliqa.metrics.filters import box_downsample
from reliqa.metrics.similarity import checked_pair_scores, similarity_map, stacked_pair

HAARPSI_C: float = 30.0
"""The constant C of the local similarities, for 0..255 images."""
HAARPSI_ALPHA: float = 4.2
"""The slope α of the logistic function."""
HAARPSI_SCALES = 3
HAARPSI_MIN_SIZE = 2 ** (HAARPSI_SCALES + 1)  # the coarsest Haar filter (8 px) after the 2x subsampling


def _box_sums(image: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """Sums of ``width`` (a power of 2) consecutive samples along ``dim``, by doubling: a box of
    2w is two boxes of w side by side (size along ``dim`` shrinks by width − 1)."""
    step = 1
    while step < width:
        length = image.shape[dim]
        image = image.narrow(dim, 0, length - step) + image.narrow(dim, step, length - step)
        step *= 2
    return image


def haar_coefficients(image: torch.Tensor, scales: int = HAARPSI_SCALES) -> list[torch.Tensor]:
    """Haar wavelet responses of scales 1 … ``scales``, as the authors' ``conv2(X, h, 'same')``.

    The filter of scale s has k = 2^s taps per side: +1/k on its first k/2 rows, −1/k on the
    rest (its transpose for the other orientation). It is a box sum of k along one axis times a
    difference of two half-boxes along the other, and the boxes are dyadic, so every response
    comes from sums of shifted slices (a box of 2w is two boxes of w): about a dozen additions
    per scale instead of a k × k convolution (``avg_pool2d`` with stride 1 took 5× longer).
    Zero boundary, the even filter placed as MATLAB's ``'same'`` places it (output i sees
    samples i − k/2 + 1 … i + k/2).

    Arguments:
        image: (N, 1, H, W).
        scales: number of scales.

    Returns:
        ``scales`` tensors (N, 2, H, W): the row-split filter's response (channel 0) and its
        transpose's (1).
    """
    largest = 2 ** (scales - 1)  # half of the largest filter
    padded = F.pad(image, (largest - 1, largest, largest - 1, largest))
    height, width = image.shape[-2:]
    responses = []
    for scale in range(1, scales + 1):
        size = 2**scale
        half = size // 2
        offset = largest - half  # where this scale's own padding starts inside ``padded``
        rows = _box_sums(_box_sums(padded, size, -1), half, -2)  # half rows x size columns
        columns = _box_sums(_box_sums(padded, half, -1), size, -2)  # size rows x half columns
        top = rows[..., offset:offset + height, offset:offset + width]
        bottom = rows[..., offset + half:offset + half + height, offset:offset + width]
        left = columns[..., offset:offset + height, offset:offset + width]
        right = columns[..., offset:offset + height, offset + half:offset + half + width]
        responses.append(torch.cat([top - bottom, left - right], dim=1) / size)
    return responses


def _haarpsi_scores(test: torch.Tensor, reference: torch.Tensor, data_range: float, subsample: bool, c: float,
                    alpha: float) -> torch.Tensor:
    """Scores of validated (n, C, H, W) pairs → (n,) (the body of :func:`haarpsi`)."""
    batch, channels = test.shape[:2]
    images = stacked_pair(test, reference, data_range)
    if channels == 3:
        images = rgb_to_yiq_fsim(images)
    if subsample:
        images = box_downsample(images, 2, "zero")
    luminance = images[:, :1]
    magnitudes = [response.abs() for response in haar_coefficients(luminance)]
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
    return scores


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
    return checked_pair_scores(
        lambda first, second: _haarpsi_scores(first, second, data_range, subsample, c, alpha),
        test, reference, data_range, reduction,
        name="haarpsi", min_size=HAARPSI_MIN_SIZE if subsample else HAARPSI_MIN_SIZE // 2,
        size_reason="the coarsest Haar filter is 8 px after the 2x subsampling",
    )
