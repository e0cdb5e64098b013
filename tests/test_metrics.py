"""Classical metrics: properties, agreement with scikit-image, filters, gradients, bad input.
No ../shared data needed (scikit-image photos and generated images)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from typer.testing import CliRunner

import reliqa
from reliqa.cli.app import app
from reliqa.exceptions import InvalidInputError, ShapeMismatchError, UnknownNameError
from reliqa.metrics import gmsd, ms_ssim, psnr, ssim, vifp
from reliqa.metrics.color import rgb_to_gray_matlab
from reliqa.metrics.filters import (
    box_downsample,
    box_mean_valid,
    gaussian_window_1d,
    pad_replicate,
    separable_filter_valid,
)
from reliqa.metrics.ssim import ssim_per_channel

PERFECT = {"ssim": 1.0, "ssim_rgb": 1.0, "ssim_downsampled": 1.0, "ssim_skimage": 1.0, "ms_ssim": 1.0,
           "ms_ssim_rgb": 1.0, "gmsd": 0.0, "gmsd_rgb": 0.0, "vifp": 1.0, "psnr": math.inf, "psnr_y": math.inf,
           "fsim": 1.0, "fsim_luminance": 1.0}


def _distort(image: torch.Tensor, noise: float = 0.05) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    blurred = F.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    return (blurred + noise * torch.randn(image.shape, generator=generator)).clamp(0, 1)


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """(test, reference): a 200x240 crop of the astronaut, blurred + noisy, and the original."""
    from skimage import data

    reference = reliqa.load_image(data.astronaut()[100:300, 150:390])
    return _distort(reference), reference


def _sized_for(name: str, pair: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """FSIM's Fourier-domain filtering is the slow part of this file: give it a smaller crop."""
    if name.startswith("fsim"):
        return tuple(image[..., :96, :128] for image in pair)  # type: ignore[return-value]
    return pair


def test_every_registered_metric_declares_its_metadata() -> None:
    infos = {info.name: info for info in reliqa.list_metrics()}
    assert set(PERFECT) <= set(infos)
    assert infos["gmsd"].higher_is_better is False and infos["ssim"].higher_is_better is True
    for info in infos.values():
        assert info.kind in ("FR", "NR") and info.description
        low, high = info.score_range
        assert low < high


@pytest.mark.parametrize("name", sorted(PERFECT))
def test_identical_images_get_the_perfect_score(name: str, pair) -> None:
    _, reference = _sized_for(name, pair)
    score = reliqa.create_metric(name)(reference, reference)
    if math.isinf(PERFECT[name]):
        assert torch.isinf(score).all() and (score > 0).all()
    else:
        assert torch.allclose(score, torch.tensor([PERFECT[name]]), atol=1e-5)


@pytest.mark.parametrize("name", sorted(PERFECT))
def test_distortion_moves_the_score_in_the_declared_direction(name: str, pair) -> None:
    test, reference = _sized_for(name, pair)
    metric = reliqa.create_metric(name)
    perfect, distorted = float(metric(reference, reference)), float(metric(test, reference))
    low, high = metric.info.score_range
    assert low <= distorted <= high
    assert (distorted < perfect) if metric.info.higher_is_better else (distorted > perfect)


def test_ssim_matches_scikit_image_with_the_same_definition(pair) -> None:
    test, reference = pair
    gray_test = rgb_to_gray_matlab(test, quantize=False)
    gray_reference = rgb_to_gray_matlab(reference, quantize=False)
    expected = structural_similarity(gray_test[0, 0].double().numpy(), gray_reference[0, 0].double().numpy(),
                                     gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1.0)
    assert float(ssim_per_channel(gray_test, gray_reference)) == pytest.approx(expected, abs=1e-4)


