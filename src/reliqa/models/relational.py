"""Relational full-reference model: distortion maps F(test, ref) and a relational score.

Convention:
    - Images are float32 (N, 3, H, W) in [0, 1]; test and reference have the same shape.
    - Maps are float32 (N, 9, H, W) in [0, 1], channels in :data:`reliqa.attributes.ATTRIBUTES`
      order; 0.5 = no difference, > 0.5 = the TEST has more of the attribute.
    - Exact anti-symmetry by construction: with one shared pair network ``h``,
      ``F(t, r) = sigmoid(h(t, r) − h(r, t))``, so ``F(t, r) = 1 − F(r, t)`` and ``F(x, x) = 0.5``.
    - The score measures how much worse the test is than the reference, which is the target
      look: ``s(t, r) = −(learned pooling of the maps) ≤ 0``, and an image against itself scores
      exactly the neutral point :data:`NEUTRAL_SCORE` = 0. Higher = better; candidates of one
      reference are ranked by it (docs/relational.md says why the score is no longer odd).

The map network (:class:`~reliqa.models.relational_maps.RelationalMapNet`, in
:mod:`reliqa.models.relational_maps`) works at 1/4 resolution; this module adds the scorer
over the inputs of :mod:`reliqa.models.relational_features` (statistics of the maps, the pair's
similarity channels, and for ``relational-plus`` the distances of frozen ImageNet
EfficientNet-Lite0 features), the whole model and its tiled inference.

Large images run in tiles (:func:`tiled_forward`): a tile's core of ``tile`` pixels plus a
``margin`` of real context on each side; with a margin at least the receptive-field radius the
result equals the untiled one up to float rounding, and memory depends on the tile, not the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, cast

import torch
from torch import nn
from torch.nn import functional as F

from reliqa.attributes import NUM_ATTRIBUTES
from reliqa.checks import check_tensor_pair
from reliqa.exceptions import InvalidInputError, WeightsError
from reliqa.metrics.base import MetricInfo
from reliqa.models.registry import ModelEntry, register_model
from reliqa.models.relational_features import (
    DEEP_MAX_SIDE,
    DEEP_STAGES,
    DEEP_TERMS,
    MAGNITUDE_FEATURES,
    SIMILARITY_CHANNELS,
    DeepFeatures,
    deep_distances,
    magnitude_features,
    map_statistic_sums,
    masking_activity,
    similarity_channels,
)
from reliqa.models.relational_maps import (
    ALIGN,
    FOLD,
    RelationalMapNet,
    pad_to_multiple,
    upsample_logits,
)

NEUTRAL_SCORE: float = 0.0
"""Relational score of an image against itself (and of any pair the model sees no difference in)."""

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


# --------------------------------------------------------------------------------------------
# the scorer
# --------------------------------------------------------------------------------------------

class RelationalScorer(nn.Module):
    """Relational score: minus a learned, direction-aware perceptual pooling of the maps.

        s(t, r) = − Σ_c Σ_d Σ_k softplus(θ_cdk) · f_cdk  [ − Σ_s Σ_j softplus(α_sj) · e_sj ]  ≤ 0

    over the nine attributes c, the two directions d (the test has more / less of it) and the
    five poolings k of :func:`magnitude_features`; ``relational-plus`` adds the deep-feature
    distances e of :func:`deep_feature_distances`. The reference is the target look, so any
    change is a loss of quality; the weights say how much each kind of change costs (more noise
    costs more than less noise; blur more than over-sharpening), one weight per attribute,
    direction and pooling, shared by every content: nothing per content, no offset. An image
    against itself scores exactly 0, the neutral point; every other pair scores below.

    Args:
        deep_stages: 0 (maps only) or :data:`DEEP_STAGES`.
        similarity: also pool the :func:`similarity_channels` (K = 2 more channels, pooled
            and weighted like the maps).

    Shapes:
        statistics: (N, 9 + K, 2, :data:`STATISTIC_COLUMNS`) means of
        :func:`map_statistic_sums` (K = 0 without ``similarity``);
        deep: (N, deep_stages, 3) or None → score (N,).
    """

    def __init__(self, deep_stages: int = 0, similarity: bool = False) -> None:
        super().__init__()
        self.similarity = similarity
        channels = NUM_ATTRIBUTES + (len(SIMILARITY_CHANNELS) if similarity else 0)
        self.weight = nn.Parameter(torch.full((channels, 2, MAGNITUDE_FEATURES), -1.0))
        self.deep_weight = (
            nn.Parameter(torch.full((deep_stages, DEEP_TERMS), -1.0)) if deep_stages else None
        )

    def forward(self, statistics: torch.Tensor, deep: torch.Tensor | None = None) -> torch.Tensor:
        cost = (F.softplus(self.weight) * magnitude_features(statistics)).sum(dim=(1, 2, 3))
        if self.deep_weight is not None:
            if deep is None:
                raise InvalidInputError("this scorer needs the deep-feature distances")
            cost = cost + (F.softplus(self.deep_weight) * deep.clamp(min=0.0)).sum(dim=(1, 2))
        # + 0.0 turns the −0.0 of an identical pair into the documented neutral 0.0
        return -cost + 0.0


# --------------------------------------------------------------------------------------------
# the whole model, with tiled inference
# --------------------------------------------------------------------------------------------


class RelationalModel(nn.Module):
    """Map network + scorer: ``forward(test, reference)`` → :class:`RelationalOutput`.

    ``info`` declares it to scoring tools (``reliqa batch``, ``reliqa bench``) like a metric:
    full-reference, higher = the test is better relative to the reference.

    Args:
        widths, depths: map-network architecture (see :class:`PairNetwork`).
        deep: also read the deep-feature distances of ImageNet EfficientNet-Lite0 (the
            ``relational-plus`` model; its backbone weights are part of its state dict).
        deep_max_side: the deep-feature branch sees the pair downscaled (antialiased) to at
            most this longer side; the maps always see it whole (docs/relational.md, "The
            resolution the deep distances need").
        similarity: the scorer also reads the classical :func:`similarity_channels` of the
            pair (docs/relational.md, "Similarity channels").

    Shapes:
        test, reference: (N, 3, H, W) in [0, 1] → maps (N, 9, H, W), score (N,).
    """

    info = MetricInfo(
        name="relational",
        kind="FR",
        higher_is_better=True,
        score_range=(float("-inf"), 0.0),
        differentiable=True,
        description="reliqa relational score of the test against its reference; 0 = identical",
        reference="reliqa (after Pixel Perfect: relational IQA with spatially-aware distortions)",
    )

    def __init__(
        self,
        widths: Sequence[int] = (32, 64, 96),
        depths: Sequence[int] = (2, 2, 2),
        deep: bool = False,
        deep_max_side: int = DEEP_MAX_SIDE,
        similarity: bool = False,
    ) -> None:
        super().__init__()
        if deep_max_side < 32:
            raise InvalidInputError(f"deep_max_side must be at least 32, got {deep_max_side}")
        self.maps_net = RelationalMapNet(widths, depths)
        self.deep_features = DeepFeatures() if deep else None
        self.deep_max_side = deep_max_side
        self.scorer = RelationalScorer(DEEP_STAGES if deep else 0, similarity)

    @classmethod
    def from_state_dict(
        cls, state: dict[str, torch.Tensor], *, deep_max_side: int = DEEP_MAX_SIDE
    ) -> RelationalModel:
        """The model a saved state dict describes (shipped architecture widths; whether it reads
        deep distances and similarity channels from its keys and shapes), with that state loaded.

        Raises:
            WeightsError: the state dict is not one of a :class:`RelationalModel`.
        """
        scorer_weight = state.get("scorer.weight")
        if scorer_weight is None:
            raise WeightsError("not a relational model's state dict (no 'scorer.weight')")
        model = cls(
            SHIPPED_ARCHITECTURE.widths,
            SHIPPED_ARCHITECTURE.depths,
            deep=any(key.startswith("deep_features.") for key in state),
            deep_max_side=deep_max_side,
            similarity=scorer_weight.shape[0] > NUM_ATTRIBUTES,
        )
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise WeightsError(f"not a relational model's state dict: {error}") from None
        return model

    def forward(
        self,
        test: torch.Tensor,
        reference: torch.Tensor,
        *,
        tile: int | None = DEFAULT_TILE,
        margin: int = DEFAULT_MARGIN,
    ) -> RelationalOutput:
        """Maps and score; images larger than ``tile + 2·margin`` run in tiles (None: never)."""
        check_tensor_pair(test, reference, name="relational", channels=(3,))
        logits, statistics = tiled_forward(
            self.maps_net, test, reference, tile=tile, margin=margin,
            similarity=self.scorer.similarity,
        )
        logits = cast(torch.Tensor, logits)  # with_logits (the default) returns them
        # In place when no gradient is needed: for an 8K pair the logits alone are 2.4 GB.
        maps = torch.sigmoid(logits) if torch.is_grad_enabled() else logits.sigmoid_()
        return RelationalOutput(maps, self.scorer(statistics, self._deep(test, reference)))

    def score(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Relational scores (N,) of test (N, 3, H, W) against reference; 0 = no difference.

        The score of :meth:`forward` without its maps: the same statistics, but no
        full-resolution logits (what batch scoring and ranking by score need)."""
        check_tensor_pair(test, reference, name="relational", channels=(3,))
        _, statistics = tiled_forward(
            self.maps_net, test, reference, similarity=self.scorer.similarity, with_logits=False
        )
        return self.scorer(statistics, self._deep(test, reference))

    def _deep(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor | None:
        """The deep-feature distances of a checked pair (``relational-plus``), else None."""
        if self.deep_features is None:
            return None
        return deep_distances(self.deep_features, test, reference, self.deep_max_side)

    def maps(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Distortion maps (N, 9, H, W) of test (N, 3, H, W) relative to reference."""
        return self(test, reference).maps


class _StatisticSums:
    """Accumulates the scorer's statistics over tiles, then divides by the position count."""

    def __init__(self, height: int, width: int, similarity: bool) -> None:
        self.low_count = float(-(-height // FOLD) * -(-width // FOLD))  # positions at 1/4
        self.similarity = similarity
        self.sums: torch.Tensor | None = None

    def add(
        self,
        low: torch.Tensor,
        test: torch.Tensor,
        reference: torch.Tensor,
        region: tuple[slice, slice],
    ) -> None:
        """One region of one aligned tile: its 1/4-resolution logits (N, 9, h, w) and images
        (N, 3, 4h, 4w); ``region`` (rows, columns at 1/4 resolution) is the part that counts."""
        part = (..., *region)
        signed = torch.tanh(0.5 * low[part])  # tanh(x/2) = 2σ(x) − 1
        if self.similarity:
            signed = torch.cat([signed, similarity_channels(test, reference)[part]], dim=1)
        region_sums = map_statistic_sums(signed, masking_activity(test, reference)[part])
        self.sums = region_sums if self.sums is None else self.sums + region_sums

    def means(self) -> torch.Tensor:
        if self.sums is None:
            raise InvalidInputError("no region was added")
        return self.sums / self.low_count


def tiled_forward(
    net: RelationalMapNet,
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    tile: int | None = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    similarity: bool = False,
    with_logits: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Logits of F(test, reference) and the scorer's statistics, tile by tile for large images.

    Each tile is a core of ``tile`` × ``tile`` pixels (the last ones smaller) plus up to
    ``margin`` pixels of real image context on every side; only the core's logits are kept,
    and the scorer's statistics are accumulated over cores at 1/4 resolution. Core origins and
    margins are multiples of :data:`ALIGN`, so every tile sits on the same 1/16 grid as the
    whole image. The statistics are computed from the 1/4-resolution maps (16× fewer pixels).

    Args:
        net: the map network.
        test, reference: (N, 3, H, W) in [0, 1], same shape.
        tile: core size in pixels (multiple of 16); None, or an image no larger than
            ``tile + 2·margin`` on both sides, runs in one piece.
        margin: context on each side (multiple of 16); at least the receptive-field radius
            (≈ 110 px) makes tiles match the whole-image result.
        similarity: add the :func:`similarity_channels` to the statistics (K = 2 channels).
        with_logits: False for the statistics alone (a score without maps): no
            full-resolution logits are upsampled or held (for an 8K pair they are 2.4 GB).

    Returns:
        logits (N, 9, H, W) (maps = sigmoid(logits); None without ``with_logits``) and the
        scorer's statistics (N, 9 + K, 2, :data:`STATISTIC_COLUMNS`), means of
        :func:`map_statistic_sums`.

    Raises:
        InvalidInputError: ``tile`` or ``margin`` is not a positive multiple of 16.
    """
    height, width = test.shape[-2:]
    sums = _StatisticSums(height, width, similarity)
    if tile is None or (height <= tile + 2 * margin and width <= tile + 2 * margin):
        test_aligned, reference_aligned = pad_to_multiple(test), pad_to_multiple(reference)
        low = net.aligned_logits(test_aligned, reference_aligned)
        valid = (slice(0, -(-height // FOLD)), slice(0, -(-width // FOLD)))
        sums.add(low, test_aligned, reference_aligned, valid)
        return (upsample_logits(low)[..., :height, :width] if with_logits else None), sums.means()
    if tile <= 0 or tile % ALIGN or margin < 0 or margin % ALIGN:
        raise InvalidInputError(
            f"tile ({tile}) and margin ({margin}) must be multiples of {ALIGN}, tile > 0"
        )
    logits = test.new_empty(test.shape[0], NUM_ATTRIBUTES, height, width) if with_logits else None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            y0, x0 = max(top - margin, 0), max(left - margin, 0)
            y1, x1 = min(bottom + margin, height), min(right + margin, width)
            test_aligned = pad_to_multiple(test[..., y0:y1, x0:x1])
            reference_aligned = pad_to_multiple(reference[..., y0:y1, x0:x1])
            low = net.aligned_logits(test_aligned, reference_aligned)
            if logits is not None:
                logits[..., top:bottom, left:right] = upsample_logits(low)[
                    ..., top - y0 : bottom - y0, left - x0 : right - x0
                ]
            # the core in 1/4-resolution coordinates (core origins are multiples of FOLD)
            fy0, fx0 = (top - y0) // FOLD, (left - x0) // FOLD
            core = (
                slice(fy0, fy0 + -(-(bottom - top) // FOLD)),
                slice(fx0, fx0 + -(-(right - left) // FOLD)),
            )
            sums.add(low, test_aligned, reference_aligned, core)
    return logits, sums.means()


# --------------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelationalArchitecture:
    """Architecture of the shipped relational model (data next to the model, timm style)."""

    widths: tuple[int, int, int] = (32, 64, 96)
    depths: tuple[int, int, int] = (2, 2, 2)
    similarity: bool = True

    def kwargs(self) -> dict[str, object]:
        return {"widths": self.widths, "depths": self.depths, "similarity": self.similarity}

    def plus_kwargs(self) -> dict[str, object]:
        return {**self.kwargs(), "deep": True}


SHIPPED_ARCHITECTURE = RelationalArchitecture()


def _register_shipped(name: str, kwargs: dict[str, object], description: str) -> None:
    """Register a shipped :class:`RelationalModel`; its weights file is named as the model."""
    register_model(
        ModelEntry(name=name, builder=RelationalModel, kwargs=kwargs, weights=name, description=description)
    )


_register_shipped(
    "relational", SHIPPED_ARCHITECTURE.kwargs(),
    "Relational full-reference model: 9 anti-symmetric distortion maps + relational score "
    "(reads the maps and the pair's gradient and local-structure similarity)",
)
_register_shipped(
    "relational-plus", SHIPPED_ARCHITECTURE.plus_kwargs(),
    "The relational model whose score also reads ImageNet EfficientNet-Lite0 feature distances "
    "(slower; same maps)",
)
