"""MDSI, the mean deviation similarity index (Ziaei Nafchi, Shahkolaei, Hedjam & Cheriet 2016),
as the authors' ``MDSI.m``."""

from __future__ import annotations

import torch

from reliqa.metrics._validate import Reduction
from reliqa.metrics.color import apply_color_matrix
from reliqa.metrics.gmsd import prewitt_gradient_squared
from reliqa.metrics.similarity import (
    checked_pair_scores,
    complex_power,
    magnitude_similarity,
    nonnegative_power,
    stacked_pair,
    wang_downsample,
)

# The L, H, M colour space of MDSI.m (rows L = luminance, H and M the chromatic opponents).
MDSI_LHM_MATRIX: tuple[tuple[float, float, float], ...] = (
    (0.2989, 0.5870, 0.1140),
    (0.30, 0.04, -0.35),
    (0.34, -0.60, 0.17),
)
# Constants of MDSI.m on the 0..255 scale, and its 'sum' combination and deviation pooling.
MDSI_C1, MDSI_C2, MDSI_C3 = 140.0, 55.0, 550.0
MDSI_ALPHA = 0.6
MDSI_Q, MDSI_O = 0.25, 0.25
MDSI_MIN_SIZE = 2


def _mdsi_scores(test: torch.Tensor, reference: torch.Tensor, data_range: float) -> torch.Tensor:
    """Scores of validated (n, C, H, W) pairs → (n,) (the body of :func:`mdsi`)."""
    batch = test.shape[0]
    images = wang_downsample(stacked_pair(test, reference, data_range))
    lhm = apply_color_matrix(images, MDSI_LHM_MATRIX)
    luminance_test, luminance_reference = lhm[:batch, :1], lhm[batch:, :1]
    fused = (luminance_test + luminance_reference) / 2
    # prewitt_gradient_squared leaves out the kernels' 1/3: the energies are 9x, and so the constants.
    energy = prewitt_gradient_squared(torch.cat([luminance_test, luminance_reference, fused]))
    energy_test, energy_reference, energy_fused = energy.split(batch)
    gradient_similarity = (
        magnitude_similarity(energy_test, energy_reference, 9.0 * MDSI_C1)
        + magnitude_similarity(energy_test, energy_fused, 9.0 * MDSI_C2)
        - magnitude_similarity(energy_reference, energy_fused, 9.0 * MDSI_C2)
    )
    chroma_test, chroma_reference = lhm[:batch, 1:], lhm[batch:, 1:]
    chroma_similarity = (2.0 * (chroma_test * chroma_reference).sum(dim=1, keepdim=True) + MDSI_C3) / (
        (chroma_test**2 + chroma_reference**2).sum(dim=1, keepdim=True) + MDSI_C3
    )
    combined = MDSI_ALPHA * gradient_similarity + (1.0 - MDSI_ALPHA) * chroma_similarity
    powered = complex_power(combined, MDSI_Q).flatten(1)  # (N, h·w) complex
    deviation = powered - powered.mean(dim=1, keepdim=True)
    # |z| = √(re² + im²) with a finite gradient where z equals the mean (identical images)
    distance = nonnegative_power(deviation.real**2 + deviation.imag**2, 0.5)
    scores = nonnegative_power(distance.mean(dim=1), MDSI_O)
    return scores


def mdsi(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """MDSI as the authors' ``MDSI.m`` with its default 'sum' combination.

    Convention:
        Test first, reference second; the two enter GS asymmetrically (below), so swapping them
        changes the score slightly.

    Steps: values scaled to 0..255; F×F average and every F-th pixel (``conv2 'same'``, zero
    boundary, F = max(1, round(min(H, W)/256)), MATLAB rounding); LHM colours; Prewitt
    gradient magnitudes ([1 0 −1]/3, zero boundary) of the test's, the reference's and the
    fused (mean) luminance: g_t, g_r, g_f; GS = S(g_t, g_r; C1) + S(g_t, g_f; C2) −
    S(g_r, g_f; C2) with S(a, b; c) = (2ab + c)/(a² + b² + c); chromatic similarity CS =
    (2(H_t·H_r + M_t·M_r) + C3)/(H_t² + H_r² + M_t² + M_r² + C3); GCS = 0.6·GS + 0.4·CS;
    score = (mean |GCS^¼ − mean(GCS^¼)|)^¼ with the complex principal power for GCS < 0.
    C1 = 140, C2 = 55, C3 = 550.

    Arguments:
        test: (N, 3, H, W) RGB test images in [0, data_range].
        reference: (N, 3, H, W) RGB reference images, same shape.
        data_range: value of white (the constants are for 0..255).
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores ≥ 0 (in practice below 1); LOWER is better, 0 for identical images.

    Raises:
        InvalidInputError: see :func:`reliqa.checks.check_tensor_pair` (RGB only).
        ShapeMismatchError: the shapes differ.

    Examples:
        >>> reference = torch.rand(2, 3, 32, 32)
        >>> mdsi(reference, reference).round(decimals=4)
        tensor([0., 0.])
    """
    return checked_pair_scores(
        lambda first, second: _mdsi_scores(first, second, data_range), test, reference, data_range, reduction,
        name="mdsi", min_size=MDSI_MIN_SIZE, channels=(3,),
    )
