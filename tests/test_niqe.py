"""NIQE: feature extraction against known distributions and definitions, the shipped pristine
model, parameter files, and the five TID2013 calibration images."""

from __future__ import annotations

import math

import kornia
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reliqa.exceptions import InvalidInputError, WeightsError
from reliqa.io import load_image
from reliqa.metrics import create_metric
from reliqa.metrics.niqe import (
    NIQEParams,
    fit_aggd,
    fit_pristine,
    imresize_half,
    load_params,
    load_shipped_params,
    mscn,
    niqe,
    niqe_features,
    patch_features,
    rgb_to_gray255,
    save_params,
)
from reliqa.metrics.sharpness import laplacian_variance


def _aggd_samples(alpha: float, beta_left: float, beta_right: float, count: int, seed: int) -> torch.Tensor:
    """Draws from the AGGD: |x|/β ~ Gamma(1/α)^(1/α), side chosen with probability β_side/(β_l+β_r)."""
    rng = np.random.default_rng(seed)
    magnitude = rng.gamma(1.0 / alpha, 1.0, size=count) ** (1.0 / alpha)
    left = rng.random(count) < beta_left / (beta_left + beta_right)
    samples = np.where(left, -beta_left * magnitude, beta_right * magnitude)
    return torch.from_numpy(samples)[None]


@pytest.mark.parametrize(
    ("alpha", "beta_left", "beta_right"),
    [(0.6, 0.3, 0.3), (1.0, 0.5, 1.5), (2.0, 1.0, 1.0), (3.0, 2.0, 0.7)],
)
def test_aggd_fit_recovers_known_parameters(alpha: float, beta_left: float, beta_right: float) -> None:
    fitted_alpha, fitted_left, fitted_right = fit_aggd(_aggd_samples(alpha, beta_left, beta_right, 400_000, 1))
    assert fitted_alpha.item() == pytest.approx(alpha, rel=0.03)
    assert fitted_left.item() == pytest.approx(beta_left, rel=0.02)
    assert fitted_right.item() == pytest.approx(beta_right, rel=0.02)


def test_aggd_fit_of_a_gaussian_and_undefined_rows() -> None:
    gaussian = torch.from_numpy(np.random.default_rng(2).normal(0.0, 1.5, (1, 300_000)))
    one_signed = torch.rand(1, 1000) + 0.1
    alpha, beta_left, beta_right = fit_aggd(torch.cat([gaussian, one_signed[:, :1].expand(1, 300_000)]))
    # N(0, σ²) is a GGD with α = 2 and β = σ√2.
    assert alpha[0].item() == pytest.approx(2.0, abs=0.03)
    assert beta_left[0].item() == pytest.approx(1.5 * math.sqrt(2), rel=0.01)
    assert beta_right[0].item() == pytest.approx(1.5 * math.sqrt(2), rel=0.01)
    assert math.isnan(alpha[1].item())


def test_rgb_to_gray_matches_matlab_rgb2gray_rounding() -> None:
    rgb = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 30]], dtype=torch.float32)
    image = (rgb / 255).T.reshape(1, 3, 1, 4)
    # rgb2gray's exact weights (the inverse NTSC matrix), rounded half away from zero.
    weights = (0.298936021293775, 0.587043074451121, 0.114020904255103)
    expected = [math.floor(sum(w * c for w, c in zip(weights, pixel)) + 0.5) for pixel in rgb.tolist()]
    assert rgb_to_gray255(image).flatten().tolist() == expected


