"""Spatial masks: range, smoothness, seeds, scales, odd sizes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from reliqa.distortions.masks import (
    MASK_FAMILIES,
    MIN_CELL_PIXELS,
    fractal_noise,
    half_frame_mask,
    perlin_noise,
    random_masks,
    rectangle_mask,
    threshold_noise,
)
from reliqa.exceptions import InvalidInputError, UnknownNameError


def _masks(family: str, seed: int, batch: int = 12, size: tuple[int, int] = (256, 256)) -> torch.Tensor:
    return random_masks(batch, *size, families=[family], generator=torch.Generator().manual_seed(seed))


def _steepest_step(masks: torch.Tensor) -> float:
    return max(
        float(masks.diff(dim=-1).abs().max()), float(masks.diff(dim=-2).abs().max())
    )


@pytest.mark.parametrize("family", MASK_FAMILIES)
def test_masks_lie_in_unit_range_with_exact_zeros_and_ones(family: str) -> None:
    masks = _masks(family, seed=1)
    assert masks.shape == (12, 1, 256, 256)
    assert masks.dtype == torch.float32
    assert float(masks.min()) >= 0.0 and float(masks.max()) <= 1.0
    assert bool((masks == 1.0).any())
    if family != "full":
        assert bool((masks == 0.0).any()), "masks need exact zeros for truth = 0.5"


@pytest.mark.parametrize("family", MASK_FAMILIES)
def test_masks_are_smooth(family: str) -> None:
    # Soft edges are ≥ 2 % of the short side (5.1 px at 256), smoothstep's slope is ≤ 1.5:
    # no step between neighbours above 1.5 / 5.12 ≈ 0.29.
    assert _steepest_step(_masks(family, seed=2)) <= 1.5 / (0.02 * 256) + 1e-4


def test_noise_mask_slope_bound_holds_for_any_feather() -> None:
    noise = fractal_noise(4, 96, 80, 6.0, generator=torch.Generator().manual_seed(0))
    for feather in (2.0, 5.0, 12.0):
        mask = threshold_noise(noise, 0.5, feather)
        assert _steepest_step(mask) <= 1.5 / feather + 1e-5


def test_same_seed_same_masks_other_seed_other_masks() -> None:
    first = random_masks(16, 64, 48, generator=torch.Generator().manual_seed(7))
    again = random_masks(16, 64, 48, generator=torch.Generator().manual_seed(7))
    other = random_masks(16, 64, 48, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_coverage_and_scale_differ_between_families() -> None:
    coverage = {family: _masks(family, seed=3, batch=24).mean(dim=(1, 2, 3)) for family in MASK_FAMILIES}
    assert torch.equal(coverage["full"], torch.ones(24))
    assert float(coverage["blobs"].mean()) < float(coverage["fractal"].mean())
    for family in ("fractal", "blobs", "rectangle", "ellipse", "half"):
        assert float(coverage[family].std()) > 0.03, f"{family}: coverage should vary per sample"

    def pieces(family: str) -> float:
        masks = _masks(family, seed=4, batch=16)
        return sum(ndimage.label(m[0].numpy() > 0.5)[1] for m in masks) / len(masks)

    # Small blobs: many separate pieces; large fractal regions: few.
    assert pieces("blobs") > 2 * pieces("fractal")
    assert pieces("ellipse") == 1


def test_perlin_noise_is_bounded_and_finer_with_more_cells() -> None:
    generator = torch.Generator().manual_seed(0)
    coarse = perlin_noise(8, 128, 128, 2.0, generator=generator)
    fine = perlin_noise(8, 128, 128, 8.0, generator=generator)
    assert float(coarse.abs().max()) <= math.sqrt(0.5) + 1e-5
    assert float(fine.abs().max()) <= math.sqrt(0.5) + 1e-5
    # 4× more cells → roughly 4× steeper field.
    ratio = float(fine.diff(dim=-1).abs().mean()) / float(coarse.diff(dim=-1).abs().mean())
    assert 2.5 < ratio < 6.0


def test_fractal_noise_is_standardised_and_skips_too_fine_octaves() -> None:
    noise = fractal_noise(4, 64, 64, 3.0, generator=torch.Generator().manual_seed(0))
    flat = noise.flatten(1)
    torch.testing.assert_close(flat.mean(dim=1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(dim=1, correction=0), torch.ones(4), atol=1e-4, rtol=0)
    assert 64 / MIN_CELL_PIXELS == 4  # octaves at 6 and 12 cells are finer than that: left out
    three = fractal_noise(1, 64, 64, 3.0, octaves=3, generator=torch.Generator().manual_seed(0))
    one = fractal_noise(1, 64, 64, 3.0, octaves=1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(three, one, atol=1e-5, rtol=0)


def test_region_masks_follow_their_geometry() -> None:
    feather = torch.tensor([4.0])
    rectangle = rectangle_mask(
        64, 64, torch.tensor([[32.0, 32.0]]), torch.tensor([[10.0, 20.0]]), feather
    )[0, 0]
    assert float(rectangle[32, 32]) == 1.0 and float(rectangle[5, 5]) == 0.0
    assert float(rectangle[32, 55]) == 0.0 and float(rectangle[32, 48]) == 1.0
    right = half_frame_mask(10, 20, torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([2.0]))[0, 0]
    assert bool((right[:, -1] == 1.0).all()) and bool((right[:, 0] == 0.0).all())


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 37),
    width=st.integers(1, 37),
    family=st.sampled_from(MASK_FAMILIES),
    seed=st.integers(0, 2**31),
)
def test_any_size_works(height: int, width: int, family: str, seed: int) -> None:
    masks = random_masks(3, height, width, families=[family], generator=torch.Generator().manual_seed(seed))
    assert masks.shape == (3, 1, height, width)
    assert bool(torch.isfinite(masks).all())
    assert float(masks.min()) >= 0.0 and float(masks.max()) <= 1.0


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(InvalidInputError, match="positive"):
        random_masks(0, 8, 8)
    with pytest.raises(UnknownNameError, match="stripes"):
        random_masks(2, 8, 8, families=["stripes"])
    with pytest.raises(InvalidInputError, match="positive weight"):
        random_masks(2, 8, 8, families={"full": 0.0})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_masks_match_cpu_masks() -> None:
    cpu = random_masks(8, 64, 96, generator=torch.Generator().manual_seed(5))
    gpu = random_masks(8, 64, 96, generator=torch.Generator().manual_seed(5), device="cuda")
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)


def test_coarse_noise_grid_matches_the_full_grid() -> None:
    full = fractal_noise(4, 128, 96, 4.0, step=1, generator=torch.Generator().manual_seed(2))
    coarse = fractal_noise(4, 128, 96, 4.0, step=4, generator=torch.Generator().manual_seed(2))
    assert coarse.shape == full.shape
    # Same random field sampled more sparsely: equal up to bilinear interpolation error (in
    # noise standard deviations; largest at the border, where bilinear upsampling holds the edge
    # sample instead of extrapolating).
    error = (coarse - full).abs()
    assert float(error.mean()) < 0.06
    assert float(error[..., 8:-8, 8:-8].max()) < 0.3
