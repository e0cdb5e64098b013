"""Issue 11, interfaces: one public API, one device rule, clean CLI errors, lazy --help, the
scorer catalogue, one direction rule, batched `reliqa score`, fixed map colours."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import reliqa
from reliqa.cli import app
from reliqa.exceptions import DataError, DeviceError

runner = CliRunner()
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    from skimage import data

    path = tmp_path / "photo.png"
    reliqa.save_image(torch.from_numpy(data.chelsea()[:96, :128].copy()).permute(2, 0, 1)[None] / 255.0, path)
    return path


# ------------------------------------------------------------------ public API


def test_public_api_is_discoverable_and_lazy() -> None:
    names = dir(reliqa)
    for name in ("compare", "rank", "score", "create_metric", "create_model", "list_models",
                 "list_scorers", "evaluate_metric", "gmc"):
        assert name in names and callable(getattr(reliqa, name)), name
    assert {entry.name for entry in reliqa.list_models()} >= {"relational", "hirqa", "hirqa-s"}
    model = reliqa.create_model("hirqa-s", pretrained=False)
    assert isinstance(model, torch.nn.Module) and not model.training
    # `import reliqa` and `reliqa --help` do not import torch (it took ~3 s and ~1 GB)
    code = (
        "import sys; from reliqa.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        reliqa.score(np.zeros((64, 64, 3), np.uint8), "hirqa-s")  # type: ignore[misc]


def test_device_that_does_not_exist_is_a_reliqa_error() -> None:
    from reliqa.checks import DEFAULT_DEVICE, resolve_device

    assert resolve_device(None) == torch.device(DEFAULT_DEVICE) == torch.device("cpu")
    with pytest.raises(DeviceError, match="not a torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            reliqa.create_model("hirqa-s", pretrained=False, device="cuda")


# ------------------------------------------------------------------ CLI


def test_version_short_help_and_flags() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"reliqa {reliqa.__version__}"
    for command in ([], ["compare"], ["score"], ["gmc"]):
        result = runner.invoke(app, [*command, "-h"])
        assert result.exit_code == 0 and "Usage:" in result.stdout, command
        assert "<bool>" not in result.stdout  # --json is a flag, not an option taking a value


@NO_GPU
@pytest.mark.parametrize(
    "args",
    [
        ["score", "{image}"],
        ["compare", "--test", "{image}", "--ref", "{image}"],
        ["rank", "{image}", "--ref", "{image}"],
        ["metric", "ssim", "--test", "{image}", "--ref", "{image}"],
        ["gmc", "{csv}", "--pred-col", "p", "--mos-col", "m"],
        ["serve", "--port", "1"],
        ["bench", "{csv}", "--metrics", "psnr"],
    ],
    ids=["score", "compare", "rank", "metric", "gmc", "serve", "bench"],
)
def test_device_cuda_without_a_gpu_is_a_usage_error(args: list[str], image: Path, tmp_path: Path) -> None:
    csv = tmp_path / "scores.csv"
    csv.write_text("p,m\n" + "".join(f"{k},{k}\n" for k in range(10)))
    filled = [arg.format(image=image, csv=csv) for arg in args]
    result = runner.invoke(app, [*filled, "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert "no CUDA GPU" in result.stderr and "Traceback" not in result.output
    assert "http://" not in result.output


def test_serve_port_in_use_is_a_usage_error_and_no_url_is_announced() -> None:
    pytest.importorskip("uvicorn")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    finally:
        taken.close()
    assert result.exit_code == 2, result.output
    assert "already in use" in result.stderr and "http://" not in result.output
    assert "Traceback" not in result.output


def test_models_command_and_metric_takes_a_model(image: Path) -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    models = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert models["relational"]["kind"] == "FR" and models["hirqa"]["kind"] == "NR"
    assert all(entry["higher_is_better"] for entry in models.values())
    # `reliqa metric hirqa-s` was "unknown metric" although `reliqa batch` accepted it
    result = runner.invoke(app, ["metric", "hirqa-s", "--test", str(image), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert 0.0 <= payload["score"] <= 1.0 and payload["higher_is_better"] is True
    expected = float(reliqa.score(str(image), model="hirqa-s")[0])
    assert payload["score"] == pytest.approx(expected, abs=1e-6)
    result = runner.invoke(app, ["metric", "hirqa-s", "--test", str(image), "--ref", str(image)])
    assert result.exit_code == 2 and "no-reference" in result.stderr


def test_score_batches_same_size_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`reliqa score` ran one forward pass per image; same-size images now share passes."""
    from reliqa.models import nr_api

    sizes = [(64, 64)] * 5 + [(48, 80)] * 2
    paths = []
    for k, (height, width) in enumerate(sizes):
        paths.append(reliqa.save_image(torch.rand(1, 3, height, width), tmp_path / f"i{k}.png"))
    (tmp_path / "bad.png").write_text("not an image")
    calls: list[int] = []

    class Fake:
        def __call__(self, images: torch.Tensor) -> torch.Tensor:
            calls.append(images.shape[0])
            return images.mean(dim=(1, 2, 3))

    monkeypatch.setattr(nr_api, "load_scorer", lambda model, device: Fake())
    records = nr_api.score_files([*paths, tmp_path / "bad.png"], model="hirqa-s", batch_size=4)
    assert sorted(calls) == [1, 2, 4]  # 5 of one size in passes of 4 + 1, 2 of another
    assert [r["image"] for r in records] == [str(p) for p in [*paths, tmp_path / "bad.png"]]
    assert "error" in records[-1] and all("score" in r for r in records[:-1])


