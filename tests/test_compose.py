"""Composition: truth maps, the opposite-sign rule, swap, ordinal sets, determinism, odd sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from reliqa.attributes import ATTRIBUTE_INDEX, ATTRIBUTES
from reliqa.distortions import DISTORTIONS
from reliqa.distortions.compose import apply_plan, distort, truth_maps
from reliqa.distortions.ordinal import ordinal_set
from reliqa.distortions.plan import (
    MAX_DISTORTIONS,
    STAGES,
    DistortionPlan,
    check_mix,
    sample_mixes,
)
from reliqa.exceptions import InvalidInputError, UnknownNameError

# Cheap types (no per-image codec round trips) keep the property tests fast.
FAST_POOL = [
    "brighten", "darken", "linear_contrast_down", "saturation_up", "warm", "green_tint",
    "gaussian_blur", "unsharp_mask", "gaussian_noise", "impulse_noise", "banding", "jitter",
    "lost_blocks",
]


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    """Six 48×64 crops of bundled photos, (6, 3, 48, 64)."""
    from skimage import data

    from reliqa.io import load_image

    images = [load_image(getattr(data, n)()) for n in ("astronaut", "coffee", "chelsea")]
    small = [F.interpolate(x, size=(96, 128), mode="area") for x in images]
    return torch.cat([torch.cat([x[..., :48, :64], x[..., 48:, 64:]]) for x in small])


def _channel_weight(plan: DistortionPlan, row: int) -> torch.Tensor:
    """(9, H, W): summed mask weight per attribute channel of one sample."""
    weight = torch.zeros(len(ATTRIBUTES), *plan.masks.shape[-2:])
    for slot, name in enumerate(plan.types[row]):
        weight[ATTRIBUTE_INDEX[DISTORTIONS[name].attribute]] += plan.masks[row, slot]
    return weight


def test_truth_is_exactly_neutral_where_masks_are_zero(crops: torch.Tensor) -> None:
    batch = distort(crops, p_swap=0.0, generator=11)
    zero_somewhere = False
    for row in range(len(batch)):
        weight = _channel_weight(batch.plan, row)
        untouched = weight == 0
        zero_somewhere |= bool(untouched.any())
        assert bool((batch.truth[row][untouched] == 0.5).all())
        assert bool((batch.truth[row][~untouched] != 0.5).any())
        clean = untouched.all(dim=0)  # no distortion at all at these pixels
        assert torch.equal(batch.test[row][:, clean], batch.reference[row][:, clean])
    assert zero_somewhere


def test_single_distortion_truth_is_sign_times_intensity_times_mask(crops: torch.Tensor) -> None:
    for name in ("brighten", "darken", "gaussian_blur", "jpeg"):
        batch = distort(crops, mix=[name], p_swap=0.0, generator=3)
        distortion = DISTORTIONS[name]
        channel = ATTRIBUTE_INDEX[distortion.attribute]
        expected = 0.5 + 0.5 * distortion.sign * batch.plan.intensity[:, :1, None, None] * batch.plan.masks
        torch.testing.assert_close(batch.truth[:, channel : channel + 1], expected, atol=1e-6, rtol=0)
        others = [k for k in range(len(ATTRIBUTES)) if k != channel]
        assert bool((batch.truth[:, others] == 0.5).all())
        magnitude = 2 * (batch.truth[:, channel] - 0.5).abs()
        torch.testing.assert_close(
            magnitude, batch.plan.intensity[:, :1, None] * batch.plan.masks[:, 0], atol=1e-6, rtol=0
        )
        for record, intensity, mask in zip(batch.distortions, batch.plan.intensity, batch.plan.masks):
            (applied,) = record
            assert (applied.type, applied.attribute, applied.sign) == (name, distortion.attribute, distortion.sign)
            assert applied.intensity == pytest.approx(float(intensity[0]))
            assert applied.coverage == pytest.approx(float(mask[0].mean()), abs=1e-6)


def test_opposite_signs_on_one_channel_are_refused() -> None:
    for pair in (["gaussian_blur", "unsharp_mask"], ["brighten", "gamma_darken"], ["warm", "cool"]):
        with pytest.raises(InvalidInputError, match="opposite directions"):
            check_mix(pair)
        with pytest.raises(InvalidInputError, match="opposite directions"):
            distort(torch.rand(1, 3, 8, 8), mix=pair, generator=0)


def test_random_mixes_never_share_a_channel() -> None:
    mixes = sample_mixes(2000, generator=0)
    for mix in mixes:
        channels = [DISTORTIONS[name].attribute for name in mix]
        assert 1 <= len(mix) <= MAX_DISTORTIONS
        assert len(set(channels)) == len(channels)
    counts = torch.bincount(torch.tensor([len(m) for m in mixes]), minlength=5)[1:]
    assert bool((counts > 400).all()), f"1..4 distortions should be about equally likely: {counts}"
    used = {DISTORTIONS[name].attribute for mix in mixes for name in mix}
    assert used == set(ATTRIBUTES)


def test_sampling_weights_set_channel_and_type_shares() -> None:
    weights = {"compression": 3.0, "jpeg": 3.0, "webp": 2.0, "noise": 0.0}
    mixes = sample_mixes(6000, max_distortions=1, sampling_weights=weights, generator=0)
    channel = torch.tensor([ATTRIBUTE_INDEX[DISTORTIONS[m[0]].attribute] for m in mixes])
    shares = torch.bincount(channel, minlength=len(ATTRIBUTES)).double() / len(mixes)
    # channel shares ∝ weights: compression 3 of 3 + 7 (noise 0, the other seven channels 1)
    assert shares[ATTRIBUTE_INDEX["noise"]] == 0
    assert abs(float(shares[ATTRIBUTE_INDEX["compression"]]) - 0.3) < 0.02
    assert abs(float(shares[ATTRIBUTE_INDEX["brightness"]]) - 0.1) < 0.015
    # within compression: jpeg 3, webp 2, jpeg2000 / colour_quantisation / banding 1 each
    compression = [m[0] for m in mixes if DISTORTIONS[m[0]].attribute == "compression"]
    assert abs(compression.count("jpeg") / len(compression) - 3 / 8) < 0.03
    assert abs(compression.count("banding") / len(compression) - 1 / 8) < 0.03
    # several distortions per sample still never share a channel, and never draw a 0 channel
    for mix in sample_mixes(500, sampling_weights=weights, generator=1):
        channels = [DISTORTIONS[name].attribute for name in mix]
        assert len(set(channels)) == len(channels) and "noise" not in channels
    assert sample_mixes(50, generator=2) == sample_mixes(50, sampling_weights=None, generator=2)


@pytest.mark.parametrize(
    ("weights", "error", "message"),
    [
        ({"jpg": 1.0}, UnknownNameError, "neither a type of the pool"),
        ({"jpeg": -1.0}, InvalidInputError, "finite and ≥ 0"),
        ({"jpeg": float("nan")}, InvalidInputError, "finite and ≥ 0"),
        ({attribute: 0.0 for attribute in ATTRIBUTES}, InvalidInputError, "every attribute"),
        ({"jpeg": 0.0, "jpeg2000": 0.0, "webp": 0.0, "colour_quantisation": 0.0, "banding": 0.0},
         InvalidInputError, "all its types weigh 0"),
    ],
)
def test_sampling_weights_are_checked(
    weights: dict[str, float], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        sample_mixes(4, sampling_weights=weights, generator=0)


def test_dataset_passes_sampling_weights_to_the_engine(tmp_path) -> None:
    from PIL import Image

    from reliqa.distortions.dataset import DistortionDataset

    for index in range(3):
        Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()).save(tmp_path / f"{index}.png")
    only_blur = {attribute: 0.0 for attribute in ATTRIBUTES if attribute != "sharpness"}
    dataset = DistortionDataset(
        tmp_path, split="all", crop_size=32, batch_size=4, sampling_weights=only_blur, seed=0
    )
    batch = dataset.make_batch(0)
    active = (batch["truth"] - 0.5).abs().amax(dim=(0, 2, 3)) > 0
    assert active.nonzero().flatten().tolist() == [ATTRIBUTE_INDEX["sharpness"]]


def test_same_sign_pair_adds_up_and_clips() -> None:
    height, width = 6, 8
    mask = torch.zeros(height, width)
    mask[:, :4] = 1.0
    mask[:, 4:6] = 0.5
    plan = DistortionPlan(
        types=(("gaussian_blur", "motion_blur"), ("gaussian_blur", "motion_blur")),
        intensity=torch.tensor([[0.3, 0.2], [0.8, 0.7]]),
        masks=mask.expand(2, 2, height, width).clone(),
    )
    sharpness = truth_maps(plan)[:, ATTRIBUTE_INDEX["sharpness"]]
    torch.testing.assert_close(sharpness[0, 0], torch.tensor([0.25] * 4 + [0.375] * 2 + [0.5] * 2))
    torch.testing.assert_close(sharpness[1, 0], torch.tensor([0.0] * 4 + [0.125] * 2 + [0.5] * 2))
    assert check_mix(["motion_blur", "gaussian_blur"]) == ("gaussian_blur", "motion_blur")


def test_mixes_are_applied_in_pipeline_order() -> None:
    stage = {name: next(i for i, (a, s) in enumerate(STAGES) if a == d.attribute and s in (None, d.sign))
             for name, d in DISTORTIONS.items()}
    assert check_mix(["jpeg", "gaussian_noise", "gaussian_blur"]) == ("gaussian_blur", "gaussian_noise", "jpeg")
    for mix in sample_mixes(300, generator=1):
        assert [stage[n] for n in mix] == sorted(stage[n] for n in mix)


def test_apply_plan_matches_sequential_per_sample_application(crops: torch.Tensor) -> None:
    batch = distort(crops[:3], pool=["brighten", "linear_contrast_down", "warm", "gaussian_blur"],
                    p_swap=0.0, generator=5)
    for row in range(3):
        expected = crops[row : row + 1].clone()
        for slot, name in enumerate(batch.plan.types[row]):
            after = DISTORTIONS[name].apply(expected, batch.plan.intensity[row : row + 1, slot], None)
            expected = torch.lerp(expected, after, batch.plan.masks[row : row + 1, slot : slot + 1]).clamp(0, 1)
        torch.testing.assert_close(batch.test[row : row + 1], expected, atol=1e-4, rtol=0)


def test_swap_exchanges_images_and_gives_exactly_one_minus_truth(crops: torch.Tensor) -> None:
    plain = distort(crops, p_swap=0.0, generator=21)
    swapped = distort(crops, p_swap=1.0, generator=21)
    assert bool(swapped.swapped.all()) and not bool(plain.swapped.any())
    assert torch.equal(swapped.reference, plain.test)
    assert torch.equal(swapped.test, plain.reference)
    assert torch.equal(swapped.truth, 1.0 - plain.truth)
    for before, after in zip(plain.distortions, swapped.distortions):
        assert [d.sign for d in after] == [-d.sign for d in before]
        assert [d.intensity for d in after] == [d.intensity for d in before]


def test_swap_probability() -> None:
    batch = distort(torch.rand(600, 3, 4, 4), pool=["brighten", "darken"], generator=2)
    rate = float(batch.swapped.float().mean())
    assert 0.19 < rate < 0.31
    swapped = batch.swapped
    assert torch.equal(batch.truth[swapped], 1.0 - truth_maps(batch.plan)[swapped])


def test_ordinal_set_levels_rise_and_psnr_falls(crops: torch.Tensor) -> None:
    result = ordinal_set(crops, levels=4, generator=8)
    b, k = 6, 4
    assert result.versions.shape == (b, k, 3, 48, 64)
    assert result.truth.shape == (b, k, 9, 48, 64)
    assert result.levels.shape == (b, k)
    assert bool((result.levels.diff(dim=1) > 0).all())
    assert float(result.levels.min()) > 0 and float(result.levels.max()) <= 1
    mse = (result.versions - result.reference[:, None]).pow(2).flatten(2).mean(dim=2)
    psnr = 10 * torch.log10(1 / mse)
    assert bool((psnr.diff(dim=1) < 0).all()), psnr
    strength = (result.truth - 0.5).abs().flatten(2).sum(dim=2)
    assert bool((strength.diff(dim=1) > 0).all())
    for row in range(b):  # every version has the same mix and masks
        assert len(result.distortions[row]) == len(result.plan.types[row])


@pytest.fixture(scope="module")
def photo_96() -> torch.Tensor:
    """A 96×96 crop of the bundled cat photo, (1, 3, 96, 96)."""
    from skimage import data

    from reliqa.io import load_image

    return F.interpolate(load_image(data.chelsea()), size=(96, 144), mode="area")[..., 24:120].contiguous()


@pytest.mark.parametrize("name", list(DISTORTIONS))
def test_ordinal_set_psnr_falls_for_every_type(name: str, photo_96: torch.Tensor) -> None:
    for seed in (4, 5):
        result = ordinal_set(photo_96, levels=3, mix=[name], mask_families=["full"], generator=seed)
        mse = (result.versions[0] - photo_96).pow(2).flatten(1).mean(dim=1)
        assert bool((mse.diff() > 0).all()), f"{name}, seed {seed}: {mse.tolist()}"


def test_same_seed_same_batch(crops: torch.Tensor) -> None:
    first = distort(crops[:4], generator=99)
    again = distort(crops[:4], generator=torch.Generator().manual_seed(99))
    other = distort(crops[:4], generator=100)
    for field in ("reference", "test", "truth", "swapped"):
        assert torch.equal(getattr(first, field), getattr(again, field))
    assert first.distortions == again.distortions
    assert not torch.equal(first.truth, other.truth)


@settings(max_examples=15, deadline=None)
@given(
    height=st.integers(1, 33),
    width=st.integers(1, 33),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_odd_sizes(height: int, width: int, batch: int, seed: int) -> None:
    images = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))
    result = distort(images, generator=seed)
    assert result.test.shape == (batch, 3, height, width)
    assert result.truth.shape == (batch, 9, height, width)
    for tensor in (result.test, result.truth):
        assert bool(torch.isfinite(tensor).all())
        assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(InvalidInputError, match=r"\(N, 3, H, W\)"):
        distort(torch.rand(3, 8, 8))
    with pytest.raises(UnknownNameError, match="known"):
        distort(torch.rand(1, 3, 8, 8), mix=["no_such_type"])
    with pytest.raises(InvalidInputError, match="p_swap"):
        distort(torch.rand(1, 3, 8, 8), p_swap=1.5)
    with pytest.raises(InvalidInputError, match="at most"):
        check_mix(["brighten", "warm", "jpeg", "jitter", "gaussian_noise"])
    with pytest.raises(InvalidInputError, match="CPU generator"):
        if torch.cuda.is_available():
            distort(torch.rand(1, 3, 8, 8), generator=torch.Generator("cuda"))
        else:
            raise InvalidInputError("needs a CPU generator")
    plan = distort(torch.rand(2, 3, 8, 8), generator=0).plan
    with pytest.raises(InvalidInputError, match="does not fit"):
        apply_plan(torch.rand(2, 3, 9, 8), plan)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_batch_matches_cpu_truth(crops: torch.Tensor) -> None:
    cpu = distort(crops, pool=FAST_POOL, generator=6)
    gpu = distort(crops.cuda(), pool=FAST_POOL, generator=6)
    assert gpu.test.device.type == "cuda" and gpu.truth.device.type == "cuda"
    assert torch.equal(gpu.swapped, cpu.swapped)
    assert [[(a.type, a.sign) for a in x] for x in gpu.distortions] == [
        [(a.type, a.sign) for a in x] for x in cpu.distortions
    ]
    torch.testing.assert_close(gpu.truth.cpu(), cpu.truth, atol=1e-4, rtol=0)
    result = ordinal_set(crops.cuda(), levels=3, pool=FAST_POOL, generator=6)
    assert result.versions.device.type == "cuda"
    assert bool((result.levels.diff(dim=1) > 0).all())
