"""The bad-input suite (the one place for it): every odd or broken input gives a clear reliqa
error that names it, or the conversion documented in reliqa/io.py — never a traceback — and in
batch mode a bad file costs its own row only.
"""

from __future__ import annotations

import csv
import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from reliqa import batch
from reliqa.exceptions import ImageLoadError, InvalidInputError, ReliqaError, WeightsError
from reliqa.io import load_image

PHOTO = np.ascontiguousarray(data.astronaut()[:48, :64])  # (48, 64, 3) uint8


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_from_rows(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB, nor lie about the size)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def bomb_png() -> bytes:
    """A ~100-byte PNG whose header claims 20000 × 20000 RGB pixels."""
    return png_from_rows(20000, 20000, 8, 2, b"\0" * 64)


def png16(values: np.ndarray) -> bytes:
    """(H, W) gray or (H, W, 3) RGB uint16 → 16-bit PNG bytes."""
    height, width = values.shape[:2]
    rows = b"".join(b"\0" + values[y].astype(">u2").tobytes() for y in range(height))
    return png_from_rows(width, height, 16, 2 if values.ndim == 3 else 0, rows)


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- refused, clearly

BROKEN: dict[str, tuple[bytes, str]] = {
    "zero bytes.png": (b"", "empty"),
    "random.png": (bytes(range(256)) * 4, "not an image"),
    "truncated.png": (encode(Image.fromarray(PHOTO), "PNG")[:300], "truncated"),
    "truncated.jpg": (encode(Image.fromarray(PHOTO), "JPEG")[:400], "truncated"),
    "bomb.png": (bomb_png(), "decompression bomb"),
    "notes.jpg": (b"just some text, not a picture\n", "not an image"),
    "document.pdf": (b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n", "not an image"),
    "bad header.ppm": (b"P6\n6\xf14 48\n255\n" + bytes(100), "cannot be read"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_give_an_error_naming_the_file(tmp_path: Path, name: str) -> None:
    content, message = BROKEN[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageLoadError) as raised:
        load_image(path)
    assert str(path) in str(raised.value) and message in str(raised.value)


def test_the_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    import resource

    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ImageLoadError, match="20000x20000"):
        load_image(path)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50_000  # decoding would need 1.2 GB


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageLoadError, match="is a directory"):
        load_image(tmp_path)


@pytest.mark.parametrize(
    "tensor",
    [
        torch.full((1, 3, 8, 8), float("nan")),
        torch.cat([torch.zeros(1, 3, 4, 8), torch.full((1, 3, 4, 8), float("inf"))], dim=2),
        torch.full((3, 8, 8), -float("inf")),
    ],
)
def test_nan_and_inf_tensors_are_refused(tensor: torch.Tensor) -> None:
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        load_image(tensor)
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        load_image(tensor.numpy().reshape(-1, 8, 8).transpose(1, 2, 0)[..., :3].copy())


def test_nan_tensors_through_the_public_api() -> None:
    """reliqa's image-taking functions validate through load_image: NaN/inf never get scored."""
    import reliqa

    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    broken = images.clone()
    broken[0, 0, 5, 5] = float("nan")
    with pytest.raises(InvalidInputError, match="NaN"):
        reliqa.load_image(broken)
    calls = {
        "score": lambda function: function(broken, model="hirqa-s"),
        "compare": lambda function: function(broken, images),
        "rank": lambda function: function([images, broken], images),
    }
    for name, call in calls.items():
        if name not in reliqa._LAZY:
            continue
        try:
            call(getattr(reliqa, name))
        except InvalidInputError as error:
            assert "NaN" in str(error), name
        except ReliqaError as error:  # e.g. weights not shipped yet: not this test's concern
            assert "NaN" in str(error) or "weights" in str(error), (name, error)
        else:
            pytest.fail(f"reliqa.{name} accepted a NaN image")


def test_out_of_range_float_arrays_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        load_image(np.full((4, 4, 3), 255.0, dtype=np.float32))


# ----------------------------------------------------------------------------- documented conversions


def test_wrong_extension_is_read_by_content(tmp_path: Path) -> None:
    path = tmp_path / "really a png.jpg"
    path.write_bytes(encode(Image.fromarray(PHOTO), "PNG"))
    assert torch.equal(load_image(path), load_image(PHOTO))


def test_sixteen_bit_gray_is_scaled_by_1_over_65535(tmp_path: Path) -> None:
    values = np.array([[0, 1, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / "gray16.png"
    path.write_bytes(png16(values))
    loaded = load_image(path)
    assert loaded.shape == (1, 3, 1, 4)
    expected = torch.from_numpy(values.astype(np.float32) / 65535.0)
    for channel in range(3):
        assert torch.allclose(loaded[0, channel], expected, atol=1e-7)


def test_sixteen_bit_rgb_loads_with_eight_bit_precision(tmp_path: Path) -> None:
    values = np.array([[[0, 1000, 32768], [65535, 40000, 65280]]], dtype=np.uint16)
    path = tmp_path / "rgb16.png"
    path.write_bytes(png16(values))
    loaded = load_image(path)[0].permute(1, 2, 0).numpy()
    assert np.abs(loaded - values / 65535.0).max() <= 1 / 255 + 1e-6


def test_palette_and_alpha_are_composited_on_white(tmp_path: Path) -> None:
    palette = Image.fromarray(PHOTO).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    (tmp_path / "palette.png").write_bytes(encode(palette, "PNG"))
    assert torch.allclose(load_image(tmp_path / "palette.png"), load_image(np.asarray(palette.convert("RGB"))))

    rgba = np.dstack([PHOTO, np.full(PHOTO.shape[:2], 255, np.uint8)])
    rgba[:10, :, 3] = 0  # transparent band → white
    rgba[10:20, :, 3] = 128
    (tmp_path / "rgba.png").write_bytes(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    loaded = load_image(tmp_path / "rgba.png")[0]
    assert torch.equal(loaded[:, :10], torch.ones(3, 10, 64))
    half = 128 / 255
    expected = torch.from_numpy(PHOTO[10:20].astype(np.float32) / 255).permute(2, 0, 1) * half + (1 - half)
    assert torch.allclose(loaded[:, 10:20], expected, atol=1e-6)
    assert torch.equal(loaded[:, 20:], load_image(PHOTO)[0, :, 20:])


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 0, 0))  # magenta ink
    (tmp_path / "cmyk.jpg").write_bytes(encode(cmyk, "JPEG", quality=100))
    pixel = load_image(tmp_path / "cmyk.jpg")[0, :, 4, 4]
    assert pixel[0] > 0.95 and pixel[1] < 0.05 and pixel[2] > 0.95


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.fromarray(PHOTO)  # 64 wide, 48 high
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    (tmp_path / "rotated.jpg").write_bytes(encode(image, "JPEG", exif=exif, quality=95))
    loaded = load_image(tmp_path / "rotated.jpg")
    assert loaded.shape == (1, 3, 64, 48)
    upright = load_image(np.asarray(image.transpose(Image.Transpose.ROTATE_270)))
    assert (loaded - upright).abs().mean() < 0.03  # JPEG loss only


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = Image.fromarray(PHOTO).convert("L")
    (tmp_path / "gray.png").write_bytes(encode(gray, "PNG"))
    loaded = load_image(tmp_path / "gray.png")
    assert loaded.shape == (1, 3, 48, 64)
    assert torch.equal(loaded[:, 0], loaded[:, 1]) and torch.equal(loaded[:, 1], loaded[:, 2])


def test_one_pixel_image_loads_and_metrics_refuse_it_clearly(tmp_path: Path) -> None:
    from reliqa.metrics import create_metric, list_metrics

    (tmp_path / "dot.png").write_bytes(encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"))
    dot = load_image(tmp_path / "dot.png")
    assert dot.shape == (1, 3, 1, 1)
    for info in list_metrics():
        try:
            metric = create_metric(info.name)
        except WeightsError:
            continue  # its parameters are not shipped (yet): nothing to test
        try:
            value = metric(dot, dot if info.kind == "FR" else None)
        except ReliqaError as error:
            assert any(text in str(error) for text in ("1×1", "1x1", "at least", "too small")), str(error)
        else:  # a metric that accepts 1×1 must give a number (PSNR of identical images: +inf)
            assert not torch.isnan(value).any(), info.name


def test_paths_with_spaces_and_unicode(tmp_path: Path) -> None:
    folder = tmp_path / "dossier spécial 写真"
    folder.mkdir()
    path = folder / "phôto (1) ✓.png"
    Image.fromarray(PHOTO).save(path)
    assert torch.equal(load_image(path), load_image(PHOTO))
    items = batch.items_from_inputs([folder])
    assert [item.image for item in items] == [str(path)]


def test_mismatched_pair_sizes_fail_that_row_only(tmp_path: Path) -> None:
    from reliqa.metrics import list_metrics

    full_reference = [info.name for info in list_metrics() if info.kind == "FR"]
    if not full_reference:
        pytest.skip("no full-reference metric registered")
    Image.fromarray(PHOTO).save(tmp_path / "ref.png")
    Image.fromarray(PHOTO[:40]).save(tmp_path / "cropped.png")
    Image.fromarray(PHOTO).save(tmp_path / "same.png")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("reference,test\nref.png,cropped.png\nref.png,same.png\n")
    out = tmp_path / "r.csv"
    summary = batch.run_batch(batch.items_from_pairs_csv(pairs), full_reference[:1], out)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert summary.failed == 1
    assert rows[0]["error"] and rows[0][full_reference[0]] == ""
    assert rows[1]["error"] == "" and rows[1][full_reference[0]] != ""


# ----------------------------------------------------------------------------- batch + CLI


def test_cli_batch_over_a_folder_of_bad_inputs_loses_no_good_result(tmp_path: Path) -> None:
    """One real `reliqa batch` run: every bad file is its own error row, no traceback, exit 1."""
    folder = tmp_path / "mixed bag"
    folder.mkdir()
    for name, (content, _) in BROKEN.items():
        (folder / name).write_bytes(content)
    good = {
        "plain.png": encode(Image.fromarray(PHOTO), "PNG"),
        "gray.png": encode(Image.fromarray(PHOTO).convert("L"), "PNG"),
        "palette.gif": encode(Image.fromarray(PHOTO).convert("P"), "GIF"),
        "cmyk.jpg": encode(Image.fromarray(PHOTO).convert("CMYK"), "JPEG"),
        "rgba.png": encode(Image.fromarray(PHOTO).convert("RGBA"), "PNG"),
        "gray16.png": png16(PHOTO[..., 0].astype(np.uint16) * 257),
        "ünï cødé.png": encode(Image.fromarray(PHOTO), "PNG"),
        "png named.jpg": encode(Image.fromarray(PHOTO), "PNG"),
    }
    for name, content in good.items():
        (folder / name).write_bytes(content)
    (folder / "dot.png").write_bytes(encode(Image.new("RGB", (1, 1)), "PNG"))
    out = tmp_path / "results.csv"
    run = subprocess.run(
        [str(Path(sys.executable).with_name("reliqa")), "batch", str(folder), "--metrics", "laplacian_var",
         "--out", str(out), "--workers", "1", "--json"],
        capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    with open(out, newline="", encoding="utf-8") as handle:
        rows = {Path(row["image"]).name: row for row in csv.DictReader(handle)}
    # .pdf is not an image extension, so the folder listing skips it
    listed = {name for name in BROKEN if not name.endswith(".pdf")} | set(good) | {"dot.png"}
    assert set(rows) == listed
    for name in good:
        assert rows[name]["error"] == "" and float(rows[name]["laplacian_var"]) > 0, name
    for name in listed - set(good) - {"dot.png"}:
        assert rows[name]["laplacian_var"] == "" and name in rows[name]["error"], name
    assert "3×3" in rows["dot.png"]["error"] or "3x3" in rows["dot.png"]["error"]


@pytest.mark.parametrize(
    "arguments",
    [
        ["batch", "{folder}", "--metrics", "laplacian_var", "--out", "{out}", "--workers", "-1"],
        ["batch", "{folder}", "--metrics", "", "--out", "{out}"],
        ["batch", "{missing}", "--metrics", "laplacian_var", "--out", "{out}", "--ref-dir", "{missing}"],
        ["batch", "--pairs", "{missing}", "--metrics", "laplacian_var", "--out", "{out}"],
        ["batch", "{folder}", "--metrics", "laplacian_var", "--out", "{out}", "--device", "nosuchdevice"],
    ],
)
def test_cli_bad_usage_exits_2_without_traceback(tmp_path: Path, arguments: list[str]) -> None:
    from typer.testing import CliRunner

    from reliqa.cli import app

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(PHOTO).save(folder / "a.png")
    values = {"folder": str(folder), "out": str(tmp_path / "r.csv"), "missing": str(tmp_path / "nope")}
    result = CliRunner().invoke(app, [a.format(**values) for a in arguments])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "error:" in result.output
