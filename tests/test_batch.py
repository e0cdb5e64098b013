"""reliqa batch: input modes, journal + resume (incl. a SIGKILLed subprocess), exit codes.

Bad inputs (corrupt files, odd formats, …) are tested in tests/test_bad_inputs.py.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from reliqa import batch
from reliqa.cli import app
from reliqa.exceptions import DataError, InvalidInputError, OutputExistsError, UnknownNameError
from reliqa.metrics.base import Metric, MetricInfo, create_metric, register_metric

# Two tiny metrics with known values, registered for these tests only, so the batch engine is
# tested independently of the real metrics (which have their own reference tests).
NR_NAME, FR_NAME = "test_batch_mean", "test_batch_mae"


@pytest.fixture(scope="module", autouse=True)
def _test_metrics() -> Iterator[None]:
    """Register the two test metrics for this module only: the one catalogue stays what it is
    for every other test in the process (tests/test_one_name.py walks it)."""
    from reliqa import catalogue

    try:
        create_metric(NR_NAME)
        registered = False
    except UnknownNameError:
        _register_test_metrics()
        registered = True
    yield
    if registered:
        for name in (NR_NAME, FR_NAME):
            catalogue._ENTRIES.pop(catalogue.name_key(name), None)


def _register_test_metrics() -> None:
    @register_metric(
        MetricInfo(NR_NAME, "NR", True, (0.0, 1.0), True, "mean pixel value (test only)")
    )
    class _Mean(Metric):
        def forward(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
            return test.double().mean(dim=(1, 2, 3))

    @register_metric(
        MetricInfo(FR_NAME, "FR", False, (0.0, 1.0), True, "mean absolute error (test only)")
    )
    class _MeanAbsoluteError(Metric):
        def forward(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
            if reference is None or reference.shape != test.shape:
                raise InvalidInputError(f"{FR_NAME}: reference and test shapes differ")
            return (test.double() - reference.double()).abs().mean(dim=(1, 2, 3))


runner = CliRunner()


def _photo(name: str, size: int = 48) -> np.ndarray:
    return np.ascontiguousarray(getattr(data, name)()[:size, :size])


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Five small photos (two sizes) and one broken file."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(_photo(name)).save(images / f"{name}.png")
    Image.fromarray(_photo("rocket", 40)).save(images / "rocket.png")
    Image.fromarray(_photo("astronaut", 40)).save(images / "astronaut small.jpg", quality=90)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return images


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _expected_mean(path: Path) -> float:
    from reliqa.io import load_image

    return float(load_image(path).double().mean())


def test_folder_mode_scores_every_image_once_and_records_errors(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    items = batch.items_from_inputs([folder])
    summary = batch.run_batch(items, [NR_NAME], out, workers=0, batch_size=3)
    rows = _read(out)
    assert list(rows[0]) == ["image", NR_NAME, "error"]
    assert [Path(r["image"]).name for r in rows] == sorted(p.name for p in folder.iterdir())
    for row in rows:
        if Path(row["image"]).name == "broken.png":
            assert row[NR_NAME] == "" and "broken.png" in row["error"]
        else:
            assert row["error"] == ""
            assert float(row[NR_NAME]) == pytest.approx(_expected_mean(Path(row["image"])), abs=1e-6)
    assert (summary.total, summary.failed, summary.scored_now) == (6, 1, 6)


def test_stacking_does_not_change_scores(folder: Path, tmp_path: Path) -> None:
    items = batch.items_from_inputs([folder])
    batch.run_batch(items, [NR_NAME], tmp_path / "one.csv", batch_size=1)
    batch.run_batch(items, [NR_NAME], tmp_path / "many.csv", batch_size=8, workers=2)
    one, many = _read(tmp_path / "one.csv"), _read(tmp_path / "many.csv")
    assert [r["image"] for r in one] == [r["image"] for r in many]
    for a, b in zip(one, many):
        assert (a[NR_NAME] == "") == (b[NR_NAME] == "")
        if a[NR_NAME]:
            assert float(a[NR_NAME]) == pytest.approx(float(b[NR_NAME]), rel=1e-9)


def test_two_runs_give_identical_files(folder: Path, tmp_path: Path) -> None:
    items = batch.items_from_inputs([folder])
    for name in ("a.csv", "b.csv"):
        batch.run_batch(items, [NR_NAME], tmp_path / name, workers=1)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_glob_patterns_expand_and_unknown_patterns_fail(folder: Path) -> None:
    items = batch.items_from_inputs([str(folder / "*.png"), str(folder / "coffee.png")])
    assert [Path(i.image).name for i in items] == [
        "astronaut.png", "broken.png", "chelsea.png", "coffee.png", "rocket.png"
    ]
    with pytest.raises(InvalidInputError, match="matches no file"):
        batch.items_from_inputs([str(folder / "*.tiff")])


def _pairs(tmp_path: Path, folder: Path) -> Path:
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ("astronaut", "coffee"):
        noisy = _photo(name).astype(np.int16) + 20
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(dist / f"{name}.png")
    Image.fromarray(_photo("chelsea", 40)).save(dist / "chelsea.png")  # size mismatch
    Image.fromarray(_photo("rocket")).save(dist / "unmatched.png")
    return dist


def test_ref_dir_mode_matches_by_stem(folder: Path, tmp_path: Path) -> None:
    dist = _pairs(tmp_path, folder)
    out = tmp_path / "pairs.csv"
    summary = batch.run_batch(batch.items_from_ref_dir([dist], folder), [FR_NAME, NR_NAME], out)
    rows = {Path(r["image"]).name: r for r in _read(out)}
    assert list(next(iter(rows.values()))) == ["image", "reference", FR_NAME, NR_NAME, "error"]
    assert Path(rows["astronaut.png"]["reference"]).name == "astronaut.png"
    assert 0.05 < float(rows["astronaut.png"][FR_NAME]) < 0.08  # +20/255 where not clipped
    assert rows["astronaut.png"]["error"] == ""
    # A size mismatch fails the FR metric only; the NR score of that row is kept.
    assert "shapes differ" in rows["chelsea.png"]["error"] and rows["chelsea.png"][NR_NAME]
    assert "no reference named 'unmatched.*'" in rows["unmatched.png"]["error"]
    assert summary.failed == 2


def test_pairs_csv_paths_are_relative_to_the_csv(folder: Path, tmp_path: Path) -> None:
    dist = _pairs(tmp_path, folder)
    pairs = tmp_path / "list.csv"
    pairs.write_text("reference,test\nimages/coffee.png,dist/coffee.png\nimages/coffee.png,images/coffee.png\n")
    out = tmp_path / "r.csv"
    batch.run_batch(batch.items_from_pairs_csv(pairs), [FR_NAME], out)
    rows = _read(out)
    assert Path(rows[0]["image"]) == dist / "coffee.png"
    assert float(rows[1][FR_NAME]) == 0.0
    bad = tmp_path / "bad.csv"
    bad.write_text("ref,img\na,b\n")
    with pytest.raises(DataError, match="'reference' and 'test'"):
        batch.items_from_pairs_csv(bad)


def test_full_reference_metric_without_pairs_is_refused(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="need pairs"):
        batch.run_batch(batch.items_from_inputs([folder]), [FR_NAME], tmp_path / "r.csv")


def test_journal_cuts_a_torn_last_line_and_refuses_other_columns(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    out.write_bytes(b"image,m,error\na.png,0.5,\nb.png,0.2")  # killed while writing b
    with batch.ResultsJournal(out, ["image", "m", "error"]) as journal:
        assert journal.done == {("", "a.png")}
        journal.write({"image": "b.png", "m": 0.25, "error": ""})
    assert out.read_text() == "image,m,error\na.png,0.5,\nb.png,0.25,\n"
    with pytest.raises(OutputExistsError, match="exists with the columns"):
        batch.ResultsJournal(out, ["image", "other", "error"]).open()


def test_parquet_output_round_trips(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    out = tmp_path / "r.parquet"
    items = batch.items_from_inputs([folder])
    batch.run_batch(items, [NR_NAME], out)
    assert not (tmp_path / "r.parquet.partial.csv").exists()
    again = batch.run_batch(items, [NR_NAME], out)
    assert again.skipped == 6 and again.scored_now == 0
    rows = batch.read_results(out)
    assert len(rows) == 6 and sum(bool(r["error"]) for r in rows) == 1


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--metrics", "no_such_metric"], 2, "unknown"),
        (["--metrics", FR_NAME], 2, "need pairs"),
        (["--metrics", NR_NAME], 1, ""),
    ],
)
def test_cli_exit_codes(folder: Path, tmp_path: Path, extra: list[str], code: int, message: str) -> None:
    result = runner.invoke(app, ["batch", str(folder), "--out", str(tmp_path / "r.csv"), *extra, "--json"])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_exit_zero_when_every_input_scored(folder: Path, tmp_path: Path) -> None:
    (folder / "broken.png").unlink()
    result = runner.invoke(
        app, ["batch", str(folder), "-m", NR_NAME, "-o", str(tmp_path / "r.csv"), "--json", "--workers", "0"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["failed"]) == (5, 0)


KILLED_RUN_IMAGES = 60
"""Images of the killed run: 60 × 50 ms of scoring, long enough to be caught mid-run."""

_SLOW_PLUGIN = textwrap.dedent(
    """
    import time
    from reliqa.metrics.base import Metric, MetricInfo, register_metric

    @register_metric(MetricInfo("slow_mean", "NR", True, (0.0, 1.0), False, "test: slow mean"))
    class SlowMean(Metric):
        def forward(self, test, reference=None):
            time.sleep(0.05 * test.shape[0])
            return test.double().mean(dim=(1, 2, 3))
    """
)


@pytest.mark.slow  # a real subprocess killed mid-run, then resumed (~18 s)
def test_killed_run_resumes_without_losing_or_duplicating(tmp_path: Path) -> None:
    """SIGKILL a `reliqa batch` subprocess mid-run, start it again, compare with the inputs."""
    images = tmp_path / "many"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(KILLED_RUN_IMAGES):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images / f"{index:02d}.png")
    (images / "17.png").write_bytes(b"not an image")
    (tmp_path / "slowplugin.py").write_text(_SLOW_PLUGIN)
    out = tmp_path / "results.csv"
    command = [
        sys.executable, "-c", "import slowplugin; from reliqa.cli import main; main()",
        "batch", str(images), "--metrics", "slow_mean", "--out", str(out),
        "--workers", "1", "--batch-size", "2", "--json",
    ]
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    first = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        if out.is_file() and out.read_bytes().count(b"\n") >= 11:
            break
        time.sleep(0.01)
    assert first.poll() is None, "the run finished before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_output = out.read_bytes()
    done_before = killed_output[: killed_output.rfind(b"\n") + 1].count(b"\n") - 1
    assert 10 <= done_before < KILLED_RUN_IMAGES

    second = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1, second.stderr  # 17.png is broken
    assert "Traceback" not in second.stderr
    summary = json.loads(second.stdout)
    assert summary["skipped"] == done_before and summary["scored_now"] == KILLED_RUN_IMAGES - done_before
    final = out.read_bytes()
    assert final.startswith(killed_output[: killed_output.rfind(b"\n") + 1])  # kept verbatim
    rows = _read(out)
    assert sorted(Path(r["image"]).name for r in rows) == [f"{i:02d}.png" for i in range(KILLED_RUN_IMAGES)]
    for row in rows:
        if row["image"].endswith("17.png"):
            assert "not an image" in row["error"]
        else:
            assert float(row["slow_mean"]) == pytest.approx(_expected_mean(Path(row["image"])), abs=1e-9)


# ----------------------------------------------------------------------------------- reports


def _external_references(page: str) -> list[str]:
    import re

    return re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page, re.IGNORECASE)


def test_report_is_self_contained_and_sortable(folder: Path, tmp_path: Path) -> None:
    from reliqa.reports.batch_report import write_batch_report

    out = tmp_path / "r.csv"
    batch.run_batch(batch.items_from_inputs([folder]), [NR_NAME], out)
    page_path = write_batch_report(out, tmp_path / "report")
    page = page_path.read_text()
    assert page_path.name == "index.html"
    assert _external_references(page) == [] and "<script src" not in page and "<link" not in page
    assert "function makeSortable" in page and 'class="sortable"' in page
    assert page.count("data:image/jpeg;base64,") == 5  # the broken file has no thumbnail
    assert page.count('<tr class="failed">') == 1 and "broken.png" in page
    mean = _expected_mean(folder / "coffee.png")
    assert f'data-value="{mean!r}"' in page or f"{mean:.4f}" in page


def test_report_with_mos_has_correlations_and_gmc(tmp_path: Path) -> None:
    from reliqa.reports.batch_report import write_batch_report

    images = tmp_path / "graded"
    images.mkdir()
    lines = ["image,mos"]
    for level in range(12):
        Image.fromarray(np.full((16, 16, 3), 20 * level + 5, np.uint8)).save(images / f"g{level:02d}.png")
        lines.append(f"graded/g{level:02d}.png,{level / 11:.4f}")
    mos = tmp_path / "mos.csv"
    mos.write_text("\n".join(lines) + "\n")
    out = tmp_path / "r.csv"
    batch.run_batch(batch.items_from_inputs([images]), [NR_NAME], out)
    page = write_batch_report(out, tmp_path / "report", mos=mos).read_text()
    assert "Agreement with human scores" in page and "12 of 12 rows matched" in page
    assert '<td class="num">1.000 [' in page  # brightness ranks exactly as the MOS: SRCC = 1
    assert page.count('<img src="data:image/png;base64,') == 1  # the GMC heatmap, embedded
    assert not list((tmp_path / "report").rglob("*.png"))
    assert 'href="gmc/' in page and _external_references(page) == []  # the optional 3-D surface


def test_report_draws_maps_of_pairs(tmp_path: Path) -> None:

    from reliqa.io import save_maps
    from reliqa.reports.batch_report import write_batch_report

    Image.fromarray(_photo("coffee", 32)).save(tmp_path / "t.png")
    maps = torch.full((9, 32, 32), 0.5)
    maps[6, 8:24, 8:24] = 0.9
    save_maps(maps, tmp_path / "t.npz")
    results = tmp_path / "r.csv"
    results.write_text(
        f"image,reference,{FR_NAME},maps,error\n{tmp_path / 't.png'},{tmp_path / 't.png'},0.1,{tmp_path / 't.npz'},\n"
    )
    page = write_batch_report(results, tmp_path / "report").read_text()
    assert [p.name for p in (tmp_path / "report").iterdir()] == ["index.html"]  # self-contained
    assert page.count("data:image/jpeg;base64,") == 3  # test and reference thumbnails, the maps
    assert 'alt="maps of ' in page


def test_cli_report_option(folder: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["batch", str(folder), "-m", NR_NAME, "-o", str(tmp_path / "r.csv"), "--report", str(tmp_path / "rep"), "--json"]
    )
    assert result.exit_code == 1, result.output  # broken.png
    assert json.loads(result.stdout)["report"] == str(tmp_path / "rep" / "index.html")


def _write_noisy_pairs(references: Path, tests: Path) -> None:
    references.mkdir()
    tests.mkdir()
    rng = np.random.default_rng(0)
    for photo in ("astronaut", "coffee"):
        clean = _photo(photo, 128)
        noisy = np.clip(clean.astype(np.int16) + rng.integers(-20, 21, clean.shape), 0, 255).astype(np.uint8)
        Image.fromarray(clean).save(references / f"{photo}.png")
        Image.fromarray(noisy).save(tests / f"{photo}.png")


def test_relational_model_scores_pairs_and_saves_maps(tmp_path: Path) -> None:
    from reliqa import compare
    from reliqa.io import load_maps

    references, tests = tmp_path / "ref", tmp_path / "test"
    _write_noisy_pairs(references, tests)
    items = batch.items_from_ref_dir([tests], references)
    summary = batch.run_batch(items, ["relational"], tmp_path / "r.csv", maps_dir=tmp_path / "maps")
    rows = _read(tmp_path / "r.csv")
    assert summary.failed == 0, rows
    for row in rows:
        expected = compare(test=row["image"], reference=row["reference"])
        assert float(row["relational"]) == pytest.approx(expected.score, abs=1e-4)
        assert torch.allclose(load_maps(row["maps"]), expected.maps, atol=1e-4)


def test_shipped_scorers_give_identical_files_on_two_runs(tmp_path: Path) -> None:
    """Every shipped metric/model that can be built, NR and FR together, twice on CPU."""
    from reliqa.evaluation.scorers import resolve_scorer
    from reliqa.exceptions import ReliqaError

    candidates = ["laplacian_var", "niqe", "hirqa-s", "psnr", "ssim", "relational"]
    names = []
    for name in candidates:
        try:
            resolve_scorer(name)
        except ReliqaError:
            continue
        names.append(name)
    references, tests = tmp_path / "ref", tmp_path / "test"
    _write_noisy_pairs(references, tests)
    items = batch.items_from_ref_dir([tests], references)
    for out in ("first.csv", "second.csv"):
        summary = batch.run_batch(items, names, tmp_path / out, workers=0)
        assert summary.failed == 0, _read(tmp_path / out)
    assert (tmp_path / "first.csv").read_bytes() == (tmp_path / "second.csv").read_bytes()
    assert "laplacian_var" in names


# ----------------------------------------------------------------------------------- data safety


@pytest.mark.parametrize(
    "content",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR not a results file\n\x00 tail without newline",
        b"holiday notes: no newline at all",
        b"image,other_metric,error\na.png,0.5,\nb.png,0.2",  # another run's results, torn
    ],
    ids=["binary-with-newlines", "text-without-newline", "other-columns-torn"],
)
def test_refused_out_file_is_left_untouched(folder: Path, tmp_path: Path, content: bytes) -> None:
    """Issue 11: `--out victim.png` used to cut the file at its last newline before refusing."""
    victim = tmp_path / "victim.png"
    victim.write_bytes(content)
    result = runner.invoke(app, ["batch", str(folder), "-m", NR_NAME, "-o", str(victim), "--json"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and str(victim) in result.output
    assert victim.read_bytes() == content
    with pytest.raises(OutputExistsError):  # not this run's file: bad usage (exit 2), untouched
        batch.ResultsJournal(victim, ["image", NR_NAME, "error"]).open()
    assert victim.read_bytes() == content


def test_torn_header_of_a_killed_start_is_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    out.write_bytes(b"image,m,er")  # killed while writing the header itself
    with batch.ResultsJournal(out, ["image", "m", "error"]) as journal:
        journal.write({"image": "a.png", "m": 0.5, "error": ""})
    assert out.read_text() == "image,m,error\na.png,0.5,\n"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_out_that_cannot_be_written_is_a_clean_usage_error(folder: Path, tmp_path: Path, suffix: str) -> None:
    """Issue 11: `--out` an existing directory or an unwritable path gave a traceback."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    directory = tmp_path / f"results{suffix}"
    directory.mkdir()
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    for out in (directory, a_file / f"r{suffix}"):  # a folder; a path below a file
        result = runner.invoke(app, ["batch", str(folder), "-m", NR_NAME, "-o", str(out), "--json"])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "--out" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert a_file.read_text() == "x" and list(directory.iterdir()) == []


def test_refused_parquet_out_is_left_untouched(folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    victim = tmp_path / "victim.parquet"
    victim.write_bytes(b"PAR1 this is not parquet at all\n")
    other = tmp_path / "other.parquet"
    batch.run_batch(batch.items_from_inputs([folder / "coffee.png"]), ["laplacian_var"], other)
    for path in (victim, other):
        before = path.read_bytes()
        result = runner.invoke(app, ["batch", str(folder), "-m", NR_NAME, "-o", str(path), "--json"])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert path.read_bytes() == before
        assert not Path(f"{path}.partial.csv").exists()
