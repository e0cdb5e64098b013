"""The Ray Data engine (reliqa.batch.distributed): same rows as `reliqa batch`, resumable after kill -9.

A local Ray cluster is started by the tests themselves (2 CPUs, no dashboard, loopback only) and
shared by the tests of this module; the kill test starts its own inside a subprocess. CI installs
the `ray` extra (`make setup`), so these run there; without it they skip with the reason.
"""

from __future__ import annotations

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
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from reliqa import batch
from reliqa.cli import app

ray = pytest.importorskip(
    "ray", reason="the Ray engine needs the extra: pip install 'reliqa[ray]' (make setup installs it)"
)
pytest.importorskip("pyarrow", reason="the Ray engine writes Parquet: pip install 'reliqa[parquet]'")

from reliqa.batch.distributed import ScoreImages, score_dataset  # noqa: E402 -- after the skips

# Each test drives a local Ray cluster (its start alone is ~20 s on the 2-core machine);
# `make test` runs them, `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

METRICS = ["laplacian_var", "hirqa-s"]
BROKEN = ("broken_truncated.jpg", "broken_text.png", "broken_empty.png")


def _make_images(folder: Path) -> Path:
    """47 crops of skimage photos in two sizes (so stacks form and break) + 3 broken files."""
    folder.mkdir(parents=True)
    photos = [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket")]
    rng = np.random.default_rng(0)
    for index in range(47):
        photo = photos[index % len(photos)]
        height, width = (48, 64) if index % 3 else (64, 64)
        top = int(rng.integers(0, photo.shape[0] - height))
        left = int(rng.integers(0, photo.shape[1] - width))
        crop = np.ascontiguousarray(photo[top : top + height, left : left + width])
        Image.fromarray(crop).save(folder / f"img{index:02d}.png")
    good = (folder / "img00.png").read_bytes()
    (folder / BROKEN[0]).write_bytes(b"\xff\xd8\xff\xe0" + good[:40])
    (folder / BROKEN[1]).write_text("not an image")
    (folder / BROKEN[2]).write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_images(tmp_path_factory.mktemp("ray") / "images")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def batch_rows(images: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    """What `reliqa batch` (local engine) writes for the same inputs: the reference."""
    out = tmp_path_factory.mktemp("local") / "local.csv"
    batch.run_batch(batch.items_from_inputs([images]), METRICS, out, workers=0)
    return batch.read_results(out)


def _by_key(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    keyed = {(row.get("reference", ""), row["image"]): row for row in rows}
    assert len(keyed) == len(rows), "duplicate rows"
    return keyed


def _assert_same_rows(
    got: list[dict[str, str]], expected: list[dict[str, str]], metrics: list[str] = METRICS
) -> None:
    got_keyed, expected_keyed = _by_key(got), _by_key(expected)
    assert got_keyed.keys() == expected_keyed.keys()
    for key, row in expected_keyed.items():
        other = got_keyed[key]
        assert list(other) == ["image", *metrics, "error"]
        assert other["error"] == row["error"], key
        for name in metrics:
            assert (other[name] == "") == (row[name] == ""), (key, name)
            if row[name]:
                # Stacks form differently in the two engines; the shipped scorers may then
                # differ in the last float bits only (docs/batch.md).
                assert float(other[name]) == pytest.approx(float(row[name]), rel=1e-5, abs=1e-7)


def test_ray_engine_gives_the_rows_of_reliqa_batch(
    local_ray: None, images: Path, batch_rows: list[dict[str, str]], tmp_path: Path
) -> None:
    summary = score_dataset([images], METRICS, tmp_path / "scores.parquet", actors=2, rows_per_file=16)
    rows = batch.read_results(summary.out)
    assert len(rows) == 50 and summary.failed == 3 and summary.scored_now == 50
    _assert_same_rows(rows, batch_rows)
    broken = {Path(row["image"]).name: row["error"] for row in rows if row["error"]}
    assert sorted(broken) == sorted(BROKEN) and all(name in broken[name] for name in broken)
    # Resume: nothing is left to do, nothing is written twice.
    parts = sorted((tmp_path / "scores.parquet").glob("*.parquet"))
    again = score_dataset([images], METRICS, tmp_path / "scores.parquet", actors=2)
    assert (again.scored_now, again.skipped, again.total) == (0, 50, 50)
    assert sorted((tmp_path / "scores.parquet").glob("*.parquet")) == parts


def test_score_images_udf_in_a_users_own_pipeline(local_ray: None, images: Path) -> None:
    paths = [str(path) for path in sorted(images.iterdir())][:10]
    dataset = ray.data.from_items([{"image": path} for path in paths])
    scored = dataset.map_batches(
        ScoreImages,
        fn_constructor_kwargs={"metrics": ["laplacian_var"]},
        compute=ray.data.ActorPoolStrategy(size=1),
        batch_size=4,
        num_cpus=1,
    ).take_all()
    assert sorted(row["image"] for row in scored) == paths
    for row in scored:
        assert set(row) == {"image", "laplacian_var", "error"}
        broken = Path(row["image"]).name.startswith("broken")
        assert bool(row["error"]) == broken and (row["laplacian_var"] != row["laplacian_var"]) == broken


def test_ray_engine_scores_pairs_like_reliqa_batch(local_ray: None, images: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    lines = ["reference,test"] + [f"{images}/img{i:02d}.png,{images}/img{i + 3:02d}.png" for i in range(6)]
    lines.append(f"{images}/img00.png,{images}/{BROKEN[1]}")
    pairs.write_text("\n".join(lines) + "\n")
    local = tmp_path / "local.csv"
    batch.run_batch(batch.items_from_pairs_csv(pairs), ["psnr", "laplacian_var"], local)
    summary = score_dataset([], ["psnr", "laplacian_var"], tmp_path / "ray", pairs=pairs, actors=2)
    got, expected = _by_key(batch.read_results(summary.out)), _by_key(batch.read_results(local))
    assert got.keys() == expected.keys()
    for key, row in expected.items():
        assert got[key]["error"] == row["error"]
        for name in ("psnr", "laplacian_var"):
            assert (got[key][name] == "") == (row[name] == "")
            if row[name]:
                assert float(got[key][name]) == pytest.approx(float(row[name]), rel=1e-5)


def test_cli_engine_ray_and_refusals(local_ray: None, images: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.parquet"
    result = runner.invoke(
        app, ["batch", str(images / "img0*.png"), "-m", "laplacian_var", "-o", str(out), "--engine", "ray", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 10
    # The folder merges into one file like shards do.
    merged = tmp_path / "cli.csv"
    result = runner.invoke(app, ["batch", "--merge", str(out), "-o", str(merged), "--json"])
    assert result.exit_code == 0, result.output
    assert [row["image"] for row in batch.read_results(merged)] == sorted(str(p) for p in images.glob("img0*.png"))
    # The same folder with another metric set is refused, and left as it was.
    before = sorted(path.name for path in out.iterdir())
    result = runner.invoke(
        app, ["batch", str(images / "img0*.png"), "-m", "hirqa-s", "-o", str(out), "--engine", "ray", "--json"]
    )
    assert result.exit_code == 2 and "columns" in result.output
    assert sorted(path.name for path in out.iterdir()) == before
    a_file = tmp_path / "file.parquet"
    a_file.write_text("x")
    result = runner.invoke(app, ["batch", str(images), "-m", "laplacian_var", "-o", str(a_file), "--engine", "ray"])
    assert result.exit_code == 2 and "is a file" in result.output and a_file.read_text() == "x"
    if not ray.cluster_resources().get("GPU"):
        result = runner.invoke(
            app, ["batch", str(images), "-m", "laplacian_var", "-o", str(tmp_path / "g"), "--engine", "ray", "--device", "cuda"]
        )
        assert result.exit_code == 2 and "0 GPUs" in result.output, result.output


_KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from reliqa.batch.distributed import score_dataset

    def slow(done, total):  # the driver writes parts slowly, so the kill lands mid-run
        print(done, flush=True)
        time.sleep(float(sys.argv[3]))

    summary = score_dataset([sys.argv[1]], ["laplacian_var"], sys.argv[2], actors=2,
                            rows_per_file=4, on_progress=slow)
    print("summary", summary.scored_now, summary.skipped, summary.total, summary.failed, flush=True)
    """
)


def test_killed_ray_run_restarts_without_losing_or_duplicating(
    images: Path, batch_rows: list[dict[str, str]], tmp_path: Path
) -> None:
    """SIGKILL the driver (and its local Ray cluster) mid-run; the restart completes the set."""
    script = tmp_path / "run.py"
    script.write_text(_KILLED_RUN)
    out = tmp_path / "killed.parquet"
    first = subprocess.Popen(
        [sys.executable, str(script), str(images), str(out), "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            if len(list(out.glob("part-*.parquet"))) >= 3:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the run finished before it could be killed"
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        first.wait()
    kept = {path.name: path.read_bytes() for path in out.glob("part-*.parquet")}
    done_before = len(batch.read_results(out))
    assert 12 <= done_before < 50

    second = subprocess.run(
        [sys.executable, str(script), str(images), str(out), "0"],
        capture_output=True, text=True, timeout=180, start_new_session=True, check=False,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    # issue 18: every run started its cluster with a WARNING about Ray's token-auth default
    assert "Token authentication is enabled" not in second.stderr, second.stderr[-3000:]
    scored_now, skipped, total, failed = map(int, second.stdout.split("summary")[1].split())
    assert (skipped, scored_now, total, failed) == (done_before, 50 - done_before, 50, 3)
    for name, content in kept.items():  # earlier parts untouched
        assert (out / name).read_bytes() == content
    assert not list(out.glob(".*.tmp"))
    _assert_same_rows(batch.read_results(out), batch_rows, ["laplacian_var"])
