"""Filters shared by the metrics: separable 'valid' filtering and MATLAB-style downsampling.

Convention:
    Images are (N, C, H, W); every channel is filtered independently. "valid" means MATLAB's
    ``filter2(..., 'valid')``: only the positions where the whole window lies inside the image,
    so the output is (N, C, H - K + 1, W - K + 1).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel1d

from reliqa.exceptions import InvalidInputError

# On CPU, per-plane metrics run a few image planes at a time: a 384x512 plane's intermediate maps
# (a few MB) stay in cache through the dozen element-wise passes that follow, whereas a whole
# batch streams through main memory on every pass (SSIM: 46 -> 14 ms per image on one thread,
# benchmarks/metrics_speed.py). GPUs take the whole batch at once.
CPU_CHUNK_PIXELS = 2**18


def plane_chunk_size(planes: int, height: int, width: int, device: torch.device) -> int:
    """How many (H, W) planes to process at once on ``device`` (all of them off the CPU)."""
    if device.type != "cpu":
        return planes
    return max(1, CPU_CHUNK_PIXELS // (height * width))


# Rows of this many output samples are produced by one block of the Toeplitz matrix.
_BLOCK = 32


def gaussian_window_1d(size: int, sigma: float, *, device: torch.device | None = None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps; its outer product is MATLAB's
    ``fspecial('gaussian', size, sigma)``.

    Returns:
        (size,) tensor summing to 1.
    """
    return get_gaussian_kernel1d(size, sigma, device=device, dtype=dtype)[0]


