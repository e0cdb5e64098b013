"""``reliqa.score`` and ``reliqa score``: the contract (JSON, folders, per-file errors, exits)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import reliqa
from reliqa.cli import app
from reliqa.exceptions import ImageLoadError, UnknownNameError
from reliqa.models.weights import WEIGHTS_DIR

pytestmark = pytest.mark.skipif(
    not (WEIGHTS_DIR / "hirqa-s.json").is_file() or not (WEIGHTS_DIR / "hirqa.json").is_file(),
    reason="shipped hirqa weights missing",
)


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """a.png (good), b.png (not an image), c.jpg (good): the broken file sits in the middle."""
    from skimage import data

    Image.fromarray(data.astronaut()[::4, ::4]).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not an image")
    Image.fromarray(data.coffee()[::4, ::4]).save(tmp_path / "c.jpg", quality=90)
    return tmp_path


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["score", *args])
    return result.exit_code, result.stdout, result.stderr


def test_folder_with_a_broken_file_reports_it_and_scores_the_rest(folder: Path) -> None:
    code, out, _ = _run(str(folder), "--model", "hirqa-s", "--json")
    assert code == 1
    results = json.loads(out)["results"]
    assert [Path(r["image"]).name for r in results] == ["a.png", "b.png", "c.jpg"]
    assert set(results[1]) == {"image", "error"} and "b.png" in results[1]["error"]
    for record in (results[0], results[2]):
        assert set(record) == {"image", "score"} and 0.0 <= record["score"] <= 1.0


def test_good_files_exit_zero_and_match_the_python_api(folder: Path) -> None:
    files = [str(folder / "a.png"), str(folder / "c.jpg")]
    code, out, _ = _run(*files, "--model", "hirqa-s", "--json")
    assert code == 0
    cli_scores = [r["score"] for r in json.loads(out)["results"]]
    api_scores = reliqa.score(files, model="hirqa-s").tolist()
    assert cli_scores == pytest.approx(api_scores, abs=1e-6)


def test_default_model_is_hirqa_and_plain_output_has_one_line_per_image(folder: Path) -> None:
    code, out, err = _run(str(folder / "a.png"), str(folder / "missing.png"))
    assert code == 1
    assert out.strip().endswith("a.png") and len(out.strip().splitlines()) == 1
    assert "missing.png" in err and "does not exist" in err
    hirqa = reliqa.score(str(folder / "a.png"))
    assert float(out.split()[0]) == pytest.approx(float(hirqa[0]), abs=1e-4)


def test_unknown_model_is_bad_usage(folder: Path) -> None:
    code, _, err = _run(str(folder / "a.png"), "--model", "nope")
    assert code == 2 and "hirqa" in err


def test_api_batches_equal_single_images_and_accept_mixed_sources() -> None:
    from skimage import data

    photo = data.chelsea()
    images = [photo, torch.from_numpy(photo).permute(2, 0, 1).float() / 255.0, data.rocket()]
    scores = reliqa.score(images, model="hirqa-s", batch_size=2)
    assert scores.shape == (3,)
    assert scores[0].item() == pytest.approx(scores[1].item(), abs=1e-5)
    alone = reliqa.score(data.rocket(), model="hirqa-s")
    assert scores[2].item() == pytest.approx(alone.item(), abs=1e-5)


def test_api_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="nothing.png"):
        reliqa.score(str(tmp_path / "nothing.png"), model="hirqa-s")
    with pytest.raises(UnknownNameError, match="hirqa"):
        reliqa.score(np.zeros((64, 64, 3), np.uint8), model="brisque")