def test_ssim_rgb_and_skimage_variants_match_scikit_image(pair) -> None:
    test, reference = pair
    test_hwc, reference_hwc = (image[0].permute(1, 2, 0).double().numpy() for image in (test, reference))
    gaussian = structural_similarity(test_hwc, reference_hwc, channel_axis=2, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert float(reliqa.create_metric("ssim_rgb")(test, reference)) == pytest.approx(gaussian, abs=1e-4)
    default = structural_similarity(test_hwc, reference_hwc, channel_axis=2, data_range=1.0)
    assert float(reliqa.create_metric("ssim_skimage")(test, reference)) == pytest.approx(default, abs=1e-4)


def test_psnr_matches_scikit_image(pair) -> None:
    test, reference = pair
    expected = peak_signal_noise_ratio(reference[0].double().numpy(), test[0].double().numpy(), data_range=1.0)
    assert float(psnr(test, reference)) == pytest.approx(expected, abs=1e-4)


def test_matlab_gray_rounds_half_away_from_zero_to_uint8() -> None:
    rgb = torch.tensor([[255.0, 0.0, 0.0], [0.0, 255.0, 0.0], [10.0, 20.0, 30.0]]) / 255.0
    gray = rgb_to_gray_matlab(rgb.t()[None, :, :, None]) * 255.0
    # 76.23 -> 76, 149.70 -> 150, 2.99 + 11.74 + 3.42 = 18.15 -> 18
    assert gray.flatten().tolist() == pytest.approx([76.0, 150.0, 18.0], abs=1e-4)


@pytest.mark.parametrize(("height", "width", "taps"), [(37, 70, 11), (64, 128, 11), (90, 33, 17), (20, 5, 3)])
def test_separable_filter_equals_the_2d_convolution(height: int, width: int, taps: int) -> None:
    image = torch.rand(2, 3, height, width)
    window = gaussian_window_1d(taps, taps / 5.0)
    expected = F.conv2d(image.reshape(6, 1, height, width), torch.outer(window, window)[None, None])
    assert torch.allclose(separable_filter_valid(image, window), expected.view(2, 3, *expected.shape[-2:]),
                          atol=1e-6)


@pytest.mark.parametrize("size", [2, 3, 7])
def test_box_mean_and_replicate_padding_equal_torch_s_own(size: int) -> None:
    image = torch.rand(2, 5, 13, 17, dtype=torch.float64)
    padded = pad_replicate(image, size // 2)
    assert torch.equal(padded, F.pad(image, (size // 2,) * 4, mode="replicate"))
    expected = F.avg_pool2d(padded, size, stride=1)
    torch.testing.assert_close(box_mean_valid(padded, size), expected, atol=1e-12, rtol=0)
    # identical planes give identical bits (the relational similarity channels rely on it)
    twin = box_mean_valid(torch.cat([image[:, :1], image[:, :1]], dim=1), size)
    assert torch.equal(twin[:, 0], twin[:, 1])


@pytest.mark.parametrize(("boundary", "factor"), [("symmetric", 2), ("zero", 2), ("symmetric", 3)])
def test_box_downsample_follows_matlab_same_filtering(boundary: str, factor: int) -> None:
    image = torch.rand(1, 1, 7, 9, dtype=torch.float64)
    array = image[0, 0].numpy()
    before = (factor + 1) // 2 - 1  # window of output i: samples i - before ... i - before + factor - 1
    mode = "symmetric" if boundary == "symmetric" else "constant"
    padded = np.pad(array, ((before, factor), (before, factor)), mode=mode)
    full = np.array([[padded[i:i + factor, j:j + factor].mean() for j in range(9)] for i in range(7)])
    expected = torch.from_numpy(full[::factor, ::factor])
    assert torch.allclose(box_downsample(image, factor, boundary)[0, 0], expected)


@pytest.mark.parametrize("name", sorted(PERFECT))
def test_batch_scores_equal_per_image_scores(name: str, pair) -> None:
    test, reference = _sized_for(name, pair)
    tests = torch.cat([test, reference.flip(-1), _distort(reference, 0.2)])
    references = torch.cat([reference, reference, reference])
    metric = reliqa.create_metric(name)
    batched = metric(tests, references)
    single = torch.cat([metric(tests[i:i + 1], references[i:i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PERFECT))
def test_gradients_flow_to_the_test_image(name: str, pair) -> None:
    metric = reliqa.create_metric(name)
    assert metric.info.differentiable
    test, reference = _sized_for(name, pair)
    test = test.clone().requires_grad_(True)
    metric(test, reference).sum().backward()
    assert torch.isfinite(test.grad).all() and test.grad.abs().sum() > 0


def test_symmetric_metrics_are_symmetric(pair) -> None:
    test, reference = pair
    for function in (ssim, ms_ssim, gmsd, psnr):
        assert torch.allclose(function(test, reference), function(reference, test), atol=1e-6)
    assert not torch.allclose(vifp(test, reference), vifp(reference, test), atol=1e-3)


def test_data_range_scales_consistently(pair) -> None:
    test, reference = pair
    for function in (ssim, ms_ssim, gmsd, psnr, vifp):
        assert torch.allclose(function(test * 255, reference * 255, data_range=255.0),
                              function(test, reference), rtol=1e-4)


def test_shape_mismatch_names_both_shapes_and_resize(pair) -> None:
    test, reference = pair
    with pytest.raises(ShapeMismatchError, match=r"\(1, 3, 200, 239\).*\(1, 3, 200, 240\).*--resize"):
        reliqa.create_metric("ssim")(test[..., :-1], reference)


def test_ms_ssim_names_its_minimum_size() -> None:
    small = torch.rand(1, 3, 160, 300)
    with pytest.raises(InvalidInputError, match="at least 161x161 px"):
        reliqa.create_metric("ms_ssim")(small, small)
    large = torch.rand(1, 3, 161, 161)
    assert torch.isfinite(reliqa.create_metric("ms_ssim")(large, large * 0.5)).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_refused(bad: float, pair) -> None:
    test, reference = pair
    broken = test.clone()
    broken[0, 0, 5, 5] = bad
    for name in ("ssim", "psnr", "gmsd"):
        with pytest.raises(InvalidInputError, match="NaN or infinite"):
            reliqa.create_metric(name)(broken, reference)


def test_other_bad_inputs_are_refused(pair) -> None:
    test, reference = pair
    with pytest.raises(InvalidInputError, match="full-reference"):
        reliqa.create_metric("ssim")(test)
    with pytest.raises(InvalidInputError, match=r"\(N, 3, H, W\)"):
        reliqa.create_metric("ssim")(test[0], reference[0])
    with pytest.raises(InvalidInputError, match="at least 11x11"):
        ssim(test[..., :10, :10], reference[..., :10, :10])
    with pytest.raises(InvalidInputError, match="data_range"):
        ssim(test, reference, data_range=0)
    with pytest.raises(UnknownNameError, match="unknown metric or model 'nope'"):
        reliqa.create_metric("nope")


@pytest.fixture()
def image_files(tmp_path, pair):
    test, reference = pair
    paths = {}
    for name, image in (("test", test), ("ref", reference)):
        paths[name] = tmp_path / f"{name}.png"
        reliqa.save_image(image, paths[name])
    paths["small"] = tmp_path / "small.png"
    Image.open(paths["test"]).resize((120, 100)).save(paths["small"])
    return paths


def test_cli_metric_prints_the_score_as_json(image_files) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["metric", "gmsd", "--ref", str(image_files["ref"]),
                                 "--test", str(image_files["test"]), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["metric"] == "gmsd" and payload["higher_is_better"] is False
    test, reference = (reliqa.load_image(image_files[key]) for key in ("test", "ref"))
    assert payload["score"] == pytest.approx(float(reliqa.create_metric("gmsd")(test, reference)), rel=1e-6)


def test_cli_metric_usage_errors_and_resize(image_files) -> None:
    runner = CliRunner()
    ref, small = str(image_files["ref"]), str(image_files["small"])
    assert runner.invoke(app, ["metric", "nope", "--ref", ref, "--test", ref]).exit_code == 2
    assert runner.invoke(app, ["metric", "ssim", "--test", ref]).exit_code == 2
    mismatch = runner.invoke(app, ["metric", "ssim", "--ref", ref, "--test", small])
    assert mismatch.exit_code == 1 and "--resize" in mismatch.output
    resized = runner.invoke(app, ["metric", "ssim", "--ref", ref, "--test", small, "--resize", "--json"])
    assert resized.exit_code == 0 and 0 < json.loads(resized.stdout)["score"] < 1


def test_cli_metrics_lists_the_registry_as_json() -> None:
    result = CliRunner().invoke(app, ["metrics", "--json"])
    assert result.exit_code == 0
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listed["gmsd"]["higher_is_better"] is False and listed["psnr"]["score_range"] == [0.0, None]