def _toeplitz_blocks(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The (B + K - 1, B) correlation matrix, split in its first B rows and last K - 1 rows."""
    size = kernel.numel()
    rows = torch.arange(_BLOCK + size - 1, device=kernel.device)[:, None]
    cols = torch.arange(_BLOCK, device=kernel.device)[None, :]
    offset = rows - cols
    inside = (offset >= 0) & (offset < size)
    matrix = torch.where(inside, kernel[offset.clamp(0, size - 1)], kernel.new_zeros(()))
    return matrix[:_BLOCK].contiguous(), matrix[_BLOCK:].contiguous()


def separable_filter_valid(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate every channel with ``outer(kernel, kernel)``, keeping only valid positions.

    Why not ``conv2d``: a depthwise 1-D convolution is memory-bound and slow on CPU. Here each
    direction is two matrix products instead: the signal is cut into blocks of 32 samples and
    output block j = block j @ T0 + (first K - 1 samples of block j + 1) @ T1, where T0, T1 are
    the parts of the banded (Toeplitz) correlation matrix. Treating the whole padded tensor as
    one long signal makes each product a single large GEMM (fast on CPU and GPU); outputs whose
    window crosses a row or image boundary are exactly those cut away as invalid.

    Arguments:
        image: (N, C, H, W) with H, W >= K.
        kernel: (K,) 1-D filter, K odd or even.

    Returns:
        (N, C, H - K + 1, W - K + 1).
    """
    size = kernel.numel()
    batch, channels, height, width = image.shape
    padded_height = -(-height // _BLOCK) * _BLOCK
    padded_width = -(-width // _BLOCK) * _BLOCK
    if (padded_height, padded_width) != (height, width):
        image = F.pad(image, (0, padded_width - width, 0, padded_height - height))
    head, tail = _toeplitz_blocks(kernel.to(image.dtype))

    # Along W: the tensor as rows of one block each.
    rows = image.reshape(-1, _BLOCK)
    along_width = rows @ head
    along_width[:-1] += rows[1:, : size - 1] @ tail
    # Along H: blocks of _BLOCK image rows, multiplied from the left.
    stacked = along_width.view(-1, _BLOCK, padded_width)
    result = torch.matmul(head.t(), stacked)
    result[:-1] += torch.matmul(tail.t(), stacked[1:, : size - 1])
    result = result.view(batch, channels, padded_height, padded_width)
    return result[..., : height - size + 1, : width - size + 1]


def pad_symmetric(image: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """MATLAB's ``'symmetric'`` padding (mirror including the edge sample: a b | b a).

    Arguments:
        image: (N, C, H, W); each pad at most the size of that dimension.

    Returns:
        (N, C, H + top + bottom, W + left + right).
    """
    height, width = image.shape[-2:]
    row_index = torch.cat([
        torch.arange(top - 1, -1, -1), torch.arange(height), torch.arange(height - 1, height - 1 - bottom, -1)
    ]).to(image.device)
    col_index = torch.cat([
        torch.arange(left - 1, -1, -1), torch.arange(width), torch.arange(width - 1, width - 1 - right, -1)
    ]).to(image.device)
    return image.index_select(-2, row_index).index_select(-1, col_index)


def pad_replicate(image: torch.Tensor, pad: int) -> torch.Tensor:
    """Edge-replicating padding by ``pad`` on all four sides: (N, C, H, W) → (N, C, H + 2p, W + 2p).

    What ``F.pad(image, (pad,) * 4, mode="replicate")`` gives, by two concatenations of expanded
    edges: several times faster on CPU (measured 1.2 ms against 8.9 ms for 5 × 384 × 512).
    """
    rows, columns = image.shape[:-1], image.shape[:-2]
    image = torch.cat(
        [image[..., :1].expand(*rows, pad), image, image[..., -1:].expand(*rows, pad)], dim=-1
    )
    width = image.shape[-1]
    return torch.cat(
        [image[..., :1, :].expand(*columns, pad, width), image,
         image[..., -1:, :].expand(*columns, pad, width)],
        dim=-2,
    )


def box_mean_valid(image: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over every ``size`` × ``size`` window, valid positions: (N, C, H, W) →
    (N, C, H − size + 1, W − size + 1).

    Sums of shifted slices, one direction after the other: every plane goes through the same
    additions (identical planes give identical bits), and on CPU it is an order of magnitude
    faster than ``avg_pool2d`` with stride 1 (3 ms against 45 ms for 5 × 390 × 518, size 7).
    """
    width = image.shape[-1] - size + 1
    along_width = image[..., :width] + image[..., 1 : width + 1]
    for shift in range(2, size):
        along_width.add_(image[..., shift : width + shift])
    height = image.shape[-2] - size + 1
    total = along_width[..., :height, :] + along_width[..., 1 : height + 1, :]
    for shift in range(2, size):
        total.add_(along_width[..., shift : height + shift, :])
    return total.div_(size * size)


def box_downsample(image: torch.Tensor, factor: int, boundary: str = "symmetric") -> torch.Tensor:
    """MATLAB's ``imfilter(I, ones(f)/f^2, boundary, 'same')`` (or ``conv2(I, ones(f)/f^2,
    'same')`` for ``boundary='zero'``) followed by ``I(1:f:end, 1:f:end)``.

    Both MATLAB calls put the window of output i on samples i - (ceil(f/2) - 1) ...
    i + floor(f/2); only every f-th output is needed, so this is an average pool of the padded
    image (no filtered full-resolution image is formed).

    Arguments:
        image: (N, C, H, W).
        factor: f >= 1.
        boundary: ``"symmetric"`` (imfilter 'symmetric') or ``"zero"`` (conv2).

    Returns:
        (N, C, ceil(H / f), ceil(W / f)).
    """
    if factor == 1:
        return image
    height, width = image.shape[-2:]
    before = (factor + 1) // 2 - 1
    after_h = -(-height // factor) * factor - height - before
    after_w = -(-width // factor) * factor - width - before
    if before == 0 and after_h <= 0 and after_w <= 0:
        padded = image
    elif boundary == "symmetric":
        padded = pad_symmetric(image, before, max(after_w, 0), before, max(after_h, 0))
    elif boundary == "zero":
        padded = F.pad(image, (before, max(after_w, 0), before, max(after_h, 0)))
    else:
        raise InvalidInputError(f"boundary must be 'symmetric' or 'zero', got {boundary!r}")
    pooled = _block_mean(padded, factor)
    return pooled[..., : -(-height // factor), : -(-width // factor)]


def _block_mean(image: torch.Tensor, factor: int) -> torch.Tensor:
    """``F.avg_pool2d(image, factor, stride=factor)`` as sums of strided slices.

    Why not ``avg_pool2d``: on CPU it is several times slower for these small windows (4.9 vs
    0.9 ms for a (2, 4, 384, 512) tensor and factor 2, one thread); summing the factor row
    phases and then the column phases reads each sample once per pass.

    Arguments:
        image: (N, C, H, W).
        factor: f ≥ 1.

    Returns:
        (N, C, ⌊H/f⌋, ⌊W/f⌋) block means.
    """
    height, width = image.shape[-2] // factor * factor, image.shape[-1] // factor * factor
    image = image[..., :height, :width]
    rows = image[..., 0::factor, :]
    for phase in range(1, factor):
        rows = rows + image[..., phase::factor, :]
    blocks = rows[..., 0::factor]
    for phase in range(1, factor):
        blocks = blocks + rows[..., phase::factor]
    return blocks / (factor * factor)


def local_moments(
    first: torch.Tensor, second: torch.Tensor, window: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local means, variances and covariance under ``outer(window, window)``, valid positions.

    The five maps are filtered in one pass over one stacked tensor.

    Arguments:
        first: (N, C, H, W).
        second: (N, C, H, W).
        window: (K,) 1-D window summing to 1.

    Returns:
        mu_first, mu_second, var_first, var_second, covariance: each (N, C, H - K + 1, W - K + 1)
        (population moments: E[x²] − E[x]², not clipped at 0).
    """
    channels = first.shape[1]
    stacked = torch.cat([first, second, first * first, second * second, first * second], dim=1)
    mu_first, mu_second, first_sq, second_sq, product = separable_filter_valid(stacked, window).split(
        channels, dim=1
    )
    return (
        mu_first,
        mu_second,
        first_sq - mu_first * mu_first,
        second_sq - mu_second * mu_second,
        product - mu_first * mu_second,
    )


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's bicubic kernel (a = −0.5), support [−2, 2]."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def _triangle(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's bilinear kernel, support [−1, 1]."""
    return (1.0 - x.abs()).clamp_min(0.0)


_RESIZE_KERNELS = {"cubic": (_cubic, 4.0), "linear": (_triangle, 2.0)}


@functools.lru_cache(maxsize=32)
@torch.inference_mode(False)  # cached tensors must serve autograd too, whoever computes first
def _resize_taps(
    size_in: int, size_out: int, scale: float, kernel: str, antialias: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MATLAB ``imresize``'s contributions along one axis.

    Returns:
        indices: (size_out, taps) input indices, mirrored into range ('symmetric' boundary).
        weights: (size_out, taps) float64 weights, rows summing to 1.
        border: (size_out,) indices of the outputs whose window reaches past the edge (where a
            mirrored sample carries weight).
    """
    function, width = _RESIZE_KERNELS[kernel]
    shrink = antialias and scale < 1.0
    if shrink:
        width = width / scale
    x = torch.arange(1, size_out + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output sample i in input coordinates (1-based)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * function(scale * distance) if shrink else function(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    raw = indices.long() - 1
    outside = ((raw < 0) | (raw >= size_in)) & (weights != 0)
    # 'symmetric' boundary: index 0 is 1, −1 is 2, size_in + 1 is size_in, … (1-based).
    mirrored = torch.remainder(raw, 2 * size_in)
    mirrored = torch.where(mirrored >= size_in, 2 * size_in - 1 - mirrored, mirrored)
    used = weights.abs().sum(dim=0) > 0  # MATLAB drops the taps that are zero for every output
    border = outside.any(dim=1).nonzero().flatten()
    return mirrored[:, used].contiguous(), weights[:, used].contiguous(), border


def _resize_axis(image: torch.Tensor, dim: int, size_out: int, scale: float, kernel: str,
                 antialias: bool, outputs: torch.Tensor | None = None) -> torch.Tensor:
    """One axis (``dim`` = −2 or −1) of :func:`imresize_matlab`, exactly: Σ over taps of weight ×
    gathered input samples; only the ``outputs`` listed (all by default).

    A handful of taps (5 for bilinear at 2/3, 6 for bicubic at 1/4), so gathering beats the
    dense (out, in) matrix, which is almost all zeros. The gather runs on whole rows of a 3-D
    view (4× faster than ``index_select`` on a 4-D tensor); columns are first made rows by one
    transposing copy.
    """
    indices, weights, _ = _resize_taps(image.shape[dim], size_out, scale, kernel, antialias)
    if outputs is not None:
        indices, weights = indices[outputs], weights[outputs]
    indices, weights = indices.to(image.device), weights.to(image.device, image.dtype)
    if dim == -1 and outputs is not None:
        # A few border columns: gather them in place (transposing the whole image costs more).
        result = image.index_select(-1, indices[:, 0]) * weights[:, 0]
        for tap in range(1, indices.shape[1]):
            result = result + image.index_select(-1, indices[:, tap]) * weights[:, tap]
        return result
    if dim == -1:
        image = image.transpose(-1, -2)
    *leading, size_in, length = image.shape
    planes = image.reshape(-1, size_in, length)
    result = planes.index_select(1, indices[:, 0]) * weights[:, 0].view(1, -1, 1)
    for tap in range(1, indices.shape[1]):
        result = result + planes.index_select(1, indices[:, tap]) * weights[:, tap].view(1, -1, 1)
    result = result.view(*leading, indices.shape[0], length)
    return result.transpose(-1, -2).contiguous() if dim == -1 else result


def imresize_matlab(
    image: torch.Tensor,
    *,
    size: tuple[int, int] | None = None,
    scale: float | None = None,
    kernel: str = "cubic",
    antialias: bool = True,
) -> torch.Tensor:
    """MATLAB's ``imresize(I, scale)`` / ``imresize(I, [rows, cols])`` for ``'bicubic'`` (a = −0.5)
    and ``'bilinear'``, antialiased when shrinking, ``'symmetric'`` boundary.

    Fast path: ``F.interpolate(..., antialias=True)`` computes MATLAB's weights (same kernels,
    same widening by 1/scale) wherever the window stays inside the image (tested to 2e-7);
    only at the edge does it renormalise the cut window where MATLAB mirrors the image. So the
    few border rows and columns are recomputed exactly from MATLAB's ``contributions``
    (:func:`_resize_axis`) and written over (VSI: 30 → 6 ms for a 384×512 pair on one
    thread). When the output size is not in×scale (``scale`` given and in×scale not whole), the
    exact computation does the whole image. Differentiable, any device.

    Arguments:
        image: (N, C, H, W).
        size: output (rows, cols); or
        scale: output = ceil(input × scale) per side, the kernel scaled by exactly ``scale``.
        kernel: ``"cubic"`` or ``"linear"``.
        antialias: widen the kernel by 1/scale when shrinking (MATLAB's default).

    Returns:
        (N, C, rows, cols).
    """
    height, width = image.shape[-2:]
    if size is not None:
        rows, cols = size
        scale_rows, scale_cols = rows / height, cols / width
    elif scale is not None:
        rows, cols = math.ceil(height * scale), math.ceil(width * scale)
        scale_rows = scale_cols = scale
    else:
        raise InvalidInputError("imresize_matlab: pass size or scale")
    if kernel not in _RESIZE_KERNELS:
        raise InvalidInputError(f"imresize_matlab: kernel must be 'cubic' or 'linear', got {kernel!r}")
    exact_scales = rows == height * scale_rows and cols == width * scale_cols
    if not exact_scales or not (antialias or min(scale_rows, scale_cols) >= 1.0):
        image = _resize_axis(image, -2, rows, scale_rows, kernel, antialias)
        return _resize_axis(image, -1, cols, scale_cols, kernel, antialias)
    mode = "bicubic" if kernel == "cubic" else "bilinear"
    # antialias=True also when enlarging with the cubic: torch then uses MATLAB's a = -0.5 (its
    # plain bicubic has a = -0.75); the plain bilinear is the same triangle, and twice as fast.
    smooth = kernel == "cubic" or min(scale_rows, scale_cols) < 1.0
    result = F.interpolate(image, size=(rows, cols), mode=mode, align_corners=False, antialias=smooth)
    border_rows = _resize_taps(height, rows, scale_rows, kernel, antialias)[2].to(image.device)
    border_cols = _resize_taps(width, cols, scale_cols, kernel, antialias)[2].to(image.device)
    if border_rows.numel():
        edge = _resize_axis(image, -2, rows, scale_rows, kernel, antialias, border_rows)
        edge = _resize_axis(edge, -1, cols, scale_cols, kernel, antialias)
        result = result.index_copy(-2, border_rows, edge)
    if border_cols.numel():
        edge = _resize_axis(image, -1, cols, scale_cols, kernel, antialias, border_cols)
        edge = _resize_axis(edge, -2, rows, scale_rows, kernel, antialias)
        result = result.index_copy(-1, border_cols, edge)
    return result
