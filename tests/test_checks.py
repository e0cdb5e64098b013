"""Issue 11, "silent wrong numbers": one input-checks module (reliqa.checks) used by metrics,
models, the engine and NIQE; wrong inputs raise a ReliqaError naming the argument."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import reliqa
from reliqa.checks import check_tensor_image, check_tensor_pair
from reliqa.exceptions import InvalidInputError, ReliqaError, ShapeMismatchError
from reliqa.metrics.color import rgb_to_gray_matlab


def _jpeg_pair(quality: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """(test, reference), (1, 3, 128, 128) in [0, 1]: a JPEG of a crop of chelsea and the crop."""
    crop = skdata.chelsea()[100:228, 150:278]
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="JPEG", quality=quality)
    jpeg = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.copy()).permute(2, 0, 1)[None].float() / 255.0

    return tensor(jpeg), tensor(crop)


@pytest.mark.parametrize("name", ["ssim", "gmsd", "vifp", "psnr", "ms_ssim", "fsim"])
def test_0_255_tensors_are_an_error_naming_the_argument(name: str) -> None:
    # before: SSIM 1.0, GMSD 0.0, VIFp 1.0, PSNR −40 dB for two unrelated random images
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 192, 192, generator=generator)
    b = torch.rand(1, 3, 192, 192, generator=generator)
    with pytest.raises(InvalidInputError, match=r"test: values must lie in \[0, 1\].*255"):
        reliqa.create_metric(name)(a * 255, b * 255)


@pytest.mark.parametrize("name", ["ssim", "gmsd", "vifp", "ms_ssim", "ssim_downsampled"])
def test_data_range_255_gives_the_same_value(name: str) -> None:
    # before: the 8-bit grey rounding ignored data_range, so SSIM was 1.0 (not 0.84) at 255
    test, reference = _jpeg_pair()
    if name == "ms_ssim":
        test, reference = (torch.nn.functional.interpolate(x, size=(192, 192)) for x in (test, reference))
    unit = reliqa.create_metric(name)(test, reference)
    scaled = reliqa.create_metric(name, data_range=255)(test * 255, reference * 255)
    torch.testing.assert_close(scaled, unit, atol=1e-4, rtol=1e-4)
    if name == "ssim":
        assert 0.7 < float(unit) < 0.95


def test_gray_conversion_honours_data_range() -> None:
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(rgb_to_gray_matlab(image * 255, 255.0) / 255, rgb_to_gray_matlab(image))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"window_size": 4}, "window_size must be an odd integer"),
        ({"window_size": 1}, "window_size must be an odd integer"),
        ({"sigma": -1}, "sigma must be a finite number > 0"),
        ({"k1": 0}, "k1 must be a finite number > 0"),
        ({"k2": -1}, "k2 must be a finite number > 0"),
        ({"data_range": 0}, "data_range must be a positive number"),
        ({"data_range": float("nan")}, "data_range must be a positive number"),
    ],
)
def test_bad_metric_parameters_fail_at_creation(options: dict, message: str) -> None:
    # before: window_size=4 leaked a kornia error on the first image; sigma=-1, k2=-1 accepted
    with pytest.raises(InvalidInputError, match=message):
        reliqa.create_metric("ssim", **options)


@pytest.mark.parametrize("data_range", [-1, 0, float("nan"), float("inf"), True, "255"])
def test_a_bad_data_range_is_named_as_such(data_range: object) -> None:
    from reliqa.metrics.ssim import ssim_downsampled_per_channel

    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(InvalidInputError, match="data_range must be a positive number"):
        check_tensor_image(image, "x", data_range=data_range)  # type: ignore[arg-type]
    # every kernel that leaves the check to check_tensor_pair says the same
    with pytest.raises(InvalidInputError, match="data_range must be a positive number"):
        ssim_downsampled_per_channel(image, image, data_range=data_range)  # type: ignore[arg-type]


def test_nan_and_inf_are_errors() -> None:
    image = torch.rand(1, 3, 32, 32)
    for bad in (float("nan"), float("inf")):
        broken = image.clone()
        broken[0, 1, 3, 3] = bad
        with pytest.raises(InvalidInputError, match="test: contains NaN or infinite"):
            reliqa.create_metric("psnr")(broken, image)


def test_checks_module_contract() -> None:
    image = torch.rand(2, 3, 16, 16)
    assert check_tensor_image(image, "x") is image
    with pytest.raises(InvalidInputError, match=r"x: expected a floating-point tensor"):
        check_tensor_image((image * 255).to(torch.uint8), "x")
    with pytest.raises(InvalidInputError, match=r"x: expected shape \(N, 3, H, W\)"):
        check_tensor_image(image[0], "x", channels=(3,))
    with pytest.raises(InvalidInputError, match="at least 32x32"):
        check_tensor_image(image, "x", min_size=32)
    with pytest.raises(InvalidInputError, match=r"values must lie in \[0, 1\]"):
        check_tensor_image(image - 0.5, "x")
    check_tensor_image(image + 1e-6, "x")  # resampling overshoot is tolerated
    check_tensor_image(image * 255, "x", data_range=255)
    with pytest.raises(ShapeMismatchError, match="m: test .* and reference .* differ"):
        check_tensor_pair(image, image[:, :, :8], name="m")


def test_relational_model_refuses_0_255_and_nan() -> None:
    # before: NaN in → NaN out; a 0..255 pair scored −5288
    from reliqa.models import create_model

    model = create_model("relational", pretrained=False)
    image = torch.rand(1, 3, 32, 32)
    with pytest.raises(InvalidInputError, match=r"relational: test: values must lie in \[0, 1\]"):
        model(image * 255, image)
    with pytest.raises(InvalidInputError, match="relational: reference: contains NaN"):
        model.score(image, torch.full_like(image, float("nan")))
    with pytest.raises(ReliqaError):
        model.maps(image, image * 255)


def test_nr_model_refuses_0_255() -> None:
    from reliqa.models import create_model

    model = create_model("hirqa-s", pretrained=False)
    image = torch.rand(1, 3, 64, 64)
    with pytest.raises(InvalidInputError, match=r"images: values must lie in \[0, 1\]"):
        model.score(image * 255)
    with pytest.raises(InvalidInputError, match=r"images: values must lie in \[0, 1\]"):
        model(image * 255)


def test_engine_and_niqe_refuse_0_255() -> None:
    from reliqa.distortions import distort
    from reliqa.metrics.niqe import niqe

    image = torch.rand(1, 3, 96, 96)
    with pytest.raises(InvalidInputError, match=r"values must lie in \[0, 1\]"):
        distort(image * 255, generator=0)
    with pytest.raises(InvalidInputError, match=r"niqe: values must lie in \[0, 1\]"):
        niqe(image * 255)
