"""Planning a batch of distortions: which types (the mix), how strong, where (the masks).

Convention (the rules are argued in docs/engine.md; :mod:`reliqa.distortions.compose` applies
a plan):
    - A sample carries 1–4 distortions of DISTINCT types (:data:`MAX_DISTORTIONS`), each with
      its own intensity in [0, 1] and its own spatial mask from :mod:`reliqa.distortions.masks`.
    - A mix is kept in a fixed application order (:data:`STAGES`: an operation that would hide
      another's evidence goes first).
    - Two distortions of one channel with OPPOSITE signs are never combined: random sampling
      draws at most one distortion per channel, and an explicit mix that pairs opposite signs
      (e.g. blur + sharpen) is refused with :class:`~reliqa.exceptions.InvalidInputError`,
      because their effects do not cancel and no truth value in one channel could describe
      both. Same-sign pairs in an explicit mix add up.

Randomness: every choice is drawn from one CPU ``torch.Generator`` (or an int seed).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from reliqa.attributes import ATTRIBUTES
from reliqa.distortions.catalogue import DISTORTIONS, DistortionType
from reliqa.distortions.masks import random_masks
from reliqa.exceptions import InvalidInputError, UnknownNameError

Catalogue = Mapping[str, DistortionType]
GeneratorLike = torch.Generator | int | None

MAX_DISTORTIONS: int = 4
"""Most distortions one sample carries."""

STAGES: tuple[tuple[str, int | None], ...] = (
    ("structure", None),  # replaces or moves pixels: first, so later changes still show on top
    ("sharpness", -1),  # blur, denoising: remove detail before anything adds some
    ("contrast", None),  # tone changes that shrink or stretch what came before…
    ("saturation", None),  # …so they go before the colour casts and noise they would hide
    ("brightness", None),
    ("temperature", None),
    ("tint", None),
    ("noise", None),  # after tone and colour: a later desaturation or contrast cut would hide it
    ("sharpness", 1),  # sharpening amplifies the noise before it, as in a camera
    ("compression", None),  # coding last: it codes all the damage before it
)
"""Order in which a sample's distortions are applied: (attribute, sign or any). The rule: an
operation that destroys evidence of another (desaturation removes a colour cast or chroma
noise, contrast reduction flattens noise, lost blocks overwrite everything) comes BEFORE it,
so every distortion in a sample stays visible where its truth map says it is."""


def _stage(distortion: DistortionType) -> int:
    for index, (attribute, sign) in enumerate(STAGES):
        if attribute == distortion.attribute and sign in (None, distortion.sign):
            return index
    return len(STAGES)


@dataclass(frozen=True)
class AppliedDistortion:
    """What was done to one sample by one distortion (for printing and JSON).

    ``sign`` is the direction of the change in the TEST relative to the REFERENCE, so it is the
    catalogue's sign flipped when the sample was swapped. ``coverage`` is the mean of the mask.
    """

    type: str
    attribute: str
    sign: int
    intensity: float
    coverage: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict with keys type, attribute, sign, intensity, coverage."""
        return {
            "type": self.type,
            "attribute": self.attribute,
            "sign": self.sign,
            "intensity": round(self.intensity, 6),
            "coverage": round(self.coverage, 6),
        }


@dataclass(frozen=True)
class DistortionPlan:
    """The recipe of a batch: which distortions, how strong, where.

    Attributes:
        types: per sample, the distortion names in application order (1 to S of them).
        intensity: (N, S) intensities in [0, 1]; 0 in unused slots.
        masks: (N, S, H, W) masks in [0, 1]; 0 in unused slots.
    """

    types: tuple[tuple[str, ...], ...]
    intensity: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return len(self.types)

    def scaled(self, level: torch.Tensor) -> DistortionPlan:
        """The same mix and masks with every intensity multiplied by ``level`` (N,)."""
        return replace(self, intensity=self.intensity * level.to(self.intensity)[:, None])

    def coverage(self) -> torch.Tensor:
        """(N, S) mean of each mask."""
        return self.masks.flatten(2).mean(dim=2)


def as_generator(generator: GeneratorLike) -> torch.Generator | None:
    """An int seed becomes a new CPU generator; a generator or None passes through."""
    if generator is None or isinstance(generator, torch.Generator):
        if generator is not None and generator.device.type != "cpu":
            raise InvalidInputError(
                f"generator: the engine draws its choices on CPU; pass a CPU generator or an int "
                f"seed, got a {generator.device.type} generator"
            )
        return generator
    return torch.Generator().manual_seed(int(generator))