def test_mscn_definition_and_invariances(astronaut: torch.Tensor) -> None:
    gray = rgb_to_gray255(astronaut)[..., :128, :128]
    coefficients, sigma = mscn(gray)
    x = torch.arange(-3, 4, dtype=torch.float64)
    window = torch.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window = (window / window.sum())[None]  # MATLAB fspecial('gaussian', 7, 7/6)
    padded = F.pad(gray, (3, 3, 3, 3), mode="replicate")
    mu = F.conv2d(padded, window[None])
    second = F.conv2d(padded * padded, window[None])
    expected = (gray - mu) / (torch.sqrt((second - mu * mu).abs()) + 1)
    torch.testing.assert_close(coefficients, expected, rtol=0, atol=1e-9)
    # Shifting the luminance changes neither σ nor the coefficients; a flat image gives zeros.
    shifted, shifted_sigma = mscn(gray + 17.0)
    torch.testing.assert_close(shifted, coefficients, rtol=0, atol=1e-6)
    torch.testing.assert_close(shifted_sigma, sigma, rtol=0, atol=1e-6)
    flat, flat_sigma = mscn(torch.full((1, 1, 32, 32), 90.0, dtype=torch.float64))
    assert flat.abs().max() < 1e-9 and flat_sigma.abs().max() < 1e-5
    # Natural-scene statistic: MSCN coefficients of a photo are close to zero-mean, unit-scale.
    assert abs(coefficients.mean().item()) < 0.1
    assert 0.3 < coefficients.std().item() < 1.2


def test_imresize_half_matches_antialiased_bicubic_inside_and_keeps_constants() -> None:
    image = torch.rand(2, 1, 40, 52, dtype=torch.float64)
    ours = imresize_half(image)
    assert ours.shape == (2, 1, 20, 26)
    # PyTorch's antialiased bicubic uses the same a = −0.5 kernel stretched ×2 but truncates it at
    # the border (MATLAB mirrors), so the two agree away from the 2-pixel border.
    torch_aa = F.interpolate(image, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)
    torch.testing.assert_close(ours[..., 2:-2, 2:-2], torch_aa[..., 2:-2, 2:-2], rtol=0, atol=1e-12)
    torch.testing.assert_close(imresize_half(torch.full((1, 1, 9, 7), 3.0, dtype=torch.float64)),
                               torch.full((1, 1, 5, 4), 3.0, dtype=torch.float64), rtol=0, atol=1e-12)


def test_patch_features_shape_order_and_flat_patches(astronaut: torch.Tensor) -> None:
    image = astronaut[..., :200, :300]
    features, sharpness = niqe_features(image)
    assert features.shape == (1, 2 * 3, 36) and sharpness.shape == (1, 6)
    assert torch.isfinite(features).all()
    # α of the MSCN coefficients and of every neighbour product lie on the grid 0.2:0.001:10.
    alphas = features[0][:, [0, 2, 6, 10, 14, 18, 20, 24, 28, 32]]
    assert ((alphas >= 0.2) & (alphas <= 10)).all()
    torch.testing.assert_close(alphas * 1000, torch.round(alphas * 1000), rtol=0, atol=1e-6)
    coefficients = torch.zeros(1, 1, 8, 16, dtype=torch.float64)
    coefficients[..., :, 8:] = torch.randn(8, 8, dtype=torch.float64)
    flat_and_textured = patch_features(coefficients, 8)
    assert torch.isnan(flat_and_textured[0, 0]).all() and torch.isfinite(flat_and_textured[0, 1]).all()


def test_shipped_model_prefers_the_clean_photo(astronaut: torch.Tensor) -> None:
    clean = astronaut[..., :288, :288]
    blurred = kornia.filters.gaussian_blur2d(clean, (15, 15), (3.0, 3.0), border_type="reflect")
    noisy = (clean + 0.08 * torch.randn_like(clean)).clamp(0, 1)
    scores = create_metric("niqe")(torch.cat([clean, blurred, noisy]))
    assert scores.shape == (3,)
    assert scores[1] > scores[0] + 1 and scores[2] > scores[0] + 1
    assert create_metric("niqe").info.higher_is_better is False


def test_shipped_card_and_parameters() -> None:
    params = load_shipped_params()
    assert params.mean.shape == (36,) and params.cov.shape == (36, 36)
    assert params.patch_size == 96 and params.sharpness_threshold == 0.75
    torch.testing.assert_close(params.cov, params.cov.T)
    assert torch.linalg.eigvalsh(params.cov).min() > -1e-9


