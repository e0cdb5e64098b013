"""NIQE, the Natural Image Quality Evaluator (Mittal, Soundararajan & Bovik, IEEE SPL 2013).

An opinion-unaware no-reference metric: the distance between a multivariate Gaussian fitted to
natural-scene-statistics features of the test image and one fitted to the same features of
pristine photos. Lower = closer to the pristine model = better.

Convention (the authors' MATLAB release, ``computequality.m`` / ``estimatemodelparam.m``):
    - luminance as MATLAB ``rgb2gray`` on 0..255 values, rounded to integers;
    - the image is cropped to a multiple of the patch size (96) at its bottom/right;
    - MSCN coefficients (I − μ) / (σ + 1) with a 7×7 Gaussian window, σ = 7/6, replicate border;
    - 2 scales, the second by MATLAB ``imresize(·, 0.5)`` (bicubic, antialiased, mirrored border);
    - per non-overlapping patch (96×96 at scale 1, 48×48 at scale 2) 18 features: the AGGD fit of
      the MSCN coefficients (α, mean of the two scales) and, for the 4 neighbour products
      (horizontal, vertical, two diagonals, wrapping inside the patch), α, the AGGD mean, β_left,
      β_right — 36 features per patch;
    - AGGD fits by moment matching over the grid α ∈ 0.2:0.001:10;
    - pristine model only: keep patches whose sharpness (mean local σ) exceeds 0.75 × the largest
      in that photo; patches with undefined features (flat, one-signed) are dropped;
    - score sqrt((μ₁−μ₂)ᵀ pinv((Σ₁+Σ₂)/2) (μ₁−μ₂)).

The shipped pristine model (``reliqa/weights/niqe_pristine.safetensors``) is fitted by
``reliqa niqe-fit`` on this project's pristine photos, not the authors' parameters, so absolute
values differ from the official NIQE; see docs/niqe.md.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import kornia
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from reliqa.checks import check_tensor_image
from reliqa.exceptions import InvalidInputError, WeightsError
from reliqa.io import ImageSource, load_image
from reliqa.metrics.base import Metric, MetricInfo, register_metric
from reliqa.metrics.color import rgb_to_gray_matlab
from reliqa.verified import load_verified, read_card, sha256_of

PATCH_SIZE: int = 96
SHARPNESS_THRESHOLD: float = 0.75
NUM_SCALES: int = 2
FEATURES_PER_SCALE: int = 18
NUM_FEATURES: int = NUM_SCALES * FEATURES_PER_SCALE

SHIPPED_PARAMS: Path = Path(__file__).resolve().parents[1] / "weights" / "niqe_pristine.safetensors"
"""The pristine model fitted by ``reliqa niqe-fit`` (provenance and sha256 in the ``.json`` beside it)."""

# NIQE runs in float64 like the MATLAB original: the score inverts a nearly singular 36×36
# covariance (pinv), which amplifies float32 rounding in the features.
_DTYPE = torch.float64


def _gamma_grid() -> tuple[torch.Tensor, torch.Tensor]:
    """α grid 0.2:0.001:10 and r(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)) on it (9801 values each)."""
    alpha = torch.linspace(0.2, 10.0, 9801, dtype=_DTYPE)
    ratio = torch.exp(2 * torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha))
    return alpha, ratio


_ALPHA_GRID, _RATIO_GRID = _gamma_grid()


def rgb_to_gray255(image: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2gray`` of an 8-bit image: (N, 3, H, W) in [0, 1] → (N, 1, H, W) in 0..255.

    The RGB values are first put back on their 8-bit integers, and the luminance is rounded to
    integers, as MATLAB does for uint8 input.
    """
    rgb255 = torch.round(image.to(_DTYPE) * 255.0)
    return torch.round(rgb_to_gray_matlab(rgb255, data_range=255.0))


