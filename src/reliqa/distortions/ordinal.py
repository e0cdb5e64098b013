"""Ordinal sets: K versions of each reference with one mix and one set of masks at rising
intensity, so the order of their quality is known without any human label (docs/engine.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from reliqa.checks import check_tensor_image
from reliqa.distortions.catalogue import DISTORTIONS
from reliqa.distortions.compose import apply_plan, describe_plan, truth_maps
from reliqa.distortions.plan import (
    MAX_DISTORTIONS,
    AppliedDistortion,
    Catalogue,
    DistortionPlan,
    GeneratorLike,
    as_generator,
    sample_plan,
)
from reliqa.exceptions import InvalidInputError


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
    sampling_weights: Mapping[str, float] | None = None,
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
        mix, pool, max_distortions, mask_families, generator, sampling_weights: as in
            :func:`distort`.

    Returns:
        An :class:`OrdinalSet` (no swapping: the reference stays the reference).
    """
    catalogue = DISTORTIONS if catalogue is None else catalogue
    check_tensor_image(reference, "reference", channels=(3,))
    generator = as_generator(generator)
    b, _, h, w = reference.shape
    plan = sample_plan(
        b, h, w, mix=mix, pool=pool, max_distortions=max_distortions,
        intensity_range=intensity_range, mask_families=mask_families, generator=generator,
        device=reference.device, catalogue=catalogue, sampling_weights=sampling_weights,
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


__all__ = ["OrdinalSet", "ordinal_levels", "ordinal_set"]
