"""`reliqa compare` / `reliqa rank` and `reliqa.compare` / `reliqa.rank`: contracts and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import kornia
import pytest
import torch
from typer.testing import CliRunner

import reliqa
from reliqa.attributes import ATTRIBUTES
from reliqa.cli import app
from reliqa.exceptions import ImageLoadError, InvalidInputError, ShapeMismatchError
from reliqa.io import save_image

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 192×160 crop of astronaut as reference, blurred and noisy versions, odd files."""
    from skimage import data

    folder = tmp_path_factory.mktemp("compare")
    reference = reliqa.load_image(data.astronaut())[..., 40:200, 180:372]
    generator = torch.Generator().manual_seed(0)
    versions = {
        "ref": reference,
        "ref_copy": reference,
        "mild": kornia.filters.gaussian_blur2d(reference, (7, 7), (1.0, 1.0)),
        "strong": kornia.filters.gaussian_blur2d(reference, (19, 19), (3.0, 3.0)),
        "noisy": (reference + 0.1 * torch.randn(reference.shape, generator=generator)).clamp(0, 1),
        "small": reference[..., :120, :150],
        "tiny": reference[..., :3, :5],
    }
    paths = {name: save_image(image, folder / f"{name}.png") for name, image in versions.items()}
    paths["text"] = folder / "notes.png"
    paths["text"].write_text("not an image")
    return paths


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_compare_json_contract(files: dict[str, Path], tmp_path: Path) -> None:
    maps_out = tmp_path / "maps.png"
    payload = _json(
        [
            "compare",
            "--ref",
            str(files["ref"]),
            "--test",
            str(files["strong"]),
            "--json",
            "--maps-out",
            str(maps_out),
        ]
    )
    assert set(payload) == {"score", "attributes", "maps"}
    assert isinstance(payload["score"], float)
    assert list(payload["attributes"]) == list(ATTRIBUTES)
    for summary in payload["attributes"].values():
        assert set(summary) == {"mean_signed", "area"}
        assert -1.0 <= summary["mean_signed"] <= 1.0 and 0.0 <= summary["area"] <= 1.0
    assert payload["maps"] == str(maps_out) and maps_out.stat().st_size > 1000
    assert payload["attributes"]["sharpness"]["mean_signed"] < -0.1  # blurrier
    assert payload["score"] < 0.0


def test_compare_without_maps_reports_null(files: dict[str, Path]) -> None:
    payload = _json(
        ["compare", "--ref", str(files["ref"]), "--test", str(files["noisy"]), "--json"]
    )
    assert payload["maps"] is None
    assert payload["attributes"]["noise"]["mean_signed"] > 0.1  # noisier


def test_identical_images_give_the_neutral_result(files: dict[str, Path]) -> None:
    payload = _json(
        ["compare", "--ref", str(files["ref"]), "--test", str(files["ref_copy"]), "--json"]
    )
    assert payload["score"] == 0.0
    assert all(s == {"mean_signed": 0.0, "area": 0.0} for s in payload["attributes"].values())
    result = reliqa.compare(files["ref_copy"], files["ref"])
    assert torch.all(result.maps == 0.5) and result.maps.shape == (9, 160, 192)


def test_compare_maps_mirror_and_the_score_is_the_models(files: dict[str, Path]) -> None:
    forward = reliqa.compare(files["noisy"], files["ref"])
    backward = reliqa.compare(files["ref"], files["noisy"])
    torch.testing.assert_close(forward.maps, 1.0 - backward.maps, atol=1e-5, rtol=0)
    # the API passes (test, reference) to the model in that order (the score need not be
    # anti-symmetric: the relational scorer may take the reference as the target look)
    model = reliqa.create_model("relational")
    test, reference = reliqa.load_image(files["noisy"]), reliqa.load_image(files["ref"])
    with torch.inference_mode():
        direct = float(model(test, reference).score[0])
    assert forward.score == pytest.approx(direct, abs=1e-5)