def mscn(gray: torch.Tensor, *, kernel_size: int = 7, sigma: float = 7 / 6, c: float = 1.0
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-subtracted contrast-normalised coefficients and the local standard deviation.

    Args:
        gray: (N, 1, H, W) luminance on the 0..255 scale.
        kernel_size, sigma: the Gaussian window (7×7, σ = 7/6 in NIQE and BRISQUE).
        c: stabilising constant added to σ (1 on the 0..255 scale).

    Returns:
        (coefficients, local_sigma), both (N, 1, H, W).
    """
    # The window is built in the input's precision: kornia's own Gaussian kernel is float32, and
    # its rounding (1e-7 of 255²) would leak into σ² = E[I²] − μ² where σ is small.
    offsets = torch.arange(kernel_size, dtype=gray.dtype, device=gray.device) - (kernel_size - 1) / 2
    window = torch.exp(-(offsets**2) / (2 * sigma**2))
    window = (window / window.sum())[None]
    mu = kornia.filters.filter2d_separable(gray, window, window, border_type="replicate")
    second = kornia.filters.filter2d_separable(gray * gray, window, window, border_type="replicate")
    local_sigma = torch.sqrt(torch.abs(second - mu * mu))
    return (gray - mu) / (local_sigma + c), local_sigma


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = −0.5 (MATLAB imresize 'bicubic')."""
    ax = x.abs()
    near = 1.5 * ax**3 - 2.5 * ax**2 + 1
    far = -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return torch.where(ax <= 1, near, torch.where(ax <= 2, far, torch.zeros_like(ax)))


# MATLAB imresize(·, 0.5) with antialiasing stretches the cubic kernel by 2: output pixel i
# (0-based) sits at input 2i + 0.5 and takes inputs 2i−3 … 2i+4 at distances ±0.5 … ±3.5.
_HALF_TAPS = _cubic(torch.tensor([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5], dtype=_DTYPE) / 2)
_HALF_TAPS = _HALF_TAPS / _HALF_TAPS.sum()


def _symmetric_pad(x: torch.Tensor, before: int, after: int, dim: int) -> torch.Tensor:
    """Mirror samples at both ends of ``dim``, repeating the edge (MATLAB/numpy 'symmetric')."""
    size = x.shape[dim]
    if size < max(before, after):
        raise InvalidInputError(f"image side of {size} px is too small to halve (needs {max(before, after)})")
    head = x.narrow(dim, 0, before).flip(dim)
    tail = x.narrow(dim, size - after, after).flip(dim)
    return torch.cat([head, x, tail], dim=dim)


def imresize_half(image: torch.Tensor) -> torch.Tensor:
    """MATLAB ``imresize(image, 0.5)`` (bicubic, antialiased): (N, C, H, W) → (N, C, ⌈H/2⌉, ⌈W/2⌉).

    Separable: one strided 8-tap convolution per axis after a 3-sample symmetric pad (the border
    rule of MATLAB's imresize; PyTorch's antialiased bicubic truncates the kernel instead).
    """
    n, c, h, w = image.shape
    taps = _HALF_TAPS.to(device=image.device, dtype=image.dtype)
    flat = image.reshape(n * c, 1, h, w)
    # On an odd side the last output's window reaches one sample further past the edge.
    flat = _symmetric_pad(flat, 3, 3 + h % 2, dim=2)
    flat = F.conv2d(flat, taps.view(1, 1, 8, 1), stride=(2, 1))
    flat = _symmetric_pad(flat, 3, 3 + w % 2, dim=3)
    flat = F.conv2d(flat, taps.view(1, 1, 1, 8), stride=(1, 2))
    return flat.reshape(n, c, flat.shape[-2], flat.shape[-1])


def fit_aggd(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric generalised Gaussian fit by moment matching, batched over rows.

    Density ∝ exp(−(−x/β_l)^α) for x < 0 and exp(−(x/β_r)^α) for x ≥ 0. α is the grid value
    0.2:0.001:10 whose moment ratio is nearest the samples' (first on ties, as MATLAB ``min``).

    Args:
        samples: (B, M) samples, one distribution per row.

    Returns:
        (alpha, beta_left, beta_right), each (B,); NaN for a row without samples of both signs.
    """
    x = samples.to(_DTYPE)
    negative, positive = x < 0, x > 0
    left_std = torch.sqrt((x * x * negative).sum(-1) / negative.sum(-1))
    right_std = torch.sqrt((x * x * positive).sum(-1) / positive.sum(-1))
    gamma_hat = left_std / right_std
    r_hat = x.abs().mean(-1) ** 2 / (x * x).mean(-1)
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    grid_alpha, grid_ratio = _ALPHA_GRID.to(x.device), _RATIO_GRID.to(x.device)
    index = ((grid_ratio[None, :] - r_norm[:, None]) ** 2).argmin(dim=1)
    alpha = grid_alpha[index]
    scale = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    undefined = ~torch.isfinite(r_norm)
    alpha = torch.where(undefined, torch.full_like(alpha, math.nan), alpha)
    return alpha, left_std * scale, right_std * scale


# Neighbour products of NIQE/BRISQUE: (rows, cols) circular shifts as MATLAB circshift.
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


def patch_features(coefficients: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The 18 NIQE features of every non-overlapping patch of an MSCN map.

    Args:
        coefficients: (N, 1, H, W) MSCN coefficients with H, W multiples of ``patch_size``.
        patch_size: side of the square patches.

    Returns:
        (N, P, 18), P = (H / patch_size) · (W / patch_size), patches in row-major order.
    """
    n = coefficients.shape[0]
    patches = F.unfold(coefficients, kernel_size=patch_size, stride=patch_size)
    patches = patches.transpose(1, 2).reshape(-1, patch_size, patch_size)  # (N·P, p, p)
    alpha, beta_left, beta_right = fit_aggd(patches.flatten(1))
    columns = [alpha, (beta_left + beta_right) / 2]
    for shift in _SHIFTS:
        product = patches * torch.roll(patches, shifts=shift, dims=(1, 2))
        alpha, beta_left, beta_right = fit_aggd(product.flatten(1))
        mean = (beta_right - beta_left) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
        columns += [alpha, mean, beta_left, beta_right]
    return torch.stack(columns, dim=-1).reshape(n, -1, FEATURES_PER_SCALE)


def niqe_features(image: torch.Tensor, patch_size: int = PATCH_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """NIQE features and sharpness of every patch.

    Args:
        image: (N, 3, H, W) RGB in [0, 1], H and W at least ``patch_size``.
        patch_size: patch side at the first scale (even; 96 in NIQE).

    Returns:
        (features, sharpness): (N, P, 36) and (N, P); P = ⌊H/p⌋·⌊W/p⌋. Features of a patch with
        undefined statistics (flat, or all one sign) are NaN.

    Raises:
        InvalidInputError: the image is smaller than one patch, or ``patch_size`` is odd.
    """
    if patch_size < 2 or patch_size % 2:
        raise InvalidInputError(f"patch_size must be an even number ≥ 2, got {patch_size}")
    check_tensor_image(image, "niqe", channels=(3,), min_size=patch_size, size_reason="one NIQE patch")
    gray = rgb_to_gray255(image)
    rows, cols = gray.shape[-2] // patch_size, gray.shape[-1] // patch_size
    gray = gray[..., : rows * patch_size, : cols * patch_size]
    per_scale = []
    for scale in range(NUM_SCALES):
        coefficients, local_sigma = mscn(gray)
        size = patch_size // 2**scale
        per_scale.append(patch_features(coefficients, size))
        if scale == 0:
            sharpness = F.avg_pool2d(local_sigma, size).flatten(1)
        gray = imresize_half(gray)
    return torch.cat(per_scale, dim=-1), sharpness


@dataclass(frozen=True)
class NIQEParams:
    """A fitted multivariate Gaussian of NIQE features.

    Attributes:
        mean: (36,) feature mean.
        cov: (36, 36) feature covariance.
        patch_size: the patch side the features were computed with.
        sharpness_threshold: fraction of the sharpest patch a pristine patch had to reach.
        num_images, num_patches: what the fit saw (provenance).
    """

    mean: torch.Tensor
    cov: torch.Tensor
    patch_size: int = PATCH_SIZE
    sharpness_threshold: float = SHARPNESS_THRESHOLD
    num_images: int = 0
    num_patches: int = 0


def fit_pristine(
    images: Iterable[ImageSource],
    *,
    patch_size: int = PATCH_SIZE,
    sharpness_threshold: float = SHARPNESS_THRESHOLD,
) -> NIQEParams:
    """Fit the pristine NIQE model on photos (``estimatemodelparam.m``).

    Args:
        images: paths, arrays or (1, 3, H, W) tensors of pristine photos.
        patch_size: patch side at the first scale.
        sharpness_threshold: keep patches sharper than this fraction of the image's sharpest.

    Returns:
        The fitted :class:`NIQEParams` (mean and covariance of the kept patches' features).

    Raises:
        InvalidInputError: bad threshold, or fewer than two usable patches in all.
    """
    if not 0.0 <= sharpness_threshold < 1.0:
        raise InvalidInputError(f"sharpness_threshold must lie in [0, 1), got {sharpness_threshold}")
    kept, num_images = [], 0
    for source in images:
        image = load_image(source)
        features, sharpness = niqe_features(image, patch_size)
        for feats, sharp in zip(features, sharpness, strict=True):
            rows = feats[sharp > sharpness_threshold * sharp.max()]
            kept.append(rows[torch.isfinite(rows).all(dim=1)])
        num_images += image.shape[0]
    pooled = torch.cat(kept) if kept else torch.empty(0, NUM_FEATURES, dtype=_DTYPE)
    if pooled.shape[0] < 2:
        raise InvalidInputError(
            f"fitting NIQE needs at least two textured {patch_size}×{patch_size} patches; "
            f"{num_images} image(s) gave {pooled.shape[0]}"
        )
    return NIQEParams(
        mean=pooled.mean(dim=0),
        cov=torch.cov(pooled.T),
        patch_size=patch_size,
        sharpness_threshold=sharpness_threshold,
        num_images=num_images,
        num_patches=pooled.shape[0],
    )


def save_params(params: NIQEParams, path: str | os.PathLike, *, provenance: Mapping[str, object] | None = None) -> Path:
    """Write a parameter file and its card.

    The file is safetensors (``mean`` (36,), ``cov`` (36, 36), float64, + metadata); the card
    ``<stem>.json`` beside it records ``provenance`` (command, data, date), what the fit saw
    and the file's sha256, which :func:`load_shipped_params` checks.

    Raises:
        InvalidInputError: ``path`` does not end in ``.safetensors``.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InvalidInputError(f"{path}: NIQE parameters are written as .safetensors; change the suffix")
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": "reliqa-niqe-1",
        "patch_size": str(params.patch_size),
        "sharpness_threshold": str(params.sharpness_threshold),
        "num_images": str(params.num_images),
        "num_patches": str(params.num_patches),
    }
    tensors = {"mean": params.mean.to(_DTYPE).contiguous(), "cov": params.cov.to(_DTYPE).contiguous()}
    save_file(tensors, str(path), metadata=metadata)
    card = {
        "name": path.stem,
        "file": path.name,
        **(provenance or {}),
        **{key: value for key, value in metadata.items() if key != "format"},
        "sha256": sha256_of(path),
    }
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return path


def load_params(path: str | os.PathLike, *, expected_sha256: str | None = None) -> NIQEParams:
    """Read a parameter file written by :func:`save_params` (``reliqa niqe-fit``). Never unpickles.

    Raises:
        WeightsError: missing file, hash mismatch, not safetensors, missing/ill-shaped/non-finite
            ``mean``/``cov``, or a bad ``patch_size``.
    """
    path = Path(path)
    # the one verified loader (reliqa.verified), as for the shipped networks
    tensors, metadata = load_verified(path, expected_sha256, what="NIQE parameter file")
    mean, cov = tensors.get("mean"), tensors.get("cov")
    if mean is None or cov is None:
        raise WeightsError(f"{path}: NIQE parameter file needs tensors 'mean' and 'cov', has {sorted(tensors)}")
    if tuple(mean.shape) != (NUM_FEATURES,) or tuple(cov.shape) != (NUM_FEATURES, NUM_FEATURES):
        raise WeightsError(
            f"{path}: expected mean ({NUM_FEATURES},) and cov ({NUM_FEATURES}, {NUM_FEATURES}), "
            f"got {tuple(mean.shape)} and {tuple(cov.shape)}"
        )
    if not (torch.isfinite(mean).all() and torch.isfinite(cov).all()):
        raise WeightsError(f"{path}: NIQE parameters contain NaN or infinite values")
    try:
        patch_size = int(metadata.get("patch_size", PATCH_SIZE))
        threshold = float(metadata.get("sharpness_threshold", SHARPNESS_THRESHOLD))
        num_images, num_patches = int(metadata.get("num_images", 0)), int(metadata.get("num_patches", 0))
    except ValueError as error:
        raise WeightsError(f"{path}: bad metadata in NIQE parameter file ({error})") from None
    if patch_size < 2 or patch_size % 2:
        raise WeightsError(f"{path}: patch_size must be an even number ≥ 2, got {patch_size}")
    return NIQEParams(mean.to(_DTYPE), cov.to(_DTYPE), patch_size, threshold, num_images, num_patches)


def load_shipped_params() -> NIQEParams:
    """The shipped pristine model, verified against the sha256 in its JSON card."""
    card = read_card(SHIPPED_PARAMS.with_suffix(".json"), what="NIQE parameter file")
    return load_params(SHIPPED_PARAMS, expected_sha256=card["sha256"])


def niqe(image: torch.Tensor, params: NIQEParams | None = None) -> torch.Tensor:
    """NIQE score of each image (lower = better).

    Args:
        image: (N, 3, H, W) RGB in [0, 1], each side at least the model's patch size (96).
        params: pristine model; default the shipped one (:func:`load_shipped_params`).

    Returns:
        (N,) float32 scores.

    Raises:
        InvalidInputError: image too small, or without a single textured patch (NIQE undefined).

    Example:
        >>> from skimage import data
        >>> score = niqe(load_image(data.astronaut()))
        >>> score.shape
        torch.Size([1])
    """
    params = params if params is not None else load_shipped_params()
    features, _ = niqe_features(image, params.patch_size)
    mean_p = params.mean.to(features.device)
    cov_p = params.cov.to(features.device)
    scores = []
    for index, feats in enumerate(features):
        rows = feats[torch.isfinite(feats).all(dim=1)]
        if rows.shape[0] == 0:
            raise InvalidInputError(
                f"image {index} of the batch has no textured {params.patch_size}×"
                f"{params.patch_size} patch (flat or one-signed everywhere): NIQE is undefined"
            )
        # A single patch has no spread: its covariance term is zero.
        cov_d = torch.cov(rows.T) if rows.shape[0] > 1 else torch.zeros_like(cov_p)
        diff = mean_p - rows.mean(dim=0)
        distance = diff @ torch.linalg.pinv((cov_p + cov_d) / 2) @ diff
        scores.append(torch.sqrt(distance.clamp_min(0)))
    return torch.stack(scores).float()


@register_metric(
    MetricInfo(
        name="niqe",
        kind="NR",
        higher_is_better=False,
        score_range=(0.0, float("inf")),
        differentiable=False,
        description="NIQE on rgb2gray luminance, 96-px patches, 2 scales; pristine model fitted "
        "by `reliqa niqe-fit` on the project's pristine photos (not the authors' parameters)",
        reference="Mittal, Soundararajan & Bovik, 'Making a completely blind image quality "
        "analyzer', IEEE SPL 2013",
    )
)
class NIQE(Metric):
    """Module form of :func:`niqe`: ``forward(test) -> (N,)``; ``reference`` is ignored.

    Args:
        params: a parameter file (``reliqa niqe-fit`` output) or :class:`NIQEParams`;
            default the shipped pristine model.
    """

    def __init__(self, params: str | os.PathLike | NIQEParams | None = None) -> None:
        super().__init__()
        if params is None:
            params = load_shipped_params()
        elif not isinstance(params, NIQEParams):
            params = load_params(params)
        self.params = params

    def forward(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        return niqe(test, self.params)