def test_parameter_file_round_trip_and_user_model(tmp_path, photos) -> None:
    crops = [photo[..., :192, :192] for photo in photos]
    params = fit_pristine(crops, sharpness_threshold=0.0)
    assert params.num_images == 4 and params.num_patches == 4 * 4
    path = save_params(params, tmp_path / "mine.safetensors", provenance={"data": "skimage"})
    loaded = load_params(path)
    torch.testing.assert_close(loaded.mean, params.mean, rtol=0, atol=0)
    torch.testing.assert_close(loaded.cov, params.cov, rtol=0, atol=0)
    assert (loaded.num_images, loaded.num_patches) == (4, 16)
    assert '"sha256"' in path.with_suffix(".json").read_text()
    image = photos[1][..., :192, :288]
    assert create_metric("niqe", params=path)(image).item() == pytest.approx(niqe(image, params).item(), rel=1e-6)
    strict = fit_pristine(crops, sharpness_threshold=0.75)
    assert strict.num_patches < params.num_patches


def test_bad_parameter_files_name_the_file(tmp_path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        load_params(tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(WeightsError, match="garbage.safetensors"):
        load_params(garbage)
    wrong = save_params(NIQEParams(torch.zeros(36), torch.eye(36)), tmp_path / "wrong.safetensors")
    with pytest.raises(WeightsError, match="sha256"):
        load_params(wrong, expected_sha256="0" * 64)
    from safetensors.torch import save_file

    save_file({"mean": torch.zeros(18), "cov": torch.eye(18)}, str(tmp_path / "short.safetensors"))
    with pytest.raises(WeightsError, match=r"short.safetensors: expected mean \(36,\)"):
        create_metric("niqe", params=tmp_path / "short.safetensors")
    save_file({"mean": torch.full((36,), math.nan), "cov": torch.eye(36)}, str(tmp_path / "nan.safetensors"))
    with pytest.raises(WeightsError, match="NaN"):
        load_params(tmp_path / "nan.safetensors")
    with pytest.raises(InvalidInputError, match=".safetensors"):
        save_params(NIQEParams(torch.zeros(36), torch.eye(36)), tmp_path / "params.npz")


def test_bad_images() -> None:
    with pytest.raises(InvalidInputError, match="at least 96x96 px"):
        niqe(torch.rand(1, 3, 95, 200))
    with pytest.raises(InvalidInputError, match="NIQE is undefined"):
        niqe(torch.full((1, 3, 96, 96), 0.5))
    with pytest.raises(InvalidInputError, match="sharpness_threshold"):
        fit_pristine([torch.rand(1, 3, 96, 96)], sharpness_threshold=1.5)


def test_laplacian_variance_orders_blur(astronaut: torch.Tensor) -> None:
    blurred = kornia.filters.gaussian_blur2d(astronaut, (9, 9), (2.0, 2.0))
    sharp, soft = laplacian_variance(torch.cat([astronaut, blurred]))
    assert sharp > 4 * soft
    assert laplacian_variance(torch.full((2, 3, 5, 5), 0.3)).abs().max() < 1e-6
    metric = create_metric("laplacian_var")
    assert metric.info.kind == "NR" and metric.info.higher_is_better
    with pytest.raises(InvalidInputError, match="at least 3×3"):
        metric(torch.rand(1, 3, 2, 8))


@pytest.mark.shared
def test_tid2013_calibration_order(shared_data) -> None:
    """Our pristine model is not the authors', so values differ; the ranking must not."""
    import csv

    with open(shared_data / "tid2013_calib" / "official_values.csv") as handle:
        official = {row["metric"]: row for row in csv.DictReader(handle)}["niqe"]
    names = ["I03", "I04", "I06", "I08", "I19"]
    images = torch.cat([load_image(shared_data / "tid2013_calib" / "dist" / f"{n}.bmp") for n in names])
    ours = dict(zip(names, niqe(images).tolist()))
    assert sorted(names, key=ours.get) == sorted(names, key=lambda n: float(official[n]))
    assert min(ours["I03"], ours["I19"]) > max(ours["I04"], ours["I06"], ours["I08"])
    assert all(1.5 < ours[n] < 15 for n in names)
