"""The relational model: exact anti-symmetry of the maps, neutral point, any size, tiling, shipped weights."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import kornia
import pytest
import torch

from reliqa.attributes import ATTRIBUTE_INDEX
from reliqa.exceptions import InvalidInputError, ShapeMismatchError, WeightsError
from reliqa.models import create_model
from reliqa.models.relational import NEUTRAL_SCORE, RelationalModel, tiled_forward
from reliqa.models.relational_maps import PairNetwork
from reliqa.models.weights import WEIGHTS_DIR, load_shipped, read_model_card


@pytest.fixture(scope="module")
def random_model(perturbed: Callable[..., torch.nn.Module]) -> RelationalModel:
    """An untrained model whose zero-initialised layers are perturbed, so every path is active."""
    return perturbed(RelationalModel(), seed=1).eval()  # type: ignore[return-value]


@pytest.fixture(scope="module")
def shipped() -> RelationalModel:
    return create_model("relational")  # type: ignore[return-value]


@pytest.fixture(scope="module")
def pair(astronaut: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(test, reference) (1, 3, 200, 232): noise on the left half, darker at the bottom."""
    reference = astronaut[..., 100:300, 140:372].clone()
    generator = torch.Generator().manual_seed(0)
    test = reference.clone()
    test[..., :116] += 0.08 * torch.randn(test[..., :116].shape, generator=generator)
    test[..., 120:, :] *= 0.75
    return test.clamp(0, 1), reference


def test_maps_are_exactly_antisymmetric(
    random_model: RelationalModel, pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    test, reference = pair
    with torch.inference_mode():
        forward = random_model(test, reference)
        backward = random_model(reference, test)
    assert forward.maps.std() > 0.01  # not trivially 0.5 everywhere
    torch.testing.assert_close(forward.maps, 1.0 - backward.maps, atol=1e-5, rtol=0)
    # the score takes the reference as the target look: a difference costs in both orders
    assert forward.score < -1e-3 and backward.score < -1e-3


def test_identical_images_give_neutral_maps_and_score(
    random_model: RelationalModel, photos: list[torch.Tensor]
) -> None:
    with torch.inference_mode():
        for photo in photos[:2]:
            output = random_model(photo, photo)
            assert torch.all(output.maps == 0.5)
            assert output.score.item() == NEUTRAL_SCORE


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (17, 33), (64, 64), (97, 50)])
def test_any_size_gives_maps_of_that_size(
    random_model: RelationalModel, size: tuple[int, int]
) -> None:
    generator = torch.Generator().manual_seed(2)
    test, reference = torch.rand(2, 2, 3, *size, generator=generator)
    with torch.inference_mode():
        output = random_model(test, reference)
    assert output.maps.shape == (2, 9, *size)
    assert output.score.shape == (2,)
    assert torch.all((output.maps >= 0) & (output.maps <= 1))
    assert torch.isfinite(output.score).all()


