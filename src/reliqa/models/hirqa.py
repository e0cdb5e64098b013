"""HiRQA: the opinion-unaware no-reference model (score from the image alone).

Architecture (docs/nr.md): a convolutional encoder turns the image into a grid of spatial
tokens; attention pooling with one learned query summarises any number of tokens (so any input
size works and no crop is needed at test time); a linear layer gives the quality embedding and a
second one the score logit, squashed by a sigmoid into [0, 1] (higher = better).

Two sizes share the code and differ only in their configuration (data in the registry):

- ``hirqa``: quality first, residual blocks, wider stages;
- ``hirqa-s``: speed first, downsamples to 1/4 in the stem and uses depthwise-separable blocks.

The ``text_projection`` head maps the embedding into the 384-d space of the prompt embeddings
and is used only by the training objective (text-guided alignment); inference ignores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from reliqa.checks import check_tensor_image
from reliqa.exceptions import InvalidInputError
from reliqa.models.efficientnet_lite import EfficientNetLite0, positions_by_channels
from reliqa.models.fold import ConvBN, conv_bn, fold_input_normalisation, folded_parameters
from reliqa.models.nr_statistics import STATISTIC_NAMES, image_statistics_unchecked
from reliqa.models.registry import ModelEntry, register_model

TEXT_DIM = 384
"""Width of the all-MiniLM-L6-v2 sentence embeddings the text head aligns with."""

MIN_SIZE = 32
"""Smallest height/width the encoder accepts (its total stride)."""

MAX_SIDE = 1024
"""Longer side above which :meth:`HiRQA.score` first downscales an image (docs/nr.md)."""

# Fixed input normalisation: a per-image normalisation would erase exposure and contrast
# errors, which are quality cues.
_INPUT_MEAN = 0.45
_INPUT_STD = 0.25


def _normalise(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] → ``(x − 0.45) / 0.25``, channels-last: (N, 3, H, W) → (N, 3, H, W)."""
    # channels-last first, then subtract into a new tensor and divide in place: the same
    # values as ((x − mean) / std), one pass and one allocation less
    return (images.contiguous(memory_format=torch.channels_last) - _INPUT_MEAN).div_(_INPUT_STD)


class NormalisingPatchStem(ConvBN):
    """The patchify stem (convolution with kernel = stride = ``patch``, no padding, then batch
    norm) applied to **unnormalised** images: (N, 3, H, W) in [0, 1] → (N, C, H/p, W/p),
    channels-last. The network's fixed input normalisation is part of it.

    In inference the normalisation is folded into the (batch-norm-folded) weights
    (:func:`~reliqa.models.fold.fold_input_normalisation`, exact for an unpadded convolution
    up to float rounding: ~1e-8 on the score) and the image is read as it comes: no
    normalised copy and no channels-last copy of the whole image is made (the convolution's
    channels-last weight sets its output layout). Those two image-sized tensors were written
    into freshly mapped memory at every call (docs/nr.md, "Speed"). Training computes the
    layers as written.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, bn = cast(nn.Conv2d, self[0]), cast(nn.BatchNorm2d, self[1])
        if torch.is_grad_enabled() or bn.training:
            return conv_bn(conv, bn, _normalise(x))
        weight, bias = fold_input_normalisation(
            *folded_parameters(conv, bn), _INPUT_MEAN, _INPUT_STD
        )
        return conv._conv_forward(x, weight.contiguous(memory_format=torch.channels_last), bias)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> ConvBN:
    return ConvBN(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    )


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with a skip: (N, C_in, H, W) → (N, C_out, H/s, W/s)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(c_in, c_out, 3, stride)
        self.conv2 = _conv_bn(c_out, c_out, 3)
        self.skip = (
            nn.Identity() if stride == 1 and c_in == c_out else _conv_bn(c_in, c_out, 1, stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x), inplace=True))
        return F.relu(y + self.skip(x), inplace=True)


class SeparableBlock(nn.Module):
    """Depthwise 3×3, pointwise 1×1, skip if shapes match: (N, C_in, H, W) → (N, C_out, H/s, W/s)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.depthwise = _conv_bn(c_in, c_in, 3, stride, groups=c_in)
        self.pointwise = _conv_bn(c_in, c_out, 1)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(F.relu(self.depthwise(x), inplace=True))
        return F.relu(y + x if self.residual else y, inplace=True)


