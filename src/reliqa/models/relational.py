"""Relational full-reference model: distortion maps F(test, ref) and a relational score.

Convention:
    - Images are float32 (N, 3, H, W) in [0, 1]; test and reference have the same shape.
    - Maps are float32 (N, 9, H, W) in [0, 1], channels in :data:`reliqa.attributes.ATTRIBUTES`
      order; 0.5 = no difference, > 0.5 = the TEST has more of the attribute.
    - Exact anti-symmetry by construction: with one shared pair network ``h``,
      ``F(t, r) = sigmoid(h(t, r) − h(r, t))``, so ``F(t, r) = 1 − F(r, t)`` and ``F(x, x) = 0.5``.
    - The score is anti-symmetric too: ``s(t, r) = g(t, r) − g(r, t)``, so ``s(t, r) = −s(r, t)``
      and the score of an image against itself is the neutral point :data:`NEUTRAL_SCORE` = 0.
      Higher = the test is better than the reference; a distorted test against its pristine
      reference scores below 0.

Architecture (docs/relational.md): both images are folded 4 × 4 → 48 channels (space-to-depth,
no pixel is lost), fused by a 1 × 1 convolution, then a three-level U-Net of depthwise-separable
residual blocks at 1/4, 1/8 and 1/16 resolution. The 1/4-resolution logits of ``h(t, r) − h(r, t)``
are upsampled bilinearly to full resolution before the sigmoid (upsampling is linear, so
anti-symmetry survives). Every full-resolution operation is a reshape or an interpolation: the
convolutions run on 16× fewer positions, which is what makes CPU training and inference cheap.

Large images run in tiles (:func:`tiled_forward`): a tile's core of ``tile`` pixels plus a
``margin`` of real context on each side; with a margin at least the receptive-field radius the
result equals the untiled one up to float rounding, and memory depends on the tile, not the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from reliqa.attributes import NUM_ATTRIBUTES
from reliqa.checks import check_tensor_pair
from reliqa.exceptions import InvalidInputError
from reliqa.metrics.base import MetricInfo
from reliqa.models.registry import ModelEntry, register_model

NEUTRAL_SCORE: float = 0.0
"""Relational score of an image against itself (and of any pair the model sees no difference in)."""

FOLD: int = 4
"""Space-to-depth factor of the input: the network's finest resolution is 1/FOLD."""

ALIGN: int = 16
"""Inputs are padded (replicate) to a multiple of this: the coarsest level is 1/16."""

DEFAULT_TILE: int = 1024
DEFAULT_MARGIN: int = 128
"""Default tile core and context margin (pixels); the receptive-field radius is about 110 px."""


class RelationalOutput(NamedTuple):
    """What :class:`RelationalModel` returns.

    Attributes:
        maps: (N, 9, H, W) in [0, 1].
        score: (N,) relational score, higher = test better; 0 = neutral.
    """

    maps: torch.Tensor
    score: torch.Tensor


def check_pair(test: torch.Tensor, reference: torch.Tensor) -> None:
    """Validate a (test, reference) pair of (N, 3, H, W) float tensors in [0, 1], finite, of
    equal shape (:func:`reliqa.checks.check_tensor_pair`)."""
    check_tensor_pair(test, reference, name="relational", channels=(3,))


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


class SeparableBlock(nn.Module):
    """Residual depthwise-separable block: x + pw2(relu(pw1(dw3x3(x)))), (N, C, h, w) → same.

    No normalisation layer: batch statistics would couple samples and instance statistics
    would make tiles differ from the whole image. The last projection starts at zero, so every
    block starts as the identity and depth does not destabilise training.
    """

    def __init__(self, channels: int, expansion: int = 2) -> None:
        super().__init__()
        hidden = channels * expansion
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.project = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(F.relu(self.expand(self.depthwise(x))))


def _stage(channels: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(SeparableBlock(channels) for _ in range(depth)))


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# the map network
# --------------------------------------------------------------------------------------------