def test_score_threads_option(image: Path) -> None:
    before = torch.get_num_threads()
    try:
        result = runner.invoke(app, ["score", str(image), "-m", "hirqa-s", "--threads", "1", "--json"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_report_on_an_existing_file_is_a_clean_error(tmp_path: Path) -> None:
    from reliqa.reports.batch_report import check_report_dir, write_batch_report

    results = tmp_path / "results.csv"
    results.write_text("image,laplacian_var,error\na.png,1.0,\nb.png,2.0,\n")
    existing = tmp_path / "report.html"
    existing.write_text("keep me")
    with pytest.raises(DataError, match="exists and is not a folder"):
        write_batch_report(results, existing)
    assert existing.read_text() == "keep me"
    assert check_report_dir(tmp_path / "new").is_dir()
    # through the command: one line, exit 2, the file untouched (before: a traceback)
    image = reliqa.save_image(torch.rand(1, 3, 32, 32), tmp_path / "a.png")
    result = runner.invoke(
        app,
        ["batch", str(image), "--metrics", "laplacian_var", "--out", str(tmp_path / "r.csv"),
         "--report", str(existing)],
    )
    assert result.exit_code == 2, result.output
    assert "exists and is not a folder" in result.stderr and "Traceback" not in result.output
    assert existing.read_text() == "keep me"
    assert not (tmp_path / "r.csv").exists()  # refused before scoring, not after the whole run


# ------------------------------------------------------------------ one direction rule


def test_direction_is_decided_once_and_gmc_cli_agrees_with_the_viewer(tmp_path: Path) -> None:
    from reliqa.catalogue import column_higher_is_better, higher_is_better, scorer_info

    assert higher_is_better("niqe") is False and higher_is_better("gmsd") is False
    assert higher_is_better("ssim") and higher_is_better("relational") and higher_is_better("hirqa")
    assert scorer_info("hirqa-s").kind == "NR" and column_higher_is_better("my_prediction")
    rng = np.random.default_rng(3)
    mos = rng.uniform(1, 5, 60)
    niqe = 10 - mos + rng.normal(0, 0.4, 60)  # lower = better
    table = tmp_path / "results.csv"
    table.write_text("image,niqe,mos\n" + "".join(f"i{k}.png,{float(n)!r},{float(m)!r}\n" for k, (n, m) in enumerate(zip(niqe, mos))))
    result = runner.invoke(app, ["gmc", str(table), "--pred-col", "niqe", "--mos-col", "mos", "--samples", "20", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["negated"] is True and payload["global"]["SRCC"] > 0.8  # was < −0.8
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from reliqa.web.app import create_app

    client = TestClient(create_app())
    response = client.post(
        "/api/gmc",
        files=[("results", ("results.csv", table.read_bytes(), "text/csv"))],
        data={"score_column": "niqe", "mos_column": "mos"},
    )
    assert response.status_code == 200
    assert response.json()["negated"] is True
    assert response.json()["global"]["SRCC"] == pytest.approx(payload["global"]["SRCC"])


# ------------------------------------------------------------------ maps pictures


def test_maps_pictures_use_one_fixed_colour_range() -> None:
    """A value must get the same colour whatever else the panel holds (each panel used to be
    stretched to its own maximum, so a faint change was painted saturated)."""
    from reliqa.reports.maps import render_maps

    image = torch.full((3, 64, 64), 0.5)
    weak = torch.full((9, 64, 64), 0.5)
    weak[0, 8:40, 8:40] = 0.56
    strong = weak.clone()
    strong[0, 48:60, 48:60] = 1.0
    first, second = render_maps(image, weak), render_maps(image, strong)
    assert first.shape == second.shape
    height, width = first.shape[:2]
    # the centre of the weak block, in the single panel's image area (same layout in both)
    row, column = int(height * 0.25), int(width * 0.3)
    np.testing.assert_allclose(first[row, column].astype(int), second[row, column].astype(int), atol=2)
    assert abs(int(first[row, column, 0]) - int(first[row, column, 2])) < 40  # faint, not saturated


def test_model_means_the_same_everywhere(image: Path) -> None:
    """`model=` is a registered name or a loaded model in compare, rank and score alike."""
    loaded = reliqa.create_model("relational")
    test = torch.rand(1, 3, 48, 64)
    reference = test.clamp(0.1, 0.9)
    by_name = reliqa.compare(test, reference, model="relational").score
    assert reliqa.compare(test, reference, model=loaded).score == pytest.approx(by_name, abs=1e-6)
    assert reliqa.rank([test], reference, model="relational")[0].score == pytest.approx(by_name, abs=1e-6)
    with pytest.raises(reliqa.ReliqaError, match="not a relational"):
        reliqa.compare(test, reference, model="hirqa-s")
    network = reliqa.create_model("hirqa-s")
    torch.testing.assert_close(
        reliqa.score(str(image), model=network), reliqa.score(str(image), model="hirqa-s")
    )