class AttentionPool(nn.Module):
    """One learned query attends over all spatial tokens: (N, C, h, w) → (N, C).

    No positional encoding, so the pooled vector does not depend on where in the frame a
    defect lies and any token count works.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.zeros(1, 1, channels))
        self.norm = nn.LayerNorm(channels)
        self.attention = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(feature_map.flatten(2).transpose(1, 2))
        query = self.query.expand(tokens.shape[0], -1, -1)
        pooled, _ = self.attention(query, tokens, tokens, need_weights=False)
        return pooled[:, 0]


class _QualityScorer(nn.Module):
    """What :class:`HiRQA` and :class:`PretrainedHiRQA` share after their own embedding:
    image (N, 3, H, W) in [0, 1] → quality embedding (N, embed_dim) (:meth:`_embed`, each
    network's) → ``score_head`` logit (N,) → sigmoid = score in [0, 1], higher = better.

    The input check runs once per public call: it reads every pixel, and at 5 ms per image
    three checks of one call were a tenth of the time.
    """

    score_head: nn.Linear
    max_side: int = MAX_SIDE
    """:meth:`score` first downscales images whose longer side exceeds it."""

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` of a checked batch (N, 3, H, W) → (N, embed_dim); each network's own."""
        raise NotImplementedError

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Quality embedding: (N, 3, H, W) in [0, 1] → (N, embed_dim)."""
        check_tensor_image(images, "images", channels=(3,), min_size=MIN_SIZE)
        return self._embed(images)

    def score_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """(N, embed_dim) → (N,) logits; the score is their sigmoid."""
        return self.score_head(embedding)[:, 0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] → (N,) scores in [0, 1], higher = better."""
        check_tensor_image(images, "images", channels=(3,), min_size=MIN_SIZE)
        return self._scores(images)

    def _scores(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of a checked batch."""
        return torch.sigmoid(self.score_logits(self._embed(images)))

    @torch.inference_mode()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Deterministic inference: (N, 3, H, W) in [0, 1] → (N,) float32 scores.

        The image is scored whole at its native resolution (no crop); one whose longer side
        exceeds ``max_side`` is first downscaled to it (:func:`fit_to_max_side`).
        """
        check_tensor_image(images, "images", channels=(3,), min_size=MIN_SIZE)
        return self._scores(fit_to_max_side(images, self.max_side)).float()


class HiRQA(_QualityScorer):
    """No-reference quality network: image (N, 3, H, W) in [0, 1] → score (N,) in [0, 1].

    Args:
        stem: output channels of the stem convolutions; the first has kernel = stride =
            ``patch`` when ``patch > 2`` (a patchify stem that keeps every pixel's information
            while downsampling early), otherwise 3×3 with stride 2; the others are 3×3, stride 2.
        patch: stride of the first stem convolution.
        widths: channels of the stages; every stage starts with a stride-2 block.
        depths: blocks per stage (the first one downsamples).
        block: ``"residual"`` (two 3×3 convolutions) or ``"separable"`` (depthwise + pointwise).
        embed_dim: size of the quality embedding.
        heads: attention heads of the pooling.

    Inputs must be at least :data:`MIN_SIZE` pixels on each side. The encoder runs in
    channels-last memory layout, the one oneDNN's CPU depthwise and 1×1 kernels work in.
    """

    def __init__(
        self,
        stem: Sequence[int] = (32, 32),
        patch: int = 2,
        widths: Sequence[int] = (64, 128, 256),
        depths: Sequence[int] = (2, 2, 2),
        block: str = "residual",
        embed_dim: int = 128,
        heads: int = 4,
    ) -> None:
        super().__init__()
        if block not in ("residual", "separable"):
            raise InvalidInputError(f"block must be 'residual' or 'separable', got {block!r}")
        if len(widths) != len(depths):
            raise InvalidInputError(
                f"widths {tuple(widths)} and depths {tuple(depths)} differ in length"
            )
        layers: list[nn.Module] = []
        channels = 3
        for index, width in enumerate(stem):
            if index == 0 and patch > 2:
                first = NormalisingPatchStem(
                    nn.Conv2d(3, width, patch, patch, bias=False), nn.BatchNorm2d(width)
                )
                layers += [first, nn.ReLU(inplace=True)]
            else:
                layers += [_conv_bn(channels, width, 3, 2), nn.ReLU(inplace=True)]
            channels = width
        block_type = ResidualBlock if block == "residual" else SeparableBlock
        for width, depth in zip(widths, depths):
            for index in range(depth):
                layers.append(block_type(channels, width, 2 if index == 0 else 1))
                channels = width
        self.encoder = nn.Sequential(*layers)
        self.pool = AttentionPool(channels, heads)
        self.embedding = nn.Linear(channels, embed_dim)
        self.score_head = nn.Linear(embed_dim, 1)
        self.text_projection = nn.Linear(embed_dim, TEXT_DIM)
        self.patch_stem = patch > 2
        self.stride = max(patch, 2) * 2 ** (len(stem) - 1 + len(widths))

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` of a checked batch: encoder → attention pooling → linear."""
        # a patchify stem normalises the image itself (NormalisingPatchStem)
        features = self.encoder(images if self.patch_stem else _normalise(images))
        return self.embedding(self.pool(features))


def fit_to_max_side(images: torch.Tensor, max_side: int = MAX_SIDE) -> torch.Tensor:
    """Downscale (N, 3, H, W) so that max(H, W) ≤ ``max_side`` (antialiased bilinear, aspect
    kept); smaller images pass unchanged. The model learned from photos of 200–1300 pixels, and
    the pixel statistics of a 12-megapixel frame lie outside that range."""
    height, width = images.shape[-2:]
    longest = max(height, width)
    if longest <= max_side:
        return images
    size = (max(1, round(height * max_side / longest)), max(1, round(width * max_side / longest)))
    resized = F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp(0.0, 1.0)


HIRQA_CONFIGS: dict[str, dict[str, object]] = {
    "hirqa-scratch": {
        "stem": (32, 48),
        "widths": (64, 128, 192),
        "depths": (2, 2, 2),
        "block": "residual",
        "embed_dim": 128,
        "heads": 4,
    },
    "hirqa-s": {
        "stem": (24,),
        "patch": 4,
        "widths": (48, 96, 160),
        "depths": (2, 2, 2),
        "block": "separable",
        "embed_dim": 96,
        "heads": 4,
    },
}
"""Architectures of the from-scratch networks: ``hirqa-s`` (registered) and ``hirqa-scratch``
(the first ``hirqa``, replaced by :class:`PretrainedHiRQA`; trainable with ``reliqa train nr``)."""

POOLED_STATS = ("mean", "std")
"""Statistics pooled over space from every backbone map (docs/nr.md, "hirqa")."""


def pooled_stage_features(
    backbone: EfficientNetLite0, images: torch.Tensor, upto: int | None = None
) -> torch.Tensor:
    """Multi-scale pooled features of the frozen backbone: (N, 3, H, W) in [0, 1] →
    (N, 2·Σ C_stage) = (N, 4128): per map (stages 1–7 and the head convolution, strides 2–32)
    the spatial mean and standard deviation of every channel, concatenated.

    Early maps keep what quality depends on at pixel scale (noise, fine blur, blocking); late
    ones what the photo shows (which tells bokeh from blur). Mean and std are size-independent,
    so any input size ≥ 32×32 gives the same vector layout. This one function makes both the
    cached training features and the inference features.

    ``upto``: compute only the first ``upto`` maps and leave the others' entries 0 (a head
    that reads stages 1–4 only need not run the rest of the backbone).
    """
    check_tensor_image(images, "images", channels=(3,), min_size=MIN_SIZE)
    return _pooled_stage_features(backbone, images, upto)


def _pooled_stage_features(
    backbone: EfficientNetLite0, images: torch.Tensor, upto: int | None
) -> torch.Tensor:
    """:func:`pooled_stage_features` of a checked batch."""
    parts: list[torch.Tensor] = []
    maps = backbone.stage_features_unchecked(images, upto)
    for feature in maps:
        # two passes over the (N, H·W, C) view of the channels-last map (no copy), mean then
        # mean squared deviation: torch.std_mean (one-pass Welford) took ~20 ms of a 512²
        # image's 8 maps on one CPU thread, these ~1.5 ms (measured)
        positions = positions_by_channels(feature.float())
        mean = positions.mean(dim=1)
        parts += [mean, (positions - mean[:, None]).square_().mean(dim=1).sqrt_()]
    skipped = 2 * sum(backbone.stage_channels[len(maps) :])
    if skipped:
        parts.append(images.new_zeros(images.shape[0], skipped))
    return torch.cat(parts, dim=1)


FEATURE_CHUNK = 1
"""Images per backbone pass inside :meth:`PretrainedHiRQA.features` on CPU (memory locality)."""

POOLED_DIM = 2 * sum(EfficientNetLite0.stage_channels)
"""Length of :func:`pooled_stage_features` vectors (4128)."""

FEATURE_SET_SPECS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "all": (tuple(range(8)), ("mean", "std")),
    "mean": (tuple(range(8)), ("mean",)),
    "last": ((7,), ("mean", "std")),
    "early": ((0, 1, 2, 3), ("mean", "std")),
    "late": ((4, 5, 6, 7), ("mean", "std")),
    "middle": ((2, 3, 4), ("mean", "std")),
    "upto5": ((0, 1, 2, 3, 4), ("mean", "std")),
    "upto6": ((0, 1, 2, 3, 4, 5), ("mean", "std")),
    "none": ((), ()),
}
"""Subsets of the pooled features a head may read: maps (0–6 = stages 1–7, 7 = the head
convolution) and statistics. ``all`` (mean + std of the 8 maps), ``mean`` (means only), ``last``
(the usual global-average-pooled descriptor), ``early`` (stages 1–4), ``late`` (5–7 + head),
``middle`` (3–5), ``upto5``/``upto6`` (stages 1–5 / 1–6), ``none`` (no deep feature: the
classical statistics alone). Chosen by the content-aware criterion (docs/nr.md)."""

FEATURE_SETS = tuple(FEATURE_SET_SPECS)

FEATURE_SET_MAPS: dict[str, int | None] = {
    name: None if 7 in maps else max(maps, default=-1) + 1
    for name, (maps, _) in FEATURE_SET_SPECS.items()
}
"""How many backbone maps a feature set needs computed (None = all)."""


def feature_mask(feature_set: str) -> torch.Tensor:
    """(4128,) 0/1 mask selecting a :data:`FEATURE_SETS` subset of the pooled features."""
    if feature_set not in FEATURE_SET_SPECS:
        raise InvalidInputError(f"feature_set must be one of {FEATURE_SETS}, got {feature_set!r}")
    maps, statistics = FEATURE_SET_SPECS[feature_set]
    parts = []
    for index, channels in enumerate(EfficientNetLite0.stage_channels):
        for statistic in ("mean", "std"):
            keep = index in maps and statistic in statistics
            parts.append(torch.full((channels,), float(keep)))
    return torch.cat(parts)


class PretrainedHiRQA(_QualityScorer):
    """``hirqa``: frozen ImageNet EfficientNet-Lite0 features → small trained head → score.

    image (N, 3, H, W) in [0, 1] → :func:`pooled_stage_features` (N, 4128) → fixed
    standardisation (``feature_mean`` / ``feature_std``, measured on the synthetic training
    corpus) → Linear → GELU → Linear = quality embedding (N, ``embed_dim``) → Linear → sigmoid.

    Args:
        hidden: width of the head's hidden layer.
        embed_dim: size of the quality embedding.
        max_side: :meth:`score` first downscales images whose longer side exceeds it.
        feature_set: which pooled features the head reads (:data:`FEATURE_SETS`); the others
            are zeroed after standardisation.

    The backbone stays in eval mode (frozen batch-norm statistics) even in ``train()``; only
    the head is trained (docs/nr.md says why). The shipped file holds the backbone too (without
    its ImageNet classifier), so scoring needs no extra package; building the model from
    ImageNet weights for training does (``reliqa[pretrained]``,
    :meth:`load_imagenet_backbone`).
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    feature_mask: torch.Tensor

    def __init__(
        self, hidden: int = 256, embed_dim: int = 128, max_side: int = 768,
        feature_set: str = "all", statistics: bool = False,
    ) -> None:
        super().__init__()
        self.feature_set = feature_set
        self.statistics = statistics
        width = POOLED_DIM + (len(STATISTIC_NAMES) if statistics else 0)
        mask = feature_mask(feature_set)
        if statistics:
            mask = torch.cat([mask, torch.ones(len(STATISTIC_NAMES))])
        self.register_buffer("feature_mask", mask, persistent=False)
        self.backbone = EfficientNetLite0(num_classes=0)
        self.backbone.requires_grad_(False)
        self.register_buffer("feature_mean", torch.zeros(width))
        self.register_buffer("feature_std", torch.ones(width))
        self.head = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, embed_dim)
        )
        self.score_head = nn.Linear(embed_dim, 1)
        self.text_projection = nn.Linear(embed_dim, TEXT_DIM)
        self.max_side = max_side
        self.stride = 32
        self.backbone.eval()

    def train(self, mode: bool = True) -> PretrainedHiRQA:
        super().train(mode)
        self.backbone.eval()  # frozen: batch-norm statistics stay the ImageNet ones
        return self

    def load_imagenet_backbone(self) -> None:
        """Put the ImageNet weights into the backbone (needs ``reliqa[pretrained]``)."""
        from reliqa.models.efficientnet_lite import load_imagenet_state

        state = {k: v for k, v in load_imagenet_state().items() if not k.startswith("_fc.")}
        self.backbone.load_state_dict(state)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] → (N, 4128) pooled backbone features, followed by the 13
        :func:`~reliqa.models.nr_statistics.image_statistics` when ``statistics`` (no gradient)."""
        check_tensor_image(images, "images", channels=(3,), min_size=MIN_SIZE)
        return self._features(images)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`features` of a checked batch: the range check reads every pixel, so it runs
        once per call, not once per chunk and stage."""
        # a set that reads no later map need not run the later stages
        upto = FEATURE_SET_MAPS[self.feature_set]
        with torch.no_grad():
            # On CPU, chunks of FEATURE_CHUNK images: the early maps of a 16 × 512² batch are
            # ~0.4 GB and run several times slower per image than one image's maps, which
            # stay in cache. A GPU takes the whole batch.
            chunk = FEATURE_CHUNK if images.device.type == "cpu" else images.shape[0]
            parts = []
            for part in images.split(chunk):
                pooled = (
                    part.new_zeros(part.shape[0], POOLED_DIM) if upto == 0
                    else _pooled_stage_features(self.backbone, part, upto)
                )
                if self.statistics:
                    pooled = torch.cat([pooled, image_statistics_unchecked(part)], dim=1)
                parts.append(pooled)
            return torch.cat(parts)

    def embed_features(self, features: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
        """Features (N, F) of :meth:`features` → quality embedding (N, embed_dim); ``dropout``
        on the standardised features in training mode (head training on cached features)."""
        normalised = self.feature_mask * (features - self.feature_mean) / self.feature_std
        if dropout > 0 and self.training:
            normalised = F.dropout(normalised, dropout)
        return self.head(normalised)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """:meth:`embed` of a checked batch: :meth:`features` → :meth:`embed_features`."""
        return self.embed_features(self._features(images))


PRETRAINED_CONFIG: dict[str, object] = {
    "hidden": 128, "embed_dim": 64, "max_side": 512, "feature_set": "all", "statistics": True,
}
"""Architecture of the registered ``hirqa`` (:class:`PretrainedHiRQA`)."""

register_model(
    ModelEntry(
        name="hirqa",
        builder=PretrainedHiRQA,
        kwargs=PRETRAINED_CONFIG,
        weights="hirqa",
        description=(
            "No-reference quality score in [0, 1] (quality first): ImageNet EfficientNet-Lite0 "
            "features, head trained on synthetic data only."
        ),
    )
)
register_model(
    ModelEntry(
        name="hirqa-s",
        builder=HiRQA,
        kwargs=HIRQA_CONFIGS["hirqa-s"],
        weights="hirqa-s",
        description="No-reference quality score in [0, 1] (speed first, depthwise-separable).",
    )
)
