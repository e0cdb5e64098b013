"""The distortion catalogue: every type keeps shape and range, is the identity at intensity 0,
is deterministic under a seeded generator, grows monotonically with intensity, moves its
attribute channel in its declared direction, honours per-sample intensities, and survives odd
image sizes. Images: scikit-image's bundled photos reduced to 64 × 64."""

from __future__ import annotations

import io

import kornia
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from reliqa.attributes import ATTRIBUTES
from reliqa.distortions import (
    DISTORTIONS,
    DistortionType,
    apply_distortion,
    get_distortion,
    list_distortions,
)
from reliqa.exceptions import InvalidInputError, UnknownNameError
from reliqa.io import load_image

NAMES = list(DISTORTIONS)

# Channels whose truth can point both ways from a clean reference; the engine cannot make a
# clean photo cleaner, so noise, compression and structure only go up (their '−' comes from
# swapping test and reference).
BIDIRECTIONAL = {"brightness", "contrast", "saturation", "temperature", "tint", "sharpness"}
UPWARD_ONLY = {"noise", "compression", "structure"}

# Types whose output depends on the generator; the others must ignore it.
RANDOM_TYPES = {
    "motion_blur",
    "gaussian_noise",
    "chroma_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "jitter",
    "lost_blocks",
}


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    """astronaut, coffee, chelsea: centre square, area-reduced to (3, 3, 64, 64)."""
    from skimage import data

    batch = []
    for name in ("astronaut", "coffee", "chelsea"):
        image = load_image(getattr(data, name)())
        h, w = image.shape[-2:]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = image[..., top : top + side, left : left + side]
        batch.append(F.interpolate(square, size=(64, 64), mode="area"))
    return torch.cat(batch).clamp(0.0, 1.0)


def seeded(seed: int = 1234) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(
    name: str, images: torch.Tensor, intensity: float | torch.Tensor, seed: int = 1234
) -> torch.Tensor:
    return apply_distortion(name, images, intensity, seeded(seed))


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).mean(dim=(1, 2, 3))


# ---- proxies: a simple measurement per attribute; (test, reference) -> (N,) --------------------


def _luma(x: torch.Tensor) -> torch.Tensor:
    return kornia.color.rgb_to_ycbcr(x)[:, :1]


