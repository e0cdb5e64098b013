"""reliqa.io: every source becomes float32 (N, 3, H, W) in [0, 1] with the documented conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reliqa.exceptions import ImageLoadError, InvalidInputError
from reliqa.io import (
    expand_image_paths,
    load_image,
    load_maps,
    save_image,
    save_maps,
    to_uint8_array,
)


def test_uint8_rgb_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    Image.fromarray(array).save(tmp_path / "x.png")
    image = load_image(tmp_path / "x.png")
    assert image.shape == (1, 3, 7, 5) and image.dtype == torch.float32
    np.testing.assert_array_equal(to_uint8_array(image), array)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    Image.fromarray(np.full((4, 6), 51, dtype=np.uint8), mode="L").save(tmp_path / "g.png")
    image = load_image(tmp_path / "g.png")
    assert image.shape == (1, 3, 4, 6)
    assert torch.allclose(image, torch.full_like(image, 0.2))


def test_16bit_png_is_scaled_by_65535(tmp_path):
    Image.fromarray(np.full((3, 3), 65535 // 5, dtype=np.uint16)).save(tmp_path / "g16.png")
    image = load_image(tmp_path / "g16.png")
    assert torch.allclose(image, torch.full_like(image, (65535 // 5) / 65535), atol=1e-6)


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red, half transparent
    rgba[..., 3] = 128
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    pixel = load_image(tmp_path / "a.png")[0, :, 0, 0]
    alpha = 128 / 255
    expected = torch.tensor([1.0, 1 - alpha, 1 - alpha])
    assert torch.allclose(pixel, expected, atol=1e-6)


def test_palette_with_transparency(tmp_path):
    image = Image.new("P", (3, 3), 0)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    image.save(tmp_path / "p.png", transparency=0)
    loaded = load_image(tmp_path / "p.png")
    assert torch.allclose(loaded[0, :, 0, 0], torch.ones(3))  # transparent → white
    assert torch.allclose(loaded[0, :, 1, 1], torch.tensor([10, 20, 30]) / 255.0)


def test_cmyk_jpeg_converts_to_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 0, 0)).save(tmp_path / "c.jpg", quality=100)
    pixel = load_image(tmp_path / "c.jpg")[0, :, 4, 4]
    assert pixel[0] > 0.9 and pixel[1] < 0.1 and pixel[2] > 0.9  # magenta


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((2, 4, 3), dtype=np.uint8)
    array[0, 0] = 255  # white top-left pixel in a landscape image
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90° clockwise for display
    Image.fromarray(array).save(tmp_path / "r.jpg", exif=exif, quality=100)
    image = load_image(tmp_path / "r.jpg")
    assert image.shape == (1, 3, 4, 2)  # now portrait
    assert image[0, :, 0, 1].mean() > 0.8  # top-left moved to top-right


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    with pytest.raises(ImageLoadError, match="big.png.*300x200.*decompression bomb"):
        load_image(tmp_path / "big.png", max_pixels=10_000)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"not an image at all", "not an image"), (None, "does not exist")],
)
def test_unreadable_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad file.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=f"bad file.png.*{message}"):
        load_image(path)


def test_truncated_png(tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        tmp_path / "t.png"
    )
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="t.png.*(corrupt|truncated)"):
        load_image(tmp_path / "t.png")


@pytest.mark.parametrize(
    "tensor",
    [torch.full((3, 4, 4), float("nan")), torch.full((3, 4, 4), float("inf")), torch.full((3, 4, 4), 2.0)],
)
def test_bad_tensor_values_are_refused(tensor):
    with pytest.raises(InvalidInputError):
        load_image(tensor)


def test_float_array_out_of_range_suggests_fix():
    with pytest.raises(InvalidInputError, match="divide by 255"):
        load_image(np.full((4, 4, 3), 200.0))


def test_tensor_shapes_are_normalised():
    assert load_image(torch.rand(5, 6)).shape == (1, 3, 5, 6)
    assert load_image(torch.rand(1, 5, 6)).shape == (1, 3, 5, 6)
    assert load_image(torch.rand(2, 3, 5, 6)).shape == (2, 3, 5, 6)
    with pytest.raises(InvalidInputError, match="C in"):
        load_image(torch.rand(2, 5, 5, 6))


def test_maps_round_trip_without_pickle(tmp_path):
    maps = torch.rand(9, 5, 7)
    path = save_maps(maps, tmp_path / "m.npz")
    assert torch.equal(load_maps(path), maps)
    with np.load(path, allow_pickle=False) as data:
        assert data["maps"].dtype == np.float32


def test_save_image_and_folder_expansion(tmp_path):
    save_image(torch.rand(1, 3, 4, 4), tmp_path / "b.png")
    save_image(torch.rand(3, 4, 4), tmp_path / "a.PNG")
    (tmp_path / "notes.txt").write_text("x")
    paths = expand_image_paths([tmp_path, tmp_path / "missing.png"])
    assert [p.name for p in paths] == ["a.PNG", "b.png", "missing.png"]
