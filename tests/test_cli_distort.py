"""`reliqa distort` and `reliqa demo` through Typer's CliRunner: JSON contract, files, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

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
            channel = ["brightness", "contrast", "saturation", "temperature", "tint", "sharpness",
                       "noise", "compression", "structure"].index(record["attribute"])
            deviation = maps[channel] - 0.5
            assert np.sign(deviation[np.abs(deviation) > 1e-6]).tolist() == [record["sign"]] * int(
                (np.abs(deviation) > 1e-6).sum()
            )
    again = runner.invoke(app, ["distort", str(photo), "--out", str(tmp_path / "b"), "--count", "3", "--seed", "4", "--json"])
    assert [o["distortions"] for o in json.loads(again.stdout)["outputs"]] == [o["distortions"] for o in payload["outputs"]]


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


def test_demo_writes_a_self_contained_page(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path), "--photos", "chelsea", "--versions", "1", "--json"])
    assert result.exit_code == 0, result.output
    page = Path(json.loads(result.stdout)["page"])
    assert page == tmp_path / "index.html"
    html = page.read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 3  # reference, test, truth maps
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "chelsea" in html and "<table>" in html
    unknown = runner.invoke(app, ["demo", "--out", str(tmp_path), "--photos", "download_all"])
    assert unknown.exit_code == 2 and "known" in unknown.output