def test_mismatched_or_malformed_pairs_are_refused(random_model: RelationalModel) -> None:
    with pytest.raises(ShapeMismatchError, match="differ in shape"):
        random_model(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(InvalidInputError, match="test"):
        random_model(torch.rand(1, 4, 8, 8), torch.rand(1, 4, 8, 8))


def test_tiled_inference_equals_untiled(
    shipped: RelationalModel, pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    test, reference = pair
    with torch.inference_mode():
        whole = shipped(test, reference, tile=None)
        tiled = shipped(test, reference, tile=64, margin=128)
    assert (whole.maps - 0.5).abs().max() > 0.1  # the pair really differs
    torch.testing.assert_close(tiled.maps, whole.maps, atol=1e-4, rtol=0)
    torch.testing.assert_close(tiled.score, whole.score, atol=2e-3, rtol=0)


def test_the_score_alone_equals_the_score_with_maps(
    random_model: RelationalModel,
    shipped: RelationalModel,
    pair: tuple[torch.Tensor, torch.Tensor],
) -> None:
    test, reference = pair
    with torch.inference_mode():
        for model in (random_model, shipped):
            assert torch.equal(model.score(test, reference), model(test, reference).score)
        # in tiles too: the statistics without logits are those with them, bit for bit
        for similarity in (False, True):
            options = {"tile": 64, "margin": 32, "similarity": similarity}
            with_logits = tiled_forward(shipped.maps_net, test, reference, **options)
            logits, alone = tiled_forward(
                shipped.maps_net, test, reference, with_logits=False, **options
            )
            assert logits is None and torch.equal(alone, with_logits[1])
            assert alone.shape[1] == 11 if similarity else 9


def test_tiles_bound_the_working_size(
    random_model: RelationalModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    original = PairNetwork.forward

    def recording(self: PairNetwork, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(test.shape[-2:]))
        return original(self, test, reference)

    monkeypatch.setattr(PairNetwork, "forward", recording)
    image = torch.rand(1, 3, 140, 200)
    with torch.inference_mode():
        logits, _ = tiled_forward(random_model.maps_net, image, image.flip(-1), tile=64, margin=32)
    assert logits.shape == (1, 9, 140, 200)
    assert len(seen) == 3 * 4  # ceil(140 / 64) × ceil(200 / 64) tiles
    assert max(h for h, _ in seen) <= 64 + 2 * 32 and max(w for _, w in seen) <= 64 + 2 * 32


def test_tile_size_must_follow_the_grid(random_model: RelationalModel) -> None:
    image = torch.rand(1, 3, 200, 200)
    with pytest.raises(InvalidInputError, match="multiples of 16"):
        random_model(image, image, tile=50, margin=16)


def test_shipped_weights_load_offline_with_their_hash(shipped: RelationalModel) -> None:
    card = read_model_card("relational")
    state, _ = load_shipped("relational")
    assert len(card["sha256"]) == 64
    assert set(state) == set(shipped.state_dict())
    assert card["training"]["human_labels_used"] is False


def test_a_corrupted_weights_file_is_refused(tmp_path: Path) -> None:
    for suffix in (".json", ".safetensors"):
        shutil.copy(WEIGHTS_DIR / f"relational{suffix}", tmp_path / f"relational{suffix}")
    weights = tmp_path / "relational.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_shipped("relational", weights_dir=tmp_path)


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * int(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(image, (size, size), (sigma, sigma))


def test_shipped_model_sees_blur_as_less_sharp(
    shipped: RelationalModel, photos: list[torch.Tensor]
) -> None:
    sharpness = ATTRIBUTE_INDEX["sharpness"]
    for photo in photos[:3]:
        reference = photo[..., :256, :256]
        with torch.inference_mode():
            output = shipped(_blur(reference, 3.0), reference)
        assert output.maps[0, sharpness].mean() < 0.4  # blurrier (an untrained model gives ≈ 0.5)
        assert output.score.item() < NEUTRAL_SCORE


def test_shipped_model_ranks_mild_blur_above_strong_blur(
    shipped: RelationalModel, photos: list[torch.Tensor]
) -> None:
    for photo in photos[:3]:
        reference = photo[..., :256, :256]
        with torch.inference_mode():
            mild = shipped(_blur(reference, 1.0), reference).score.item()
            strong = shipped(_blur(reference, 3.0), reference).score.item()
        assert mild - strong > 0.5


@pytest.fixture(scope="module")
def shipped_plus() -> RelationalModel:
    return create_model("relational-plus")  # type: ignore[return-value]


def test_relational_plus_shares_the_maps_and_scores_on_the_same_scale(
    shipped: RelationalModel, shipped_plus: RelationalModel, photos: list[torch.Tensor]
) -> None:
    card = read_model_card("relational-plus")
    assert card["training"]["human_labels_used"] is False
    assert "Apache-2.0" in card["training"]["backbone"]
    reference = photos[1][..., :256, :256]
    with torch.inference_mode():
        plain, plus = shipped(reference, reference), shipped_plus(reference, reference)
        assert plus.score.item() == NEUTRAL_SCORE
        blurred = _blur(reference, 1.5)
        torch.testing.assert_close(
            shipped_plus(blurred, reference).maps, shipped(blurred, reference).maps
        )
        scores = [shipped_plus(_blur(reference, s), reference).score.item() for s in (0.8, 3.0)]
    assert torch.equal(plus.maps, plain.maps)
    assert 0 > scores[0] > scores[1] > -5  # about −1 = the strongest synthetic degradations