def lookup(name: str, catalogue: Catalogue) -> DistortionType:
    try:
        return catalogue[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown distortion type {name!r}; known: {', '.join(sorted(catalogue))}"
        ) from None


def pipeline_order(names: Sequence[str], catalogue: Catalogue | None = None) -> tuple[str, ...]:
    """Sort distortion names into application order (:data:`STAGES`, then catalogue order)."""
    catalogue = DISTORTIONS if catalogue is None else catalogue
    position = {name: index for index, name in enumerate(catalogue)}
    return tuple(sorted(names, key=lambda n: (_stage(lookup(n, catalogue)), position[n])))


def check_mix(names: Sequence[str], catalogue: Catalogue | None = None) -> tuple[str, ...]:
    """Validate an explicit mix of distortion types and return it in application order.

    Raises:
        UnknownNameError: a name is not in the catalogue.
        InvalidInputError: the mix is empty, longer than :data:`MAX_DISTORTIONS`, repeats a
            type, or pairs opposite signs on one attribute channel (see the module docstring).
    """
    catalogue = DISTORTIONS if catalogue is None else catalogue
    if not names:
        raise InvalidInputError("distortion mix: need at least one type")
    if len(names) > MAX_DISTORTIONS:
        raise InvalidInputError(
            f"distortion mix: at most {MAX_DISTORTIONS} types per sample, got {len(names)}"
        )
    if len(set(names)) != len(names):
        raise InvalidInputError(f"distortion mix: a type is repeated in {list(names)}")
    signs: dict[str, tuple[str, int]] = {}
    for name in names:
        distortion = lookup(name, catalogue)
        seen = signs.setdefault(distortion.attribute, (name, distortion.sign))
        if seen[1] != distortion.sign:
            raise InvalidInputError(
                f"distortion mix: {seen[0]!r} and {name!r} change {distortion.attribute!r} in "
                "opposite directions; such pairs are not combined (their truth is ambiguous)"
            )
    return pipeline_order(names, catalogue)


def sample_mixes(
    batch: int,
    *,
    pool: Sequence[str] | None = None,
    max_distortions: int = MAX_DISTORTIONS,
    generator: GeneratorLike = None,
    catalogue: Catalogue | None = None,
    sampling_weights: Mapping[str, float] | None = None,
) -> tuple[tuple[str, ...], ...]:
    """Draw a random mix per sample: 1..max_distortions types on DISTINCT attribute channels.

    The number of types is uniform; the channels are drawn uniformly among those the pool covers
    (so every channel is equally likely, however many types it has), then one type per channel.
    With ``sampling_weights`` the channels are drawn with probability proportional to their
    weights (without replacement), and a type within its channel proportionally to its own.

    Arguments:
        batch: N.
        pool: the types to draw from (default: the whole catalogue).
        max_distortions: at most this many per sample (1..:data:`MAX_DISTORTIONS`).
        generator: CPU generator or int seed.
        sampling_weights: relative weights keyed by attribute channel (the channel's share)
            or by type name (its share within its channel); finite, ≥ 0, 1 where not named.
            Default: every channel and every type alike.

    Returns:
        N tuples of names, each in application order.
    """
    catalogue = DISTORTIONS if catalogue is None else catalogue
    generator = as_generator(generator)
    if not 1 <= max_distortions <= MAX_DISTORTIONS:
        raise InvalidInputError(
            f"max_distortions must be in 1..{MAX_DISTORTIONS}, got {max_distortions}"
        )
    names = list(catalogue) if pool is None else list(dict.fromkeys(pool))
    if not names:
        raise InvalidInputError("pool: need at least one distortion type")
    by_channel: dict[str, list[str]] = {}
    for name in names:
        by_channel.setdefault(lookup(name, catalogue).attribute, []).append(name)
    weights = _sampling_weights(by_channel, sampling_weights)
    channels = [attribute for attribute in ATTRIBUTES if attribute in by_channel]
    most = min(max_distortions, len(channels))
    counts = torch.randint(1, most + 1, (batch,), generator=generator).tolist()
    if weights is not None:
        shares = torch.tensor([weights.get(c, 1.0) for c in channels], dtype=torch.float64)
        drawable = int((shares > 0).sum())
    mixes = []
    for count in counts:
        mix = []
        if weights is None:
            order = torch.randperm(len(channels), generator=generator)[:count].tolist()
            for index in order:
                options = by_channel[channels[index]]
                mix.append(options[int(torch.randint(len(options), (1,), generator=generator))])
        else:
            for index in torch.multinomial(shares, min(count, drawable), generator=generator).tolist():
                options = by_channel[channels[index]]
                within = torch.tensor([weights.get(o, 1.0) for o in options], dtype=torch.float64)
                mix.append(options[int(torch.multinomial(within, 1, generator=generator))])
        mixes.append(pipeline_order(mix, catalogue))
    return tuple(mixes)


