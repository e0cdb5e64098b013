"""`reliqa distort` and `reliqa demo` through Typer's CliRunner: JSON contract, files, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from reliqa.attributes import ATTRIBUTES
from reliqa.cli import app
from reliqa.distortions import DISTORTIONS

runner = CliRunner()


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 75×113 crop of the bundled cat photo (odd size on purpose)."""
    from skimage import data

    path = tmp_path_factory.mktemp("in") / "cat.png"
    Image.fromarray(data.chelsea()[100:175, 150:263]).save(path)
    return path


def test_distort_json_contract_and_files(photo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["distort", str(photo), "--out", str(tmp_path), "--count", "3", "--seed", "4", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert len(payload["outputs"]) == 3
    for output in payload["outputs"]:
        test = Image.open(output["test"])
        assert test.size == (113, 75) and test.mode == "RGB"
        with np.load(output["maps"], allow_pickle=False) as stored:
            maps = stored["maps"]
        assert maps.shape == (9, 75, 113) and maps.dtype == np.float32
        assert maps.min() >= 0.0 and maps.max() <= 1.0
        assert Image.open(output["picture"]).mode in ("RGB", "RGBA")
        assert 1 <= len(output["distortions"]) <= 4
        for record in output["distortions"]:
            assert set(record) == {"type", "attribute", "sign", "intensity", "coverage"}
            entry = DISTORTIONS[record["type"]]
            assert (record["attribute"], record["sign"]) == (entry.attribute, entry.sign)
            assert 0.0 < record["intensity"] <= 1.0 and 0.0 <= record["coverage"] <= 1.0
            deviation = maps[ATTRIBUTES.index(record["attribute"])] - 0.5
            changed = np.abs(deviation) > 1e-6
            assert changed.any()
            assert set(np.sign(deviation[changed]).tolist()) == {record["sign"]}


def test_distort_with_given_types(photo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["distort", str(photo), "--out", str(tmp_path), "--types", "jpeg,gaussian_blur", "--json"])
    assert result.exit_code == 0, result.output
    (output,) = json.loads(result.stdout)["outputs"]
    assert [d["type"] for d in output["distortions"]] == ["gaussian_blur", "jpeg"]  # pipeline order


def test_list_types_json() -> None:
    result = runner.invoke(app, ["distort", "--list-types", "--json"])
    assert result.exit_code == 0, result.output
    types = json.loads(result.stdout)["types"]
    assert len(types) >= 24
    assert {t["name"] for t in types} == set(DISTORTIONS)
    for entry in types:
        assert entry["sign"] in (1, -1)
        assert entry["attribute"] == DISTORTIONS[entry["name"]].attribute


def test_unknown_type_is_bad_usage_with_the_known_list(photo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["distort", str(photo), "--out", str(tmp_path), "--types", "blurr"])
    assert result.exit_code == 2
    assert "blurr" in result.output and "gaussian_blur" in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_opposite_signs_are_bad_usage(photo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["distort", str(photo), "--out", str(tmp_path), "--types", "brighten,darken"])
    assert result.exit_code == 2
    assert "opposite" in result.output


def test_unreadable_image_fails_cleanly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    result = runner.invoke(app, ["distort", str(broken), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "broken.png" in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["distort", str(tmp_path / "nope.png"), "--out", str(tmp_path)])
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_missing_arguments_are_bad_usage(photo: Path) -> None:
    assert runner.invoke(app, ["distort", "--out", "x"]).exit_code == 2
    assert runner.invoke(app, ["distort", str(photo)]).exit_code == 2
    assert runner.invoke(app, ["distort", str(photo), "--out", "x", "--count", "0"]).exit_code == 2


def test_demo_page_shows_reference_test_and_maps() -> None:
    from reliqa.reports.demo import demo_page

    html = demo_page(photos=["chelsea"], versions=1, seed=0).html()
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 3  # reference, test, truth maps
    assert all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert "chelsea" in html and "<table>" in html and "coverage" in html


def test_demo_command_writes_a_self_contained_page(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--photos", "chelsea", "--versions", "1", "--json"])
    assert result.exit_code == 0, result.output
    page = Path(json.loads(result.stdout)["page"])
    assert page == tmp_path / "index.html"
    html = page.read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) >= 3  # the engine's part; later parts may add their own pictures
    assert all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_demo_refuses_unknown_photos(tmp_path: Path) -> None:
    unknown = runner.invoke(app, ["demo", "--out", str(tmp_path), "--photos", "download_all"])
    assert unknown.exit_code == 2 and "known" in unknown.output
    assert not (tmp_path / "index.html").exists()


def test_render_maps_colours_directions_and_panels(tmp_path: Path) -> None:
    import torch

    from reliqa.exceptions import InvalidInputError
    from reliqa.reports import ReportPage
    from reliqa.reports.maps import active_channels, render_maps

    image = torch.full((3, 40, 60), 0.5)
    maps = torch.full((9, 40, 60), 0.5)
    maps[0, :, :30] = 1.0  # brighter on the left
    picture = render_maps(image, maps, tmp_path / "one.png")
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert (tmp_path / "one.png").is_file()
    # The colour bars are symmetric; the overlay tips the balance: red for more, blue for less.
    assert (picture[..., 0].astype(int) - picture[..., 2]).mean() > 5
    maps[0, :, :30] = 0.0
    darker = render_maps(image, maps)
    assert (darker[..., 2].astype(int) - darker[..., 0]).mean() > 5
    maps[6] = 0.8
    assert active_channels(maps) == [0, 6]
    two = render_maps(image, maps)
    none = render_maps(image, torch.full((1, 9, 40, 60), 0.5))
    assert two.shape[1] > none.shape[1]
    with pytest.raises(InvalidInputError, match="maps"):
        render_maps(image, torch.zeros(8, 40, 60))
    page = ReportPage("t <1>").paragraph("a & b")
    assert "t &lt;1&gt;" in page.html() and "a &amp; b" in page.html()