def mean_luma(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return _luma(test).mean(dim=(1, 2, 3))


def luma_std(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return _luma(test).std(dim=(1, 2, 3))


def chroma(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    lab = kornia.color.rgb_to_lab(test)
    return lab[:, 1:].pow(2).sum(dim=1).sqrt().mean(dim=(1, 2))


def red_minus_blue(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return (test[:, 0] - test[:, 2]).mean(dim=(1, 2))


def magenta_minus_green(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return ((test[:, 0] + test[:, 2]) / 2 - test[:, 1]).mean(dim=(1, 2))


def high_frequency_energy(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return kornia.filters.laplacian(_luma(test), 3).pow(2).mean(dim=(1, 2, 3))


def noise_residual(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return (test - kornia.filters.median_blur(test, 3)).pow(2).mean(dim=(1, 2, 3))


def coding_loss(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Minus the PNG size: lossy coding throws information away, so the lossless size falls."""
    sizes = []
    for image in test:
        buffer = io.BytesIO()
        pixels = image.mul(255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(buffer, format="PNG")
        sizes.append(-float(len(buffer.getvalue())))
    return torch.tensor(sizes)


def blockiness(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean jump across 8-px block boundaries over the mean jump elsewhere (both directions)."""
    y = _luma(test)[:, 0] * 255
    dx = (y[:, :, 1:] - y[:, :, :-1]).abs()
    dy = (y[:, 1:, :] - y[:, :-1, :]).abs()
    on_x = torch.zeros(dx.shape[-1], dtype=torch.bool)
    on_x[7::8] = True
    on_y = torch.zeros(dy.shape[-2], dtype=torch.bool)
    on_y[7::8] = True
    boundary = dx[:, :, on_x].mean(dim=(1, 2)) + dy[:, on_y, :].mean(dim=(1, 2))
    inside = dx[:, :, ~on_x].mean(dim=(1, 2)) + dy[:, ~on_y, :].mean(dim=(1, 2))
    return boundary / (inside + 1e-6)


def equal_neighbours(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels equal to their right-hand neighbour (mosaic cells)."""
    return (test[..., 1:] == test[..., :-1]).all(dim=1).float().mean(dim=(1, 2))


def flat_pixels(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Fraction of pixels whose 3 × 3 neighbourhood is one flat colour (lost blocks)."""
    spread = F.max_pool2d(test, 3, 1) + F.max_pool2d(-test, 3, 1)
    return (spread.amax(dim=1) == 0).float().mean(dim=(1, 2))


def structural_dissimilarity(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return 1.0 - kornia.metrics.ssim(test, reference, 7).mean(dim=(1, 2, 3))


ATTRIBUTE_PROXIES = {
    "brightness": mean_luma,
    "contrast": luma_std,
    "saturation": chroma,
    "temperature": red_minus_blue,
    "tint": magenta_minus_green,
    "sharpness": high_frequency_energy,
    "noise": noise_residual,
    "compression": coding_loss,
    "structure": structural_dissimilarity,
}

# Sharper proxies where one type has a signature of its own.
TYPE_PROXIES = {"jpeg": blockiness, "pixelation": equal_neighbours, "lost_blocks": flat_pixels}


# ---- the catalogue itself ---------------------------------------------------------------------


def test_catalogue_entries_are_well_formed() -> None:
    entries = list_distortions()
    assert len(entries) >= 24
    assert [entry.name for entry in entries] == NAMES
    for name, entry in DISTORTIONS.items():
        assert isinstance(entry, DistortionType) and entry.name == name
        assert entry.attribute in ATTRIBUTES
        assert entry.sign in (1, -1)
        assert entry.parameter and entry.description
        assert get_distortion(name) is entry


def test_every_channel_has_its_directions() -> None:
    signs: dict[str, set[int]] = {attribute: set() for attribute in ATTRIBUTES}
    for entry in list_distortions():
        signs[entry.attribute].add(entry.sign)
    assert BIDIRECTIONAL | UPWARD_ONLY == set(ATTRIBUTES)
    for attribute in BIDIRECTIONAL:
        assert signs[attribute] == {1, -1}, attribute
    for attribute in UPWARD_ONLY:
        assert signs[attribute] == {1}, attribute


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="gaussian_blur") as error:
        get_distortion("gausian_blur")
    assert "gausian_blur" in str(error.value)


@pytest.mark.parametrize(
    ("images", "intensity", "message"),
    [
        (torch.rand(3, 8, 8), 0.5, "shape"),
        (torch.rand(1, 1, 8, 8), 0.5, "shape"),
        (torch.rand(1, 3, 8, 8) * 2, 0.5, r"\[0, 1\]"),
        (torch.full((1, 3, 8, 8), float("nan")), 0.5, "NaN"),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), 0.5, "float"),
        (torch.rand(2, 3, 8, 8), 1.5, "intensity"),
        (torch.rand(2, 3, 8, 8), torch.tensor([0.1, 0.2, 0.3]), "intensity"),
        (torch.rand(2, 3, 8, 8), -0.1, "intensity"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    images: torch.Tensor, intensity: object, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        apply_distortion("gaussian_blur", images, intensity)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_generator_on_another_device_is_refused() -> None:
    generator = torch.Generator(device="cuda")
    with pytest.raises(InvalidInputError, match="generator"):
        apply_distortion("gaussian_noise", torch.rand(1, 3, 4, 4), 0.5, generator)


# ---- per type ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_range_are_kept(name: str, photos: torch.Tensor) -> None:
    out = run(name, photos, 1.0)
    assert out.shape == photos.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not torch.equal(out, photos)


@pytest.mark.parametrize("name", NAMES)
def test_intensity_zero_is_the_identity(name: str, photos: torch.Tensor) -> None:
    torch.testing.assert_close(run(name, photos, 0.0), photos, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_generator_makes_it_deterministic(name: str, photos: torch.Tensor) -> None:
    torch.manual_seed(1)  # the global RNG must not matter
    first = run(name, photos, 0.7, seed=7)
    torch.manual_seed(2)
    second = run(name, photos, 0.7, seed=7)
    assert torch.equal(first, second)
    other_seed = run(name, photos, 0.7, seed=8)
    assert torch.equal(first, other_seed) == (name not in RANDOM_TYPES)


@pytest.mark.parametrize("name", NAMES)
def test_stronger_intensity_moves_further_from_the_reference(
    name: str, photos: torch.Tensor
) -> None:
    errors = torch.stack([mse(run(name, photos, t), photos) for t in (0.2, 0.5, 1.0)])
    assert (errors[0] > 0).all(), f"intensity 0.2 leaves an image unchanged: {errors[0]}"
    assert (errors[1:] > errors[:-1]).all(), f"MSE not rising with intensity:\n{errors}"


@pytest.mark.parametrize("name", NAMES)
def test_sign_is_right_on_a_simple_proxy(name: str, photos: torch.Tensor) -> None:
    entry = get_distortion(name)
    proxy = TYPE_PROXIES.get(name, ATTRIBUTE_PROXIES[entry.attribute])
    expected = entry.sign
    for intensity in (0.5, 1.0):
        change = proxy(run(name, photos, intensity), photos) - proxy(photos, photos)
        assert (torch.sign(change) == expected).all(), (
            f"{proxy.__name__} change at {intensity}: {change}"
        )


@pytest.mark.parametrize("name", NAMES)
def test_per_sample_intensities_match_uniform_batches(name: str, photos: torch.Tensor) -> None:
    intensities = torch.tensor([0.2, 0.6, 1.0])
    mixed = run(name, photos, intensities)
    for index, value in enumerate(intensities.tolist()):
        uniform = run(name, photos, value)
        torch.testing.assert_close(mixed[index], uniform[index], atol=2e-4, rtol=0)
        if name not in RANDOM_TYPES:
            alone = run(name, photos[index : index + 1], value)
            torch.testing.assert_close(mixed[index], alone[0], atol=2e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=6, deadline=None)
@given(
    height=st.integers(1, 23),
    width=st.integers(1, 23),
    intensity=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_odd_sizes_keep_shape_and_range(
    name: str, height: int, width: int, intensity: float, seed: int
) -> None:
    images = torch.rand((2, 3, height, width), generator=seeded(seed))
    out = run(name, images, intensity, seed)
    assert out.shape == images.shape
    assert torch.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_gpu_matches_cpu(name: str, photos: torch.Tensor) -> None:
    device = torch.device("cuda")
    out = apply_distortion(
        name, photos.to(device), 0.8, torch.Generator(device=device).manual_seed(3)
    )
    assert out.device.type == "cuda" and out.shape == photos.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    if name not in RANDOM_TYPES:
        np.testing.assert_allclose(out.cpu().numpy(), run(name, photos, 0.8).numpy(), atol=2e-3)