def _sampling_weights(
    by_channel: dict[str, list[str]], sampling_weights: Mapping[str, float] | None
) -> dict[str, float] | None:
    """The weights checked against the pool (channel → its types): known names, finite, ≥ 0,
    some channel drawable, and every drawable channel with a drawable type."""
    if sampling_weights is None:
        return None
    known = set(by_channel).union(*by_channel.values())
    unknown = sorted(set(sampling_weights) - known)
    if unknown:
        raise UnknownNameError(
            f"sampling_weights: {', '.join(unknown)} is neither a type of the pool nor one of "
            f"its attribute channels ({', '.join(sorted(by_channel))})"
        )
    weights = {key: float(value) for key, value in sampling_weights.items()}
    bad = {
        key: value for key, value in weights.items() if not (math.isfinite(value) and value >= 0)
    }
    if bad:
        raise InvalidInputError(f"sampling_weights must be finite and ≥ 0, got {bad}")
    drawable = [channel for channel in by_channel if weights.get(channel, 1.0) > 0]
    if not drawable:
        raise InvalidInputError("sampling_weights: every attribute channel weighs 0")
    for channel in drawable:
        if all(weights.get(name, 1.0) == 0 for name in by_channel[channel]):
            raise InvalidInputError(
                f"sampling_weights: channel {channel!r} can be drawn but all its types weigh 0"
            )
    return weights


def sample_plan(
    batch: int,
    height: int,
    width: int,
    *,
    mix: Sequence[str] | None = None,
    pool: Sequence[str] | None = None,
    max_distortions: int = MAX_DISTORTIONS,
    intensity_range: tuple[float, float] = (0.1, 1.0),
    mask_families: Sequence[str] | dict[str, float] | None = None,
    generator: GeneratorLike = None,
    device: torch.device | str | None = None,
    catalogue: Catalogue | None = None,
    sampling_weights: Mapping[str, float] | None = None,
) -> DistortionPlan:
    """Draw a recipe for N samples: mixes, intensities and masks.

    Arguments:
        batch, height, width: N, H, W.
        mix: apply exactly these types to every sample (validated by :func:`check_mix`);
            default: a random mix per sample from ``pool`` (:func:`sample_mixes`).
        pool, max_distortions, sampling_weights: see :func:`sample_mixes`.
        intensity_range: intensities are uniform in this range, within [0, 1].
        mask_families: see :func:`~reliqa.distortions.masks.random_masks`.
        generator: CPU generator or int seed.
        device: where the masks live.

    Returns:
        A :class:`DistortionPlan` with S = the longest mix.
    """
    catalogue = DISTORTIONS if catalogue is None else catalogue
    generator = as_generator(generator)
    low, high = intensity_range
    if not 0.0 <= low <= high <= 1.0:
        raise InvalidInputError(f"intensity_range must satisfy 0 ≤ low ≤ high ≤ 1, got {intensity_range}")
    if mix is not None:
        mixes = (check_mix(list(mix), catalogue),) * batch
    else:
        mixes = sample_mixes(
            batch, pool=pool, max_distortions=max_distortions, generator=generator,
            catalogue=catalogue, sampling_weights=sampling_weights,
        )
    slots = max(len(m) for m in mixes)
    used = torch.tensor([[j < len(m) for j in range(slots)] for m in mixes])
    intensity = low + (high - low) * torch.rand(batch, slots, generator=generator)
    intensity = torch.where(used, intensity, torch.zeros(()))
    masks = torch.zeros(batch, slots, height, width, device=device)
    masks[used.to(masks.device)] = random_masks(
        int(used.sum()), height, width, families=mask_families, generator=generator, device=device
    )[:, 0]
    return DistortionPlan(types=mixes, intensity=intensity.to(masks.device), masks=masks)


__all__ = [
    "MAX_DISTORTIONS",
    "STAGES",
    "AppliedDistortion",
    "Catalogue",
    "DistortionPlan",
    "GeneratorLike",
    "as_generator",
    "check_mix",
    "lookup",
    "pipeline_order",
    "sample_mixes",
    "sample_plan",
]