class PairNetwork(nn.Module):
    """The shared pair network h: (first, second) → 1/4-resolution logits and features.

    Args:
        widths: channels at 1/4, 1/8 and 1/16 resolution.
        depths: residual blocks per level in the encoder.

    Shapes:
        first, second: (N, 3, H, W) with H, W multiples of :data:`ALIGN`.
        returns logits (N, 9, H/4, W/4) and decoder features (N, widths[0], H/4, W/4).
    """

    def __init__(
        self, widths: Sequence[int] = (32, 64, 96), depths: Sequence[int] = (2, 2, 2)
    ) -> None:
        super().__init__()
        if len(widths) != 3 or len(depths) != 3:
            raise InvalidInputError(f"widths and depths need 3 levels, got {widths} and {depths}")
        c1, c2, c3 = (int(w) for w in widths)
        folded = 3 * FOLD * FOLD
        self.fuse = nn.Conv2d(2 * folded, c1, 1)
        self.level1 = _stage(c1, depths[0])
        self.down1 = nn.Conv2d(c1, c2, 2, stride=2)
        self.level2 = _stage(c2, depths[1])
        self.down2 = nn.Conv2d(c2, c3, 2, stride=2)
        self.level3 = _stage(c3, depths[2])
        self.lateral3 = nn.Conv2d(c3, c2, 1)
        self.decode2 = SeparableBlock(c2)
        self.lateral2 = nn.Conv2d(c2, c1, 1)
        self.decode1 = SeparableBlock(c1)
        self.head = nn.Conv2d(c1, NUM_ATTRIBUTES, 1)
        self.feature_channels = c1

    def forward(
        self, first: torch.Tensor, second: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        folded = torch.cat(
            [F.pixel_unshuffle(first - 0.5, FOLD), F.pixel_unshuffle(second - 0.5, FOLD)], dim=1
        )
        f1 = self.level1(F.relu(self.fuse(folded)))
        f2 = self.level2(F.relu(self.down1(f1)))
        f3 = self.level3(F.relu(self.down2(f2)))
        d2 = self.decode2(f2 + _upsample2(self.lateral3(f3)))
        d1 = self.decode1(f1 + _upsample2(self.lateral2(d2)))
        return self.head(d1), d1


class RelationalMapNet(nn.Module):
    """Anti-symmetric distortion-map network F(test, ref) = sigmoid(h(t, r) − h(r, t)).

    Args:
        widths, depths: see :class:`PairNetwork`.

    Shapes:
        :meth:`forward`: test, reference (N, 3, H, W) in [0, 1], any H, W ≥ 1 → maps (N, 9, H, W).
    """

    def __init__(
        self, widths: Sequence[int] = (32, 64, 96), depths: Sequence[int] = (2, 2, 2)
    ) -> None:
        super().__init__()
        self.pair = PairNetwork(widths, depths)

    @property
    def feature_channels(self) -> int:
        return self.pair.feature_channels

    def aligned_logits(
        self, test: torch.Tensor, reference: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Low-resolution anti-symmetric logits and both passes' features, for aligned inputs.

        Args:
            test, reference: (N, 3, H, W), H and W multiples of :data:`ALIGN`.

        Returns:
            logits (N, 9, H/4, W/4) with ``logits(t, r) = −logits(r, t)``; features of h(t, r)
            and of h(r, t), each (N, C, H/4, W/4).
        """
        batch = test.shape[0]
        # One batched call for both orders: the same kernels see (t, r) and (r, t), which keeps
        # F(x, x) = 0.5 exact and halves the number of kernel launches.
        low, features = self.pair(torch.cat([test, reference]), torch.cat([reference, test]))
        return low[:batch] - low[batch:], features[:batch], features[batch:]

    def forward(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_pair(test, reference)
        height, width = test.shape[-2:]
        low, _, _ = self.aligned_logits(pad_to_multiple(test), pad_to_multiple(reference))
        return torch.sigmoid(upsample_logits(low)[..., :height, :width])


def upsample_logits(low: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) logits at 1/4 resolution → (N, K, 4h, 4w), bilinear (linear: keeps anti-symmetry)."""
    return F.interpolate(low, scale_factor=float(FOLD), mode="bilinear", align_corners=False)


def pad_to_multiple(image: torch.Tensor, multiple: int = ALIGN) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom/right by edge replication to multiples of ``multiple``.

    Replication (not reflection) works for any size, even 1 × 1.
    """
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")


# --------------------------------------------------------------------------------------------
# the scorer
# --------------------------------------------------------------------------------------------


def signed_map_sums(signed: torch.Tensor) -> torch.Tensor:
    """Spatial sums of the scorer's map statistics, for signed maps u = 2·(m − 0.5).

    Per channel: Σ u⁺, Σ u⁻, Σ (u⁺)², Σ (u⁻)² (u⁺ = max(u, 0), u⁻ = max(−u, 0)). Negating u swaps
    the positive and negative entries, which is what the anti-symmetric score relies on; sums
    (not means) let tiles be accumulated.

    Args:
        signed: (N, 9, h, w) in [−1, 1].

    Returns:
        (N, 36): ``[Σu⁺ (9), Σu⁻ (9), Σ(u⁺)² (9), Σ(u⁻)² (9)]``.
    """
    positive = signed.clamp(min=0.0)
    negative = (-signed).clamp(min=0.0)
    return torch.cat(
        [
            positive.sum(dim=(-2, -1)),
            negative.sum(dim=(-2, -1)),
            positive.square().sum(dim=(-2, -1)),
            negative.square().sum(dim=(-2, -1)),
        ],
        dim=1,
    )


def mirror_map_statistics(statistics: torch.Tensor) -> torch.Tensor:
    """Statistics of −u from those of u: swap the positive and negative blocks, (N, 36) → (N, 36)."""
    k = NUM_ATTRIBUTES
    return torch.cat(
        [
            statistics[:, k : 2 * k],
            statistics[:, :k],
            statistics[:, 3 * k :],
            statistics[:, 2 * k : 3 * k],
        ],
        dim=1,
    )


IMAGE_STATISTICS: int = 8
"""Per-image statistics in the scorer's descriptor (see :func:`image_statistic_sums`)."""


def image_statistic_sums(image: torch.Tensor) -> torch.Tensor:
    """Spatial sums of global statistics of ONE image, the scorer's absolute cues.

    A relational map says that the test is brighter, not whether brighter is better; whether
    the change moved the image towards or away from natural statistics (clipped highlights,
    crushed shadows, a colour cast, lost detail) is what these few numbers describe.

    Args:
        image: (N, 3, H, W) in [0, 1].

    Returns:
        (N, 8): Σ luma, Σ luma², Σ [luma < 0.02], Σ [luma > 0.98], Σ chroma (max − min of RGB),
        Σ (R − B), Σ (G − (R + B)/2), Σ |∇ luma| (horizontal + vertical differences).
    """
    red, green, blue = image.unbind(1)
    luma = 0.299 * red + 0.587 * green + 0.114 * blue
    chroma = image.amax(dim=1) - image.amin(dim=1)
    gradient = (luma[..., :, 1:] - luma[..., :, :-1]).abs().sum(dim=(-2, -1)) + (
        luma[..., 1:, :] - luma[..., :-1, :]
    ).abs().sum(dim=(-2, -1))
    return torch.stack(
        [
            luma.sum(dim=(-2, -1)),
            luma.square().sum(dim=(-2, -1)),
            (luma < 0.02).float().sum(dim=(-2, -1)),
            (luma > 0.98).float().sum(dim=(-2, -1)),
            chroma.sum(dim=(-2, -1)),
            (red - blue).sum(dim=(-2, -1)),
            (green - 0.5 * (red + blue)).sum(dim=(-2, -1)),
            gradient,
        ],
        dim=1,
    )


class PairDescriptor(NamedTuple):
    """Pooled inputs of the scorer for both orderings, each (N, 36 + C + 16).

    ``forward`` = [map statistics of u, mean features of h(t, r), image statistics of t, of r];
    ``backward`` = [map statistics of −u, mean features of h(r, t), image statistics of r, of t].
    """

    forward: torch.Tensor
    backward: torch.Tensor


class RelationalScorer(nn.Module):
    """Anti-symmetric relational score s(t, r) = g(t, r) − g(r, t).

    g is a small MLP on one ordering's :class:`PairDescriptor` half: the pooled statistics of
    the signed maps seen from that ordering and the pooled decoder features of that pass.

    Args:
        feature_channels: channels of the pooled features (the map network's ``widths[0]``).
        hidden: width of the MLP.

    Shapes:
        descriptor: two (N, 36 + C + 16) tensors → score (N,).
    """

    def __init__(self, feature_channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(4 * NUM_ATTRIBUTES + feature_channels + 2 * IMAGE_STATISTICS, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, descriptor: PairDescriptor) -> torch.Tensor:
        # Two calls, not one batch: a matrix kernel may round rows of one batch differently, and
        # equal descriptors (an image against itself) must give exactly the neutral score 0.
        return (self.mlp(descriptor.forward) - self.mlp(descriptor.backward)).squeeze(1)


# --------------------------------------------------------------------------------------------
# the whole model, with tiled inference
# --------------------------------------------------------------------------------------------


class RelationalModel(nn.Module):
    """Map network + scorer: ``forward(test, reference)`` → :class:`RelationalOutput`.

    ``info`` declares it to scoring tools (``reliqa batch``, ``reliqa bench``) like a metric:
    full-reference, higher = the test is better relative to the reference.

    Args:
        widths, depths: map-network architecture (see :class:`PairNetwork`).
        scorer_hidden: width of the scorer's MLP.

    Shapes:
        test, reference: (N, 3, H, W) in [0, 1] → maps (N, 9, H, W), score (N,).
    """

    info = MetricInfo(
        name="relational",
        kind="FR",
        higher_is_better=True,
        score_range=(float("-inf"), float("inf")),
        differentiable=True,
        description="reliqa relational score of the test against its reference; 0 = identical",
        reference="reliqa (after Pixel Perfect: relational IQA with spatially-aware distortions)",
    )

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 96),
        depths: Sequence[int] = (2, 2, 2),
        scorer_hidden: int = 64,
    ) -> None:
        super().__init__()
        self.maps_net = RelationalMapNet(widths, depths)
        self.scorer = RelationalScorer(self.maps_net.feature_channels, scorer_hidden)

    def forward(
        self,
        test: torch.Tensor,
        reference: torch.Tensor,
        *,
        tile: int | None = DEFAULT_TILE,
        margin: int = DEFAULT_MARGIN,
    ) -> RelationalOutput:
        """Maps and score; images larger than ``tile + 2·margin`` run in tiles (None: never)."""
        check_pair(test, reference)
        logits, descriptor = tiled_forward(self.maps_net, test, reference, tile=tile, margin=margin)
        # In place when no gradient is needed: for an 8K pair the logits alone are 2.4 GB.
        maps = torch.sigmoid(logits) if torch.is_grad_enabled() else logits.sigmoid_()
        return RelationalOutput(maps, self.scorer(descriptor))

    def score(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Relational scores (N,) of test (N, 3, H, W) against reference; 0 = no difference."""
        return self(test, reference).score

    def maps(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Distortion maps (N, 9, H, W) of test (N, 3, H, W) relative to reference."""
        return self(test, reference).maps


class _DescriptorSums:
    """Accumulates the descriptor's sums over tiles, then divides by the pixel counts."""

    def __init__(self, height: int, width: int) -> None:
        self.low_count = float(
            -(-height // FOLD) * -(-width // FOLD)
        )  # positions at 1/4 resolution
        self.pixel_count = float(height * width)
        self.low_tr: torch.Tensor | float = 0.0
        self.low_rt: torch.Tensor | float = 0.0
        self.image_t: torch.Tensor | float = 0.0
        self.image_r: torch.Tensor | float = 0.0

    def add(
        self,
        low: torch.Tensor,
        features_tr: torch.Tensor,
        features_rt: torch.Tensor,
        test: torch.Tensor,
        reference: torch.Tensor,
    ) -> None:
        """One region: low-resolution logits/features (N, ·, h, w) and its pixels (N, 3, H, W)."""
        statistics = signed_map_sums(torch.tanh(0.5 * low))  # 2·sigmoid(x) − 1 = tanh(x / 2)
        self.low_tr = self.low_tr + torch.cat([statistics, features_tr.sum(dim=(-2, -1))], dim=1)
        self.low_rt = self.low_rt + torch.cat(
            [mirror_map_statistics(statistics), features_rt.sum(dim=(-2, -1))], dim=1
        )
        self.image_t = self.image_t + image_statistic_sums(test)
        self.image_r = self.image_r + image_statistic_sums(reference)

    def descriptor(self) -> PairDescriptor:
        low_tr, low_rt = self.low_tr / self.low_count, self.low_rt / self.low_count  # type: ignore[operator]
        image_t, image_r = self.image_t / self.pixel_count, self.image_r / self.pixel_count  # type: ignore[operator]
        return PairDescriptor(
            torch.cat([low_tr, image_t, image_r], dim=1),
            torch.cat([low_rt, image_r, image_t], dim=1),
        )


def tiled_forward(
    net: RelationalMapNet,
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    tile: int | None = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
) -> tuple[torch.Tensor, PairDescriptor]:
    """Logits of F(test, reference) and the scorer's descriptor, tile by tile for large images.

    Each tile is a core of ``tile`` × ``tile`` pixels (the last ones smaller) plus up to
    ``margin`` pixels of real image context on every side; only the core's logits are kept,
    and the descriptor's means are accumulated over cores at 1/4 resolution. Core origins and
    margins are multiples of :data:`ALIGN`, so every tile sits on the same 1/16 grid as the
    whole image. The descriptor is computed from the 1/4-resolution maps (16× fewer pixels).

    Args:
        net: the map network.
        test, reference: (N, 3, H, W) in [0, 1], same shape.
        tile: core size in pixels (multiple of 16); None, or an image no larger than
            ``tile + 2·margin`` on both sides, runs in one piece.
        margin: context on each side (multiple of 16); at least the receptive-field radius
            (≈ 110 px) makes tiles match the whole-image result.

    Returns:
        logits (N, 9, H, W) (maps = sigmoid(logits)) and a :class:`PairDescriptor`.

    Raises:
        InvalidInputError: ``tile`` or ``margin`` is not a positive multiple of 16.
    """
    height, width = test.shape[-2:]
    sums = _DescriptorSums(height, width)
    if tile is None or (height <= tile + 2 * margin and width <= tile + 2 * margin):
        low, f_tr, f_rt = net.aligned_logits(pad_to_multiple(test), pad_to_multiple(reference))
        valid = (..., slice(0, -(-height // FOLD)), slice(0, -(-width // FOLD)))
        sums.add(low[valid], f_tr[valid], f_rt[valid], test, reference)
        return upsample_logits(low)[..., :height, :width], sums.descriptor()
    if tile <= 0 or tile % ALIGN or margin < 0 or margin % ALIGN:
        raise InvalidInputError(
            f"tile ({tile}) and margin ({margin}) must be multiples of {ALIGN}, tile > 0"
        )
    logits = test.new_empty(test.shape[0], NUM_ATTRIBUTES, height, width)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(top - margin, 0), max(left - margin, 0)
            y1, x1 = min(bottom + margin, height), min(right + margin, width)
            low, f_tr, f_rt = net.aligned_logits(
                pad_to_multiple(test[..., y0:y1, x0:x1]),
                pad_to_multiple(reference[..., y0:y1, x0:x1]),
            )
            logits[..., top:bottom, left:right] = upsample_logits(low)[
                ..., top - y0 : bottom - y0, left - x0 : right - x0
            ]
            # the core in 1/4-resolution coordinates (core origins are multiples of FOLD)
            fy0, fx0 = (top - y0) // FOLD, (left - x0) // FOLD
            core = (
                ...,
                slice(fy0, fy0 + -(-(bottom - top) // FOLD)),
                slice(fx0, fx0 + -(-(right - left) // FOLD)),
            )
            pixels = (..., slice(top, bottom), slice(left, right))
            sums.add(low[core], f_tr[core], f_rt[core], test[pixels], reference[pixels])
    return logits, sums.descriptor()


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelationalArchitecture:
    """Architecture of the shipped relational model (data next to the model, timm style)."""

    widths: tuple[int, int, int] = (32, 64, 96)
    depths: tuple[int, int, int] = (2, 2, 2)
    scorer_hidden: int = 64

    def kwargs(self) -> dict[str, object]:
        return {"widths": self.widths, "depths": self.depths, "scorer_hidden": self.scorer_hidden}


SHIPPED_ARCHITECTURE = RelationalArchitecture()

register_model(
    ModelEntry(
        name="relational",
        builder=RelationalModel,
        kwargs=SHIPPED_ARCHITECTURE.kwargs(),
        weights="relational",
        description="Relational full-reference model: 9 anti-symmetric distortion maps + relational score",
    )
)
