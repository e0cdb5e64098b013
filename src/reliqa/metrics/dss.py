"""DSS, the DCT subband similarity index (Balanov, Schwartz, Moshe & Peleg 2015), as the authors'
``DSS.m``."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel2d

from reliqa.metrics._validate import Reduction
from reliqa.metrics.color import yiq_luminance
from reliqa.metrics.similarity import TINY, checked_pair_scores, magnitude_similarity, stacked_pair

DSS_BLOCK = 8
# Subband weights exp(−((m − ½)² + (n − ½)²)/(2·1.55²)), m, n = 1..8; weights below 1e-2 are 0.
DSS_SIGMA_WEIGHT, DSS_WEIGHT_THRESHOLD = 1.55, 1e-2
# Local variances: 3x3 Gaussian, σ = 1.5; constants of the DC and AC subbands (0..255 scale).
DSS_WINDOW, DSS_SIGMA = 3, 1.5
DSS_C_DC, DSS_C_AC = 1000.0, 300.0
DSS_PERCENTILE = 0.05
# 4 x 4 blocks: the pooled 5 % of a subband's 16 values is then round(0.8) = 1 value (fewer than
# 10 blocks would pool none).
DSS_MIN_SIZE = 32


def dct_matrix(size: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The orthonormal DCT-II matrix D (MATLAB ``dctmtx``): ``D @ block @ D.T`` is ``dct2(block)``.

    Returns:
        (size, size).
    """
    k = torch.arange(size, dtype=torch.float64)[:, None]
    n = torch.arange(size, dtype=torch.float64)[None, :]
    matrix = math.sqrt(2.0 / size) * torch.cos(math.pi * (2 * n + 1) * k / (2 * size))
    matrix[0] = math.sqrt(1.0 / size)
    return matrix.to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=1)
def _subbands() -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Flat indices m·8 + n of the subbands with a weight ≥ 1e-2, and their normalised weights."""
    centres = torch.arange(1, DSS_BLOCK + 1, dtype=torch.float64) - 0.5
    weight = torch.exp(-(centres[:, None] ** 2 + centres[None, :] ** 2) / (2 * DSS_SIGMA_WEIGHT**2)).flatten()
    kept = (weight >= DSS_WEIGHT_THRESHOLD).nonzero().flatten()
    normalised = weight[kept] / weight[kept].sum()
    return tuple(kept.tolist()), tuple(normalised.tolist())


def block_dct(image: torch.Tensor) -> torch.Tensor:
    """8×8 block DCT, coefficients grouped by subband.

    Arguments:
        image: (N, 1, H, W) with H, W multiples of 8.

    Returns:
        (N, 64, H/8, W/8): channel m·8 + n holds DCT coefficient (m, n) of every block.
    """
    batch, _, height, width = image.shape
    matrix = dct_matrix(DSS_BLOCK, device=image.device, dtype=image.dtype)
    blocks = image.reshape(batch, height // DSS_BLOCK, DSS_BLOCK, width // DSS_BLOCK, DSS_BLOCK)
    coefficients = torch.einsum("mi,bhiwj,nj->bmnhw", matrix, blocks, matrix)
    return coefficients.reshape(batch, DSS_BLOCK * DSS_BLOCK, height // DSS_BLOCK, width // DSS_BLOCK)


def _lowest_mean(values: torch.Tensor, count: int) -> torch.Tensor:
    """Mean of the ``count`` smallest values of each (N, K, h, w) map → (N, K)."""
    return values.flatten(2).topk(count, dim=2, largest=False, sorted=False).values.mean(dim=2)


def _dss_scores(test: torch.Tensor, reference: torch.Tensor, data_range: float) -> torch.Tensor:
    """Scores of validated (n, C, H, W) pairs → (n,) (the body of :func:`dss`)."""
    batch, _, height, width = test.shape
    luminance = yiq_luminance(stacked_pair(test, reference, data_range))
    luminance = luminance[..., : height - height % DSS_BLOCK, : width - width % DSS_BLOCK]
    kept, weights = _subbands()
    coefficients = block_dct(luminance)[:, list(kept)]  # (2N, K, h, w)
    first, second = coefficients[:batch], coefficients[batch:]
    count = round(DSS_PERCENTILE * first.shape[-2] * first.shape[-1])
    # Local moments of all kept subbands in one depthwise pass: (x, y, x², y², xy) stacked.
    stacked = torch.cat([first, second, first * first, second * second, first * second], dim=1)
    kernel = get_gaussian_kernel2d(DSS_WINDOW, (DSS_SIGMA, DSS_SIGMA), device=test.device, dtype=stacked.dtype)[0]
    planes = stacked.reshape(-1, 1, *stacked.shape[-2:])
    filtered = F.conv2d(planes, kernel[None, None], padding=DSS_WINDOW // 2).view(stacked.shape)
    mu_t, mu_r, t2, r2, tr = filtered.chunk(5, dim=1)
    var_t = (t2 - mu_t * mu_t).clamp_min(0.0)
    var_r = (r2 - mu_r * mu_r).clamp_min(0.0)
    constants = torch.full((len(kept), 1, 1), DSS_C_AC, dtype=stacked.dtype, device=test.device)
    constants[0] = DSS_C_DC  # kept[0] is subband (0, 0), the largest weight
    similarity = _lowest_mean(magnitude_similarity(var_t, var_r, constants), count)  # (N, K)
    covariance = tr[:, :1] - mu_t[:, :1] * mu_r[:, :1]
    dc_structure = (covariance + DSS_C_DC) / ((var_t[:, :1] * var_r[:, :1]).clamp_min(TINY).sqrt() + DSS_C_DC)
    similarity = torch.cat([similarity[:, :1] * _lowest_mean(dc_structure, count), similarity[:, 1:]], dim=1)
    scores = similarity @ torch.tensor(weights, dtype=similarity.dtype, device=similarity.device)
    return scores


def dss(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """DSS as the authors' ``DSS.m``.

    Convention:
        Test first, reference second (DSS is symmetric in the two).

    Steps: luminance Y = 0.299 R + 0.587 G + 0.114 B on 0..255, cropped to multiples of 8;
    8×8 block DCT; for each subband (m, n) whose weight w = exp(−((m − ½)² + (n − ½)²)/
    (2·1.55²)) is at least 1e-2: local variances σ_t², σ_r² and covariance σ_tr under a 3×3
    Gaussian (σ = 1.5, zero boundary); similarity = mean of the lowest 5 % of
    (2·σ_t·σ_r + c)/(σ_t² + σ_r² + c), c = 300 (c = 1000 for the DC subband, which is also
    multiplied by the mean of the lowest 5 % of (σ_tr + c)/(σ_t·σ_r + c)); score = Σ w·sim / Σ w.

    Arguments:
        test: (N, C, H, W) test images in [0, data_range], C = 3 (RGB) or 1 (luminance).
        reference: (N, C, H, W) reference images, same shape.
        data_range: value of white (the constants are for 0..255).
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) scores in [0, 1]; 1 for identical images, higher is better.

    Raises:
        InvalidInputError: see :func:`reliqa.checks.check_tensor_pair`; smaller than 32 px.
        ShapeMismatchError: the shapes differ.

    Examples:
        >>> reference = torch.rand(2, 3, 64, 64)
        >>> dss(reference, reference).round(decimals=4)
        tensor([1., 1.])
    """
    return checked_pair_scores(
        lambda first, second: _dss_scores(first, second, data_range), test, reference, data_range, reduction,
        name="dss", min_size=DSS_MIN_SIZE, size_reason="the 5 % pooling needs at least 4 x 4 blocks of 8 x 8 px",
    )
