"""Composition: (reference, test, truth map) triplets from clean images and a plan.

Convention (the rules are argued in docs/engine.md; what a plan may hold — at most four
distortions of distinct types, never opposite signs on one channel — is
:mod:`reliqa.distortions.plan`):
    - Distortions are applied one after the other in the plan's order (:data:`STAGES
      <reliqa.distortions.plan.STAGES>`), each as ``x ← clip(lerp(x, d(x), mask))``: where a
      mask is 0 the pixel is left exactly as it was.
    - Truth maps follow docs/design.md: ``t_c = clip(0.5 + 0.5 · Σ sign · intensity · mask)`` over the
      distortions of attribute c, so t is exactly 0.5 where every mask of that channel is 0.
    - Swap: with probability ``p_swap`` a sample comes back with reference and test exchanged
      and truth ``1 − t``; its distortions' signs are then reported flipped.

Randomness: every choice is drawn from one CPU ``torch.Generator`` (or an int seed); the
catalogue's own noise is drawn from that generator on CPU, or from a generator seeded by it on
another device. On CPU a seed gives bit-identical output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from reliqa.attributes import ATTRIBUTE_INDEX, NEUTRAL, NUM_ATTRIBUTES
from reliqa.checks import check_tensor_image
from reliqa.distortions.catalogue import DISTORTIONS
from reliqa.distortions.plan import (
    MAX_DISTORTIONS,
    AppliedDistortion,
    Catalogue,
    DistortionPlan,
    GeneratorLike,
    as_generator,
    lookup,
    pipeline_order,
    sample_plan,
)
from reliqa.exceptions import InvalidInputError


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
    check_tensor_image(reference, "reference", channels=(3,))
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
        entries = [lookup(plan.types[row][slot], catalogue) for row in rows]
        rows_t = torch.tensor(rows, device=device)
        channels = torch.tensor([ATTRIBUTE_INDEX[e.attribute] for e in entries], device=device)
        signs = torch.tensor([float(e.sign) for e in entries], device=device)
        weight = (0.5 * signs * plan.intensity[rows_t, slot]).view(-1, 1, 1)
        truth[rows_t, channels] += weight * plan.masks[rows_t, slot]
    stacked = any(
        len({lookup(name, catalogue).attribute for name in mix}) < len(mix) for mix in plan.types
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
                attribute=lookup(name, catalogue).attribute,
                sign=-lookup(name, catalogue).sign if flips[row] else lookup(name, catalogue).sign,
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
    sampling_weights: Mapping[str, float] | None = None,
) -> DistortedBatch:
    """Make (reference, test, truth) triplets from clean images.

    Arguments:
        reference: (N, 3, H, W) clean images, float in [0, 1], on any device.
        plan: a ready recipe; default: drawn with :func:`sample_plan` from ``mix`` / ``pool`` /
            ``max_distortions`` / ``intensity_range`` / ``mask_families`` / ``sampling_weights``
            (relative sampling weights of types, :func:`~reliqa.distortions.plan.sample_mixes`).
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
    check_tensor_image(reference, "reference", channels=(3,))
    if not 0.0 <= p_swap <= 1.0:
        raise InvalidInputError(f"p_swap must lie in [0, 1], got {p_swap}")
    generator = as_generator(generator)
    n, _, h, w = reference.shape
    if plan is None:
        plan = sample_plan(
            n, h, w, mix=mix, pool=pool, max_distortions=max_distortions,
            intensity_range=intensity_range, mask_families=mask_families, generator=generator,
            device=reference.device, catalogue=catalogue, sampling_weights=sampling_weights,
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
    check_tensor_image(image, "image", channels=(3,))
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
    "DistortedBatch",
    "apply_plan",
    "describe_plan",
    "distort",
    "distort_image",
    "truth_maps",
]