def test_rank_json_contract_orders_best_first(files: dict[str, Path]) -> None:
    candidates = [str(files[name]) for name in ("strong", "ref_copy", "mild")]
    payload = _json(["rank", "--ref", str(files["ref"]), *candidates, "--json"])
    order = [entry["image"] for entry in payload["ranking"]]
    assert order == [str(files["ref_copy"]), str(files["mild"]), str(files["strong"])]
    scores = [entry["score"] for entry in payload["ranking"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == 0.0


def test_rank_api_returns_candidates_with_their_positions(files: dict[str, Path]) -> None:
    ranking = reliqa.rank([files["strong"], files["mild"]], files["ref"])
    assert [entry.index for entry in ranking] == [1, 0]
    with pytest.raises(InvalidInputError):
        reliqa.rank([], files["ref"])


def test_different_sizes_fail_clearly_unless_resized(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["compare", "--ref", str(files["ref"]), "--test", str(files["small"]), "--json"]
    )
    assert result.exit_code == 1
    assert "small.png" in result.stderr and "--align resize" in result.stderr
    assert "Traceback" not in result.output
    with pytest.raises(ShapeMismatchError):
        reliqa.compare(files["small"], files["ref"])
    payload = _json(
        [
            "compare",
            "--ref",
            str(files["ref"]),
            "--test",
            str(files["small"]),
            "--align",
            "resize",
            "--json",
        ]
    )
    assert isinstance(payload["score"], float)


def test_bad_align_value_is_a_usage_error(files: dict[str, Path]) -> None:
    result = runner.invoke(
        app, ["compare", "--ref", str(files["ref"]), "--test", str(files["ref"]), "--align", "crop"]
    )
    assert result.exit_code == 2


def test_non_image_and_missing_files_fail_cleanly(files: dict[str, Path]) -> None:
    for bad in (files["text"], files["ref"].with_name("missing.png")):
        result = runner.invoke(
            app, ["compare", "--ref", str(files["ref"]), "--test", str(bad), "--json"]
        )
        assert result.exit_code == 1
        assert bad.name in result.stderr and "Traceback" not in result.output
    result = runner.invoke(
        app, ["rank", "--ref", str(files["ref"]), str(files["mild"]), str(files["text"])]
    )
    assert result.exit_code == 1 and "notes.png" in result.stderr
    # the readable candidate is still ranked (before: the whole command failed)
    assert "mild.png" in result.stdout
    payload = json.loads(
        runner.invoke(
            app, ["rank", str(files["mild"]), str(files["text"]), "--ref", str(files["ref"]), "--json"]
        ).stdout
    )
    assert [entry["image"] for entry in payload["ranking"]] == [str(files["mild"])]
    assert payload["errors"][0]["image"] == str(files["text"]) and "notes.png" in payload["errors"][0]["error"]
    with pytest.raises(ImageLoadError):
        reliqa.compare(files["ref"], files["text"])


def test_tiny_images_work(files: dict[str, Path]) -> None:
    payload = _json(
        ["compare", "--ref", str(files["tiny"]), "--test", str(files["tiny"]), "--json"]
    )
    assert payload["score"] == 0.0
    result = reliqa.compare(torch.rand(1, 3, 3, 5), files["tiny"])
    assert result.maps.shape == (9, 3, 5)


def test_demo_section_shows_predicted_maps_and_a_ranking() -> None:
    from reliqa.reports.html import ReportPage
    from reliqa.reports.relational_demo import add_relational_section

    page = add_relational_section(ReportPage("demo"), photos=["chelsea"], versions=1, seed=0)
    html = page.html()
    assert "predicted maps, score" in html
    assert "the intensity order" in html and html.count("<img") == 2 + 4  # test, maps, 4 ranked


def test_one_pair_order_test_first_reference_second(files: dict[str, Path]) -> None:
    """Issue 11: compare(ref, test) used to take the reference first, so the natural call
    compare(jpeg, ref) scored the JPEG as better. Now test first, reference second, with the
    keywords test= and reference= (as pyiqa, piq, torchmetrics)."""
    positional = reliqa.compare(files["strong"], files["ref"])
    keywords = reliqa.compare(reference=files["ref"], test=files["strong"])
    assert positional.score == keywords.score < 0  # the distorted test is worse
    ranking = reliqa.rank(candidates=[files["strong"], files["ref_copy"]], reference=files["ref"])
    assert [entry.index for entry in ranking] == [1, 0]
    cli = _json(["compare", "--test", str(files["strong"]), "--reference", str(files["ref"]), "--json"])
    assert cli["score"] == pytest.approx(positional.score, abs=1e-6)
