"""The relational scorer's similarity channels: against an independent NumPy/SciPy computation,
exact zero for identical images, the direction of blur and noise, tiling, architecture inference."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import ndimage

from reliqa.attributes import NUM_ATTRIBUTES
from reliqa.exceptions import WeightsError
from reliqa.models.relational import RelationalModel
from reliqa.models.relational_features import (
    GRADIENT_CONSTANT,
    SIMILARITY_CHANNELS,
    STRUCTURE_CONSTANT,
    STRUCTURE_WINDOW,
    similarity_channels,
)


def _reference_channels(test: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The documented formulas for one (3, H, W) pair, written independently with SciPy."""

    def luma(image: np.ndarray) -> np.ndarray:
        return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]

    def gradient_magnitude(y: np.ndarray) -> np.ndarray:
        kernel = np.array([[1.0, 0.0, -1.0]] * 3) / 3.0
        gx = ndimage.correlate(y, kernel, mode="constant")
        gy = ndimage.correlate(y, kernel.T, mode="constant")
        return np.hypot(gx, gy)

    def moments(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        box = lambda z: ndimage.uniform_filter(z, STRUCTURE_WINDOW, mode="nearest")  # noqa: E731
        ma, mb = box(a), box(b)
        return (
            np.maximum(box(a * a) - ma**2, 0.0),
            np.maximum(box(b * b) - mb**2, 0.0),
            box(a * b) - ma * mb,
        )

    yt, yr = luma(test.astype(np.float64)), luma(reference.astype(np.float64))
    gt, gr = gradient_magnitude(yt), gradient_magnitude(yr)
    gms = (2 * gt * gr + GRADIENT_CONSTANT) / (gt**2 + gr**2 + GRADIENT_CONSTANT)
    gradient = np.sign(gt - gr) * (1 - gms)
    vt, vr, cov = moments(yt, yr)
    cs = (2 * cov + STRUCTURE_CONSTANT) / (vt + vr + STRUCTURE_CONSTANT)
    structure = np.sign(vt - vr) * np.clip((1 - cs) / 2, 0, 1)
    full = np.stack([gradient, structure])
    h, w = full.shape[1] // 4, full.shape[2] // 4
    return full.reshape(2, h, 4, w, 4).mean(axis=(2, 4))


@pytest.fixture(scope="module")
def crop(astronaut: torch.Tensor) -> torch.Tensor:
    return astronaut[..., 96:256, 160:352].contiguous()


def _blur(image: torch.Tensor) -> torch.Tensor:
    import kornia

    return kornia.filters.gaussian_blur2d(image, (9, 9), (1.5, 1.5), border_type="replicate")


def test_channels_follow_the_documented_formulas(crop: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    noisy = (crop + 0.04 * torch.randn(crop.shape, generator=generator)).clamp(0, 1)
    for test in (noisy, _blur(crop)):
        ours = similarity_channels(test, crop)[0].double().numpy()
        expected = _reference_channels(test[0].numpy(), crop[0].numpy())
        assert ours.shape == (len(SIMILARITY_CHANNELS), 40, 48)
        # float32 against float64: the sign of a near-tie (equal local variances) may flip
        # for a few pixels, so a rare cell may differ by a little more
        close = np.abs(ours - expected) <= 2e-3
        assert close.mean() >= 0.998, close.mean()
        np.testing.assert_allclose(ours, expected, atol=1e-2)


def test_identical_images_give_exactly_zero(
    crop: torch.Tensor, perturbed: Callable[..., torch.nn.Module]
) -> None:
    channels = similarity_channels(crop, crop.clone())
    assert torch.count_nonzero(channels) == 0
    model = RelationalModel(similarity=True).eval()
    perturbed(model.scorer, seed=3, scale=1.0)
    with torch.no_grad():
        assert model.score(crop, crop.clone()).item() == 0.0


def test_blur_removes_gradient_and_noise_adds_it(crop: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(1)
    noisy = (crop + 0.05 * torch.randn(crop.shape, generator=generator)).clamp(0, 1)
    blurred = similarity_channels(_blur(crop), crop).mean(dim=(0, 2, 3))
    noise = similarity_channels(noisy, crop).mean(dim=(0, 2, 3))
    assert blurred[0] < -0.01 and blurred[1] < -0.02  # weaker gradients, less local variance
    assert noise[0] > 0.05 and noise[1] > 0.05  # stronger gradients, more local variance
    # the reverse pair flips the direction, within the float rounding of the near-ties
    reverse = similarity_channels(crop, _blur(crop)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(reverse, -blurred, atol=1e-3, rtol=0)
    for channels in (similarity_channels(noisy, crop), similarity_channels(_blur(crop), crop)):
        assert channels.abs().max() <= 1.0


def test_tiles_reproduce_the_whole_image_score(
    astronaut: torch.Tensor, perturbed: Callable[..., torch.nn.Module]
) -> None:
    generator = torch.Generator().manual_seed(2)
    model = perturbed(RelationalModel(similarity=True), seed=2).eval()
    with torch.no_grad():
        reference = astronaut[..., :400, :352]
        test = (reference + 0.05 * torch.randn(reference.shape, generator=generator)).clamp(0, 1)
        whole = model(test, reference, tile=None).score
        tiled = model(test, reference, tile=64, margin=128).score
    assert whole.item() < -1e-3
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_the_architecture_is_read_from_the_state_dict() -> None:
    for deep, similarity in ((False, False), (False, True), (True, True)):
        state = RelationalModel(deep=deep, similarity=similarity).state_dict()
        model = RelationalModel.from_state_dict(state)
        assert model.scorer.similarity is similarity
        assert (model.deep_features is not None) is deep
        channels = NUM_ATTRIBUTES + (len(SIMILARITY_CHANNELS) if similarity else 0)
        assert model.scorer.weight.shape[0] == channels
    with pytest.raises(WeightsError, match="scorer.weight"):
        RelationalModel.from_state_dict({"maps_net.x": torch.zeros(1)})
    broken = RelationalModel(similarity=True).state_dict()
    del broken["maps_net.pair.head.bias"]
    with pytest.raises(WeightsError, match="not a relational model"):
        RelationalModel.from_state_dict(broken)
