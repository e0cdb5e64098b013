"""Composition: (reference, test, truth map) triplets and ordinal sets from clean images.

Convention (the rules are argued in docs/engine.md):
    - A sample carries 1–4 distortions of DISTINCT types. Each has its own intensity in [0, 1]
      and its own spatial mask (N, 1, H, W) from :mod:`reliqa.distortions.masks`.
    - Distortions are applied one after the other in a fixed order (:data:`STAGES`: an
      operation that would hide another's evidence goes first), each as
      ``x ← clip(lerp(x, d(x), mask))``: where a mask is 0 the pixel is left exactly as it was.
    - Truth maps follow docs/design.md: ``t_c = clip(0.5 + 0.5 · Σ sign · intensity · mask)`` over the
      distortions of attribute c, so t is exactly 0.5 where every mask of that channel is 0.
    - Two distortions of one channel with OPPOSITE signs are never combined: random sampling
      draws at most one distortion per channel, and an explicit mix that pairs opposite signs
      (e.g. blur + sharpen) is refused with :class:`~reliqa.exceptions.InvalidInputError`,
      because their effects do not cancel (blur then sharpen is not the identity) and no truth
      value in one channel could describe both. Same-sign pairs in an explicit mix add up.
    - Swap: with probability ``p_swap`` a sample comes back with reference and test exchanged
      and truth ``1 − t``; its distortions' signs are then reported flipped.

Randomness: every choice is drawn from one CPU ``torch.Generator`` (or an int seed); the
catalogue's own noise is drawn from that generator on CPU, or from a generator seeded by it on
another device. On CPU a seed gives bit-identical output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from reliqa.attributes import ATTRIBUTE_INDEX, ATTRIBUTES, NEUTRAL, NUM_ATTRIBUTES
from reliqa.checks import check_tensor_image
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


@dataclass(frozen=True)
class DistortedBatch:
    """Triplets made by :func:`distort`.

    Attributes:
        reference: (N, 3, H, W) float32 in [0, 1].
        test: (N, 3, H, W) float32 in [0, 1].
        truth: (N, 9, H, W) float32 truth maps in [0, 1], channel order ``ATTRIBUTES``.
        distortions: per sample, what was applied (signs relative to ``reference``).
        swapped: (N,) bool, True where reference and test were exchanged.
        plan: the recipe (masks included) in the un-swapped direction.
    """

    reference: torch.Tensor
    test: torch.Tensor
    truth: torch.Tensor
    distortions: tuple[tuple[AppliedDistortion, ...], ...]
    swapped: torch.Tensor
    plan: DistortionPlan = field(repr=False)

    def __len__(self) -> int:
        return self.reference.shape[0]


@dataclass(frozen=True)
class OrdinalSet:
    """K versions of each reference with one mix and one set of masks at rising intensity.

    Attributes:
        reference: (B, 3, H, W).
        versions: (B, K, 3, H, W), version k distorted at ``levels[:, k]`` × each distortion's
            intensity in ``distortions``.
        levels: (B, K) strictly rising in (0, 1].
        truth: (B, K, 9, H, W) truth maps of each version against the reference.
        distortions: per reference, the mix at level 1 (the strongest possible version).
        plan: the recipe at level 1.
    """

    reference: torch.Tensor
    versions: torch.Tensor
    levels: torch.Tensor
    truth: torch.Tensor
    distortions: tuple[tuple[AppliedDistortion, ...], ...]
    plan: DistortionPlan = field(repr=False)


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


def _device_generator(
    generator: torch.Generator | None, device: torch.device
) -> torch.Generator | None:
    """The generator to hand to catalogue operations that run on ``device``.

    A seed is drawn on every device, so the later draws (e.g. the swap) are the same on CPU and
    GPU; on CPU the operations then share ``generator`` itself.
    """
    if generator is None:
        return None
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    if device.type == "cpu":
        return generator
    return torch.Generator(device=device).manual_seed(seed)


def _lookup(name: str, catalogue: Catalogue) -> DistortionType:
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
    return tuple(sorted(names, key=lambda n: (_stage(_lookup(n, catalogue)), position[n])))


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
        distortion = _lookup(name, catalogue)
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
) -> tuple[tuple[str, ...], ...]:
    """Draw a random mix per sample: 1..max_distortions types on DISTINCT attribute channels.

    The number of types is uniform; the channels are drawn uniformly among those the pool covers
    (so every channel is equally likely, however many types it has), then one type per channel.

    Arguments:
        batch: N.
        pool: the types to draw from (default: the whole catalogue).
        max_distortions: at most this many per sample (1..:data:`MAX_DISTORTIONS`).
        generator: CPU generator or int seed.

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
        by_channel.setdefault(_lookup(name, catalogue).attribute, []).append(name)
    channels = [attribute for attribute in ATTRIBUTES if attribute in by_channel]
    most = min(max_distortions, len(channels))
    counts = torch.randint(1, most + 1, (batch,), generator=generator).tolist()
    mixes = []
    for count in counts:
        order = torch.randperm(len(channels), generator=generator)[:count].tolist()
        mix = []
        for index in order:
            options = by_channel[channels[index]]
            mix.append(options[int(torch.randint(len(options), (1,), generator=generator))])
        mixes.append(pipeline_order(mix, catalogue))
    return tuple(mixes)


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
) -> DistortionPlan:
    """Draw a recipe for N samples: mixes, intensities and masks.

    Arguments:
        batch, height, width: N, H, W.
        mix: apply exactly these types to every sample (validated by :func:`check_mix`);
            default: a random mix per sample from ``pool`` (:func:`sample_mixes`).
        pool, max_distortions: see :func:`sample_mixes`.
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
            catalogue=catalogue,
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


def _check_images(images: torch.Tensor, name: str = "reference") -> None:
    # the one input check (reliqa.checks): shape, float dtype, finite, values in [0, 1]
    check_tensor_image(images, name, channels=(3,))


def _check_plan(images: torch.Tensor, plan: DistortionPlan) -> None:
    n, _, h, w = images.shape
    if len(plan) != n or tuple(plan.masks.shape[-2:]) != (h, w):
        raise InvalidInputError(
            f"plan for {len(plan)} samples of {tuple(plan.masks.shape[-2:])} does not fit "
            f"images of shape {tuple(images.shape)}"
        )


def apply_plan(
    reference: torch.Tensor,
    plan: DistortionPlan,
    *,
    generator: GeneratorLike = None,
    catalogue: Catalogue | None = None,
) -> torch.Tensor:
    """Apply a recipe to a batch (batched per distortion type, in pipeline order).

    Arguments:
        reference: (N, 3, H, W) float in [0, 1].
        plan: recipe for N samples of size (H, W).
        generator: CPU generator or int seed for the distortions' own randomness.

    Returns:
        (N, 3, H, W) test images in [0, 1]; exactly ``reference`` where all masks are 0.
    """
    catalogue = DISTORTIONS if catalogue is None else catalogue
    _check_images(reference)
    _check_plan(reference, plan)
    op_generator = _device_generator(as_generator(generator), reference.device)
    positions: dict[str, tuple[list[int], list[int]]] = {}
    for row, mix in enumerate(plan.types):
        for slot, name in enumerate(mix):
            rows, slots = positions.setdefault(name, ([], []))
            rows.append(row)
            slots.append(slot)
    # Every mix is in pipeline order, so visiting the types in pipeline order applies each
    # sample's distortions in its own order while batching all samples that share a type.
    test = reference.clone()
    for name in pipeline_order(list(positions), catalogue):
        row_index, slot_index = (torch.tensor(v, device=reference.device) for v in positions[name])
        before = test[row_index]  # a copy (advanced indexing), safe to blend in place
        after = catalogue[name].apply(before, plan.intensity[row_index, slot_index], op_generator)
        mask = plan.masks[row_index, slot_index][:, None].to(before)
        test[row_index] = before.lerp_(after.to(before), mask).clamp_(0.0, 1.0)
    return test


def truth_maps(plan: DistortionPlan, catalogue: Catalogue | None = None) -> torch.Tensor:
    """Truth maps of a recipe (docs/design.md): ``clip(0.5 + 0.5 · Σ sign · intensity · mask)``.

    Returns:
        (N, 9, H, W) float32 in [0, 1]; exactly 0.5 wherever a channel has no mask weight.
    """
    catalogue = DISTORTIONS if catalogue is None else catalogue
    n, slots, h, w = plan.masks.shape
    device = plan.masks.device
    truth = torch.full((n, NUM_ATTRIBUTES, h, w), NEUTRAL, device=device)
    for slot in range(slots):
        # Each sample appears once per slot, so the indexed add below never collides.
        rows = [row for row, mix in enumerate(plan.types) if slot < len(mix)]
        entries = [_lookup(plan.types[row][slot], catalogue) for row in rows]
        rows_t = torch.tensor(rows, device=device)
        channels = torch.tensor([ATTRIBUTE_INDEX[e.attribute] for e in entries], device=device)
        signs = torch.tensor([float(e.sign) for e in entries], device=device)
        weight = (0.5 * signs * plan.intensity[rows_t, slot]).view(-1, 1, 1)
        truth[rows_t, channels] += weight * plan.masks[rows_t, slot]
    stacked = any(
        len({_lookup(name, catalogue).attribute for name in mix}) < len(mix) for mix in plan.types
    )
    # One distortion per channel stays within [0, 1] by itself; only stacked ones can leave it.
    return truth.clamp_(0.0, 1.0) if stacked else truth


def describe_plan(
    plan: DistortionPlan,
    swapped: torch.Tensor | None = None,
    catalogue: Catalogue | None = None,
) -> tuple[tuple[AppliedDistortion, ...], ...]:
    """Per-sample :class:`AppliedDistortion` records (signs flipped where ``swapped``)."""
    catalogue = DISTORTIONS if catalogue is None else catalogue
    intensity = plan.intensity.tolist()
    coverage = plan.coverage().tolist()
    flips = [False] * len(plan) if swapped is None else swapped.tolist()
    return tuple(
        tuple(
            AppliedDistortion(
                type=name,
                attribute=_lookup(name, catalogue).attribute,
                sign=-_lookup(name, catalogue).sign if flips[row] else _lookup(name, catalogue).sign,
                intensity=float(intensity[row][slot]),
                coverage=float(coverage[row][slot]),
            )
            for slot, name in enumerate(mix)
        )
        for row, mix in enumerate(plan.types)
    )


def distort(
    reference: torch.Tensor,
    *,
    plan: DistortionPlan | None = None,
    mix: Sequence[str] | None = None,
    pool: Sequence[str] | None = None,
    max_distortions: int = MAX_DISTORTIONS,
    intensity_range: tuple[float, float] = (0.1, 1.0),
    mask_families: Sequence[str] | dict[str, float] | None = None,
    p_swap: float = 0.25,
    generator: GeneratorLike = None,
    catalogue: Catalogue | None = None,
) -> DistortedBatch:
    """Make (reference, test, truth) triplets from clean images.

    Arguments:
        reference: (N, 3, H, W) clean images, float in [0, 1], on any device.
        plan: a ready recipe; default: drawn with :func:`sample_plan` from ``mix`` / ``pool`` /
            ``max_distortions`` / ``intensity_range`` / ``mask_families``.
        p_swap: probability that a sample is returned swapped (test ↔ reference, truth 1 − t).
        generator: CPU generator or int seed; with a seed the result is reproducible (bitwise
            on CPU). The swap flags are drawn for every sample whatever ``p_swap`` is, so
            ``p_swap`` never changes the other draws.

    Returns:
        A :class:`DistortedBatch`.

    Example:
        >>> batch = distort(torch.rand(2, 3, 16, 16), generator=0)
        >>> batch.truth.shape
        torch.Size([2, 9, 16, 16])
    """
    catalogue = DISTORTIONS if catalogue is None else catalogue
    _check_images(reference)
    if not 0.0 <= p_swap <= 1.0:
        raise InvalidInputError(f"p_swap must lie in [0, 1], got {p_swap}")
    generator = as_generator(generator)
    n, _, h, w = reference.shape
    if plan is None:
        plan = sample_plan(
            n, h, w, mix=mix, pool=pool, max_distortions=max_distortions,
            intensity_range=intensity_range, mask_families=mask_families, generator=generator,
            device=reference.device, catalogue=catalogue,
        )
    # Drawn before the operations, which may consume the generator differently per device.
    swapped = torch.rand(n, generator=generator) < p_swap
    test = apply_plan(reference, plan, generator=generator, catalogue=catalogue)
    truth = truth_maps(plan, catalogue)
    if bool(swapped.any()):
        # Touch only the swapped rows (a full torch.where would rewrite all nine truth channels).
        rows = swapped.nonzero().flatten().to(reference.device)
        clean = reference[rows]
        reference = reference.clone()
        reference[rows] = test[rows]
        test[rows] = clean
        truth[rows] = 1.0 - truth[rows]
    return DistortedBatch(
        reference=reference,
        test=test,
        truth=truth,
        distortions=describe_plan(plan, swapped, catalogue),
        swapped=swapped,
        plan=plan,
    )


def ordinal_levels(
    batch: int, levels: int, *, lowest: float = 0.15, generator: GeneratorLike = None
) -> torch.Tensor:
    """(B, K) strictly rising levels in (0, 1]: one jittered level in each of K equal bins of
    [lowest, 1], kept away from the bin edges so neighbours differ by ≥ 0.2 · bin width."""
    if levels < 1:
        raise InvalidInputError(f"levels must be ≥ 1, got {levels}")
    if not 0.0 < lowest < 1.0:
        raise InvalidInputError(f"lowest must lie in (0, 1), got {lowest}")
    jitter = 0.1 + 0.8 * torch.rand(batch, levels, generator=as_generator(generator))
    bins = torch.arange(levels, dtype=torch.float32)[None] + jitter
    return lowest + (1.0 - lowest) * bins / levels


def ordinal_set(
    reference: torch.Tensor,
    levels: int = 4,
    *,
    mix: Sequence[str] | None = None,
    pool: Sequence[str] | None = None,
    max_distortions: int = MAX_DISTORTIONS,
    intensity_range: tuple[float, float] = (0.5, 1.0),
    mask_families: Sequence[str] | dict[str, float] | None = None,
    lowest_level: float = 0.15,
    generator: GeneratorLike = None,
    catalogue: Catalogue | None = None,
) -> OrdinalSet:
    """K versions per reference: one mix, one set of masks, strictly rising intensity.

    Version k of reference b applies each distortion at ``levels[b, k]`` × its drawn intensity,
    and every version uses the SAME random stream for the distortions' own randomness (same
    noise pattern, same lost blocks), so only the strength changes between versions.

    Arguments:
        reference: (B, 3, H, W) clean images in [0, 1].
        levels: K ≥ 1.
        intensity_range: range of the level-1 intensities (higher than for triplets, so the
            weakest version is still visible).
        lowest_level: levels are spread over [lowest_level, 1].
        mix, pool, max_distortions, mask_families, generator: as in :func:`distort`.

    Returns:
        An :class:`OrdinalSet` (no swapping: the reference stays the reference).
    """
    catalogue = DISTORTIONS if catalogue is None else catalogue
    _check_images(reference)
    generator = as_generator(generator)
    b, _, h, w = reference.shape
    plan = sample_plan(
        b, h, w, mix=mix, pool=pool, max_distortions=max_distortions,
        intensity_range=intensity_range, mask_families=mask_families, generator=generator,
        device=reference.device, catalogue=catalogue,
    )
    level = ordinal_levels(b, levels, lowest=lowest_level, generator=generator)
    stream_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    versions, truths = [], []
    for k in range(levels):
        version_plan = plan.scaled(level[:, k])
        stream = torch.Generator().manual_seed(stream_seed)
        versions.append(apply_plan(reference, version_plan, generator=stream, catalogue=catalogue))
        truths.append(truth_maps(version_plan, catalogue))
    return OrdinalSet(
        reference=reference,
        versions=torch.stack(versions, dim=1),
        levels=level,
        truth=torch.stack(truths, dim=1),
        distortions=describe_plan(plan, catalogue=catalogue),
        plan=plan,
    )


def distort_image(
    image: torch.Tensor,
    count: int = 1,
    *,
    mix: Sequence[str] | None = None,
    seed: int | None = 0,
    chunk: int = 8,
    catalogue: Catalogue | None = None,
) -> list[DistortedBatch]:
    """``count`` distorted versions of one image (never swapped), in chunks of ``chunk``.

    Arguments:
        image: (1, 3, H, W) float in [0, 1].
        count: number of versions (≥ 1).
        mix: apply exactly these types to every version; default a random mix each.
        seed: reproducible with the same seed (None: torch's global generator).

    Returns:
        Batches whose lengths add up to ``count``.
    """
    _check_images(image, "image")
    if image.shape[0] != 1:
        raise InvalidInputError(f"image: expected one image (1, 3, H, W), got {tuple(image.shape)}")
    if count < 1:
        raise InvalidInputError(f"count must be ≥ 1, got {count}")
    generator = as_generator(seed)
    batches = []
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        batches.append(
            distort(
                image.expand(size, -1, -1, -1), mix=mix, p_swap=0.0, generator=generator,
                catalogue=catalogue,
            )
        )
    return batches


__all__ = [
    "MAX_DISTORTIONS",
    "STAGES",
    "AppliedDistortion",
    "DistortedBatch",
    "DistortionPlan",
    "OrdinalSet",
    "apply_plan",
    "as_generator",
    "check_mix",
    "describe_plan",
    "distort",
    "distort_image",
    "ordinal_levels",
    "ordinal_set",
    "pipeline_order",
    "sample_mixes",
    "sample_plan",
    "truth_maps",
]
