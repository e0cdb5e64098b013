"""Pieces shared by the similarity-map metrics (HaarPSI, MDSI, VSI, SR-SIM, DSS, FSIM family).

Convention:
    Maps are (N, C, H, W) tensors on the 0..255 scale of the authors' constants; every function
    here is element-wise and differentiable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from reliqa.checks import check_data_range, check_tensor_pair
from reliqa.metrics._validate import Reduction, reduce
from reliqa.metrics.filters import box_downsample, plane_chunk_size
from reliqa.metrics.ssim import downsample_factor_wang

# Square roots and fractional powers are floored at this value so that their gradients stay
# finite on flat areas (where a gradient magnitude or a similarity is exactly 0).
TINY = 1e-30


def similarity_map(first: torch.Tensor, second: torch.Tensor, constant: float) -> torch.Tensor:
    """The Dice-like similarity (2·a·b + c) / (a² + b² + c) used by every metric of this family.

    Arguments:
        first: (N, C, H, W) feature map of the test image.
        second: (N, C, H, W) the same feature of the reference.
        constant: the stabiliser c (> 0), on the scale of the features.

    Returns:
        (N, C, H, W) similarity, 1 where the features agree, ≤ 1 for non-negative features.
    """
    return (2.0 * first * second + constant) / (first * first + second * second + constant)


def magnitude_similarity(
    first_squared: torch.Tensor, second_squared: torch.Tensor, constant: float | torch.Tensor
) -> torch.Tensor:
    """:func:`similarity_map` of two magnitudes given by their squares (gradient energies).

    2·a·b is taken as 2·√(a²·b²): one square root instead of two, floored at :data:`TINY` so
    its gradient stays finite where a magnitude is 0.

    Arguments:
        first_squared: (N, C, H, W) a² ≥ 0.
        second_squared: (N, C, H, W) b² ≥ 0.
        constant: the stabiliser c, on the scale of a² (or a tensor that broadcasts, e.g.
            one constant per channel).

    Returns:
        (N, C, H, W) similarity in (0, 1].
    """
    cross = (first_squared * second_squared).clamp_min(TINY).sqrt()
    return (2.0 * cross + constant) / (first_squared + second_squared + constant)


def nonnegative_power(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """x^p for x ≥ 0 with 0^p = 0 exactly and a zero (not infinite) gradient at 0.

    ``x.clamp_min(tiny).pow(p)`` would give tiny^p (for p = ¼ and tiny = 1e-30, 3e-8) where an
    exact 0 is expected; the double ``where`` keeps both the value and the gradient clean.

    Arguments:
        base: (…) tensor ≥ 0.
        exponent: p > 0.

    Returns:
        (…) x^p.
    """
    positive = base > 0
    return torch.where(positive, torch.where(positive, base, 1.0).pow(exponent), 0.0)


def real_power(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """MATLAB's ``real(z .^ p)`` for a real ``z`` that may be negative: |z|^p · cos(p·π) there.

    Arguments:
        base: (…) real tensor.
        exponent: p, 0 < p.

    Returns:
        (…) real part of the principal power.
    """
    power = base.abs().clamp_min(TINY).pow(exponent)
    return torch.where(base < 0, power * math.cos(exponent * math.pi), power)


def complex_power(base: torch.Tensor, exponent: float) -> torch.Tensor:
    """MATLAB's ``z .^ p`` for a real ``z`` that may be negative, as a complex tensor.

    The principal value: |z|^p · exp(i·p·π) for z < 0, |z|^p for z ≥ 0.

    Arguments:
        base: (…) real tensor.
        exponent: p, 0 < p.

    Returns:
        (…) complex tensor of the same dtype precision.
    """
    magnitude = nonnegative_power(base.abs(), exponent)
    angle = torch.where(base < 0, math.pi * exponent, 0.0).to(base.dtype)
    return torch.polar(magnitude, angle)


def stacked_pair(test: torch.Tensor, reference: torch.Tensor, data_range: float) -> torch.Tensor:
    """The pair as one batch on the 0..255 scale of the authors' constants: every later step
    (colours, filters, saliency) then runs once over both images.

    Arguments:
        test: (N, C, H, W) in [0, data_range].
        reference: (N, C, H, W) in [0, data_range].
        data_range: value of white.

    Returns:
        (2N, C, H, W): the test images, then the references, times 255 / data_range.
    """
    return torch.cat([test, reference]) * (255.0 / data_range)


def wang_downsample(images: torch.Tensor) -> torch.Tensor:
    """The automatic downsampling of VSI.m, SR_SIM.m, MDSI.m and FeatureSIM.m: F×F average
    (``conv2 'same'``, zero boundary) and every F-th pixel, F from
    :func:`~reliqa.metrics.ssim.downsample_factor_wang` of the image size.

    Arguments:
        images: (N, C, H, W).

    Returns:
        (N, C, ⌈H/F⌉, ⌈W/F⌉).
    """
    return box_downsample(images, downsample_factor_wang(*images.shape[-2:]), "zero")


_SCHARR = ((3.0, 0.0, -3.0), (10.0, 0.0, -10.0), (3.0, 0.0, -3.0))


def scharr_gradient_squared(image: torch.Tensor) -> torch.Tensor:
    """Gx² + Gy² with the Scharr kernels [3 0 −3; 10 0 −10; 3 0 −3]/16 and their transpose, as
    MATLAB's ``conv2(I, k, 'same')`` (zero boundary) in VSI.m, SR_SIM.m and FeatureSIM.m.

    Arguments:
        image: (N, 1, H, W).

    Returns:
        (N, 1, H, W) squared gradient magnitude.
    """
    kernel = torch.tensor(_SCHARR, dtype=image.dtype, device=image.device) / 16.0
    gradients = torch.nn.functional.conv2d(image, torch.stack([kernel, kernel.t()])[:, None], padding=1)
    return gradients.pow(2).sum(dim=1, keepdim=True)


def in_image_chunks(
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], test: torch.Tensor, reference: torch.Tensor
) -> torch.Tensor:
    """``compute(test, reference)`` → (N,), on CPU a few images at a time.

    As for SSIM and GMSD (:data:`reliqa.metrics.filters.CPU_CHUNK_PIXELS`): one 384×512 pair's
    maps stay in cache through the many element-wise passes of these metrics, a batch of 8
    streams through memory on every pass (HaarPSI 143 → 48 ms per image, DSS 127 → 29 ms, one
    thread, measured on the shared development VM). GPUs take the whole batch at once.

    Arguments:
        compute: per-image metric on (n, C, H, W) pairs → (n,).
        test: (N, C, H, W).
        reference: (N, C, H, W).

    Returns:
        (N,) scores.
    """
    batch, _, height, width = test.shape
    step = plane_chunk_size(batch, height, width, test.device)
    if step >= batch:
        return compute(test, reference)
    return torch.cat([compute(test[start:start + step], reference[start:start + step])
                      for start in range(0, batch, step)])


def checked_pair_scores(
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float,
    reduction: Reduction,
    *,
    name: str,
    min_size: int,
    channels: Sequence[int] = (1, 3),
    size_reason: str = "",
) -> torch.Tensor:
    """The frame of every metric of this family around its per-image body ``compute``.

    Checks ``data_range`` (:func:`reliqa.checks.check_data_range`) and the pair
    (:func:`reliqa.checks.check_tensor_pair` with ``name``, ``min_size``, ``channels`` and
    ``size_reason``), runs ``compute`` :func:`in_image_chunks` and applies ``reduction``.

    Arguments:
        compute: per-image metric on validated (n, C, H, W) pairs → (n,).
        test: (N, C, H, W) test images in [0, data_range].
        reference: (N, C, H, W) reference images, same shape.
        data_range: value of white.
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores, or () with a reduction.
    """
    check_data_range(data_range)
    check_tensor_pair(test, reference, data_range=data_range, name=name, min_size=min_size,
                      channels=channels, size_reason=size_reason)
    return reduce(in_image_chunks(compute, test, reference), reduction)
