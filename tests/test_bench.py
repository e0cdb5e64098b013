"""The benchmark runner and `reliqa bench`: resume, broken images, direction handling, output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import kornia
import pytest
import torch
from typer.testing import CliRunner

from reliqa.cli import app
from reliqa.evaluation import bench
from reliqa.evaluation.bench import run_benchmark
from reliqa.evaluation.datasets import IQADataset, IQAItem, read_csv_dataset
from reliqa.evaluation.scorers import Scorer, resolve_scorer
from reliqa.exceptions import InvalidInputError, UnknownNameError
from reliqa.io import save_image
from reliqa.metrics import sharpness

BLURS = [0.0, 0.6, 1.2, 1.8, 2.4, 3.0, 3.6, 4.2]


@pytest.fixture()
def blur_series(tmp_path: Path, astronaut: torch.Tensor) -> Path:
    """A CSV dataset: one crop blurred more and more; MOS falls with the blur."""
    crop = astronaut[..., 100:196, 150:246]
    folder = tmp_path / "data"
    lines = ["image,mos"]
    for index, sigma in enumerate(BLURS):
        image = crop if sigma == 0 else kornia.filters.gaussian_blur2d(crop, (15, 15), (sigma, sigma))
        save_image(image, folder / "images" / f"blur{index}.png")
        lines.append(f"images/blur{index}.png,{5 - sigma:.1f}")
    (folder / "scores.csv").write_text("\n".join(lines) + "\n")
    return folder / "scores.csv"


@pytest.fixture()
def count_scored(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the images laplacian_var is asked to score."""
    calls: list[int] = []
    original = sharpness.LaplacianVariance.forward

    def counting(self, test, reference=None):
        calls.append(test.shape[0])
        return original(self, test, reference)

    monkeypatch.setattr(sharpness.LaplacianVariance, "forward", counting)
    return calls


@pytest.fixture()
def scoring_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip the per-metric analysis (bootstrap, GMC fit, plots: seconds each) where a test
    checks scoring only; test_direction_blur_series_and_outputs runs the real one."""

    def count_only(scorer, dataset, rows, *args, **kwargs):
        count = sum(1 for row in rows if row.get(scorer.name))
        correlations = {"SRCC": {"value": 0.5, "ci": [0.25, 0.75]}}
        return bench.MetricSummary(scorer.name, scorer.higher_is_better, count, correlations, {"SRCC": 0.4})

    monkeypatch.setattr(bench, "_evaluate", count_only)


def _fast(**kwargs: object) -> dict[str, object]:
    return {"n_boot": 50, "gmc_samples": 12, "progress": False, **kwargs}


@pytest.mark.usefixtures("scoring_only")
def test_resume_scores_each_image_once(blur_series: Path, tmp_path: Path, count_scored: list[int]) -> None:
    dataset = read_csv_dataset(blur_series)
    out = tmp_path / "run"
    first = run_benchmark(dataset.head(5), ["laplacian_var"], out, batch_size=2, **_fast())
    assert sum(count_scored) == 5 and first.scored_now == 5
    second = run_benchmark(dataset, ["laplacian_var"], out, batch_size=2, **_fast())
    assert sum(count_scored) == 8 and second.scored_now == 3 and second.items == 8
    with open(out / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and all(row["laplacian_var"] for row in rows)
    third = run_benchmark(dataset, ["laplacian_var"], out, **_fast(resume=False))
    assert sum(count_scored) == 16 and third.scored_now == 8


def test_direction_blur_series_and_outputs(blur_series: Path, tmp_path: Path) -> None:
    result = run_benchmark(read_csv_dataset(blur_series), ["laplacian_var"], tmp_path / "run", **_fast())
    summary = result.metrics["laplacian_var"]
    assert summary.error is None and summary.count == 8
    assert summary.correlations["SRCC"]["value"] == pytest.approx(1.0)
    assert summary.correlations["KRCC"]["value"] == pytest.approx(1.0)
    assert set(summary.gmc_average_height) >= {"PLCC", "SRCC", "KRCC"}
    for kind in ("gmc_heatmap", "gmc_surface", "scatter"):
        assert Path(summary.plots[kind]).stat().st_size > 0
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["metrics"]["laplacian_var"]["correlations"]["SRCC"]["value"] == pytest.approx(1.0)


def test_lower_is_better_metric_and_dmos_are_flipped(tmp_path: Path) -> None:
    """A lower-is-better metric that tracks DMOS perfectly must read +1, not −1."""
    items = [IQAItem(Path(f"{i}.png"), float(d)) for i, d in enumerate([3.0, 1.0, 4.0, 1.5, 9.0, 2.6])]
    dmos_dataset = IQADataset("toy", tmp_path, items, higher_is_better=False)
    rows = [{"distance": str(item.mos * 2 + 1)} for item in items]  # grows with DMOS: lower = better
    distance = Scorer("distance", "NR", False, lambda test, reference=None: test)
    summary = bench._evaluate(distance, dmos_dataset, rows, tmp_path, 50, 12, 0)
    assert summary.correlations["SRCC"]["value"] == pytest.approx(1.0)
    assert summary.correlations["PLCC"]["value"] == pytest.approx(1.0)
    similarity = Scorer("similarity", "NR", True, lambda test, reference=None: test)
    rows = [{"similarity": str(item.mos * 2 + 1)} for item in items]  # grows with DMOS: disagrees
    assert bench._evaluate(similarity, dmos_dataset, rows, tmp_path, 50, 12, 0).correlations["SRCC"]["value"] == pytest.approx(-1.0)


@pytest.mark.usefixtures("scoring_only")
def test_broken_image_becomes_an_error_row(blur_series: Path, tmp_path: Path) -> None:
    folder = blur_series.parent
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG not really")
    with open(blur_series, "a") as handle:
        handle.write("images/broken.png,2.0\nimages/missing.png,1.0\n")
    result = run_benchmark(read_csv_dataset(blur_series), ["laplacian_var"], tmp_path / "run", **_fast())
    assert result.items == 10 and result.failed == 2 and result.metrics["laplacian_var"].count == 8
    with open(tmp_path / "run" / "scores.csv", newline="") as handle:
        errors = {Path(row["image"]).name: row["error"] for row in csv.DictReader(handle)}
    assert "broken.png" in errors["broken.png"] and "does not exist" in errors["missing.png"]
    assert errors["blur0.png"] == ""


def test_resolve_scorer_reads_metadata_and_rejects_unknown_names() -> None:
    scorer = resolve_scorer("niqe")
    assert (scorer.kind, scorer.higher_is_better, scorer.source) == ("NR", False, "metric")
    with pytest.raises(UnknownNameError, match="unknown metric or model 'nope'"):
        resolve_scorer("nope")


@pytest.mark.usefixtures("scoring_only")
def test_cli_bench_json_and_usage_errors(blur_series: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app, ["bench", str(blur_series), "--metrics", "laplacian_var", "--out", str(out), "--json", "--n-boot", "50"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["items"] == 8 and payload["metrics"]["laplacian_var"]["count"] == 8
    assert payload["metrics"]["laplacian_var"]["correlations"]["SRCC"]["ci"] == [0.25, 0.75]
    table = runner.invoke(app, ["bench", str(blur_series), "--metrics", "laplacian_var", "--out", str(out), "--n-boot", "50"])
    assert table.exit_code == 0 and "laplacian_var" in table.stdout
    assert "0.500" in table.stdout and "[0.250, 0.750]" in table.stdout and "0.400" in table.stdout
    unknown = runner.invoke(app, ["bench", str(blur_series), "--metrics", "nope", "--out", str(out)])
    assert unknown.exit_code == 2 and "unknown metric or model 'nope'" in unknown.output
    missing = runner.invoke(app, ["bench", str(tmp_path / "nowhere"), "--metrics", "niqe"])
    assert missing.exit_code == 1 and "no such dataset" in missing.output
    other = runner.invoke(app, ["bench", str(blur_series), "--metrics", "niqe", "--out", str(out)])
    assert other.exit_code == 2 and "give another --out" in other.output


def test_cli_niqe_fit_writes_a_loadable_model(tmp_path: Path, photos: list[torch.Tensor]) -> None:
    for index, photo in enumerate(photos[:2]):
        save_image(photo[..., :192, :192], tmp_path / "pristine" / f"p{index}.png")
    out = tmp_path / "model.safetensors"
    runner = CliRunner()
    result = runner.invoke(app, ["niqe-fit", str(tmp_path / "pristine"), "--out", str(out), "--json",
                                 "--sharpness-threshold", "0"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["patches"] == 8
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["photos"] == ["p0.png", "p1.png"] and len(card["sha256"]) == 64
    bad = runner.invoke(app, ["niqe-fit", str(tmp_path / "pristine"), "--out", str(tmp_path / "m.npz")])
    assert bad.exit_code == 2 and ".safetensors" in bad.output


def test_constant_predictions_are_reported_not_nan(tmp_path: Path) -> None:
    items = [IQAItem(Path(f"{i}.png"), float(i)) for i in range(5)]
    rows = [{"flat": "0.5"} for _ in items]
    flat = Scorer("flat", "NR", True, lambda test, reference=None: test)
    summary = bench._evaluate(flat, IQADataset("toy", tmp_path, items), rows, tmp_path, 50, 12, 0)
    assert summary.error is not None and "constant" in summary.error
    assert summary.correlations == {}


def test_full_reference_metric_needs_references(blur_series: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="psnr: full-reference, but the csv dataset"):
        run_benchmark(read_csv_dataset(blur_series), ["laplacian_var", "psnr"], tmp_path / "run", **_fast())
    assert not (tmp_path / "run" / "scores.csv").exists()
