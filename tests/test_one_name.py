"""Issue 19: one name = one computation. Every name of the scorer catalogue gives the same value
through its functional form (``reliqa.metrics.<name>``, where one exists), ``create_metric``
(``reliqa.create_metric`` and, for metrics, ``reliqa.metrics.create_metric``), ``reliqa metric``
and ``reliqa batch``; either spelling of a name is accepted and one is printed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import reliqa
import reliqa.metrics
from reliqa.catalogue import canonical_name, list_scorers, scorer_info
from reliqa.cli import app

runner = CliRunner()
NAMES = [info.name for info in list_scorers()]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(test, reference) PNG files: a 192x192 crop of the astronaut and a noisy copy (8-bit,
    so every route reads the same pixels)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("pair")
    reference = reliqa.load_image(data.astronaut()[100:292, 150:342])
    generator = torch.Generator().manual_seed(19)
    test = (reference + 0.03 * torch.randn(reference.shape, generator=generator)).clamp(0, 1)
    paths = folder / "test.png", folder / "reference.png"
    reliqa.save_image(test, paths[0])
    reliqa.save_image(reference, paths[1])
    return paths


@pytest.fixture(scope="module")
def batch_scores(pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """One ``reliqa batch`` run over the pair with every name (NR names score the test image)."""
    test, reference = pair
    folder = tmp_path_factory.mktemp("batch")
    pairs_csv, out = folder / "pairs.csv", folder / "scores.csv"
    pairs_csv.write_text(f"reference,test\n{reference},{test}\n")
    result = runner.invoke(app, ["batch", "--pairs", str(pairs_csv), "-m", ",".join(NAMES), "-o", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    with out.open(newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["error"] == ""
    return {name: float(row[name]) for name in NAMES}


def _close(first: float, second: float) -> bool:
    return first == pytest.approx(second, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_every_route_gives_the_same_value(name: str, pair: tuple[Path, Path], batch_scores: dict[str, float]) -> None:
    test_path, reference_path = pair
    info = scorer_info(name)
    full_reference = info.kind == "FR"
    test, reference = reliqa.load_image(test_path), reliqa.load_image(reference_path)
    with torch.no_grad():
        built = reliqa.create_metric(name)
        assert built.info == info
        value = float(built(test, reference if full_reference else None)[0])
        if hasattr(reliqa.metrics, name.replace("-", "_")):  # the functional form
            function = getattr(reliqa.metrics, name.replace("-", "_"))
            functional = function(test, reference) if full_reference else function(test)
            assert _close(float(functional[0]), value), (name, float(functional[0]), value)
            assert _close(float(reliqa.metrics.create_metric(name)(test, reference)[0]), value)
        else:
            assert info.extra.get("source") == "model" or name in {"relational", "relational-plus"}, name
    assert _close(float(reliqa.evaluate_metric(name, test_path, reference_path if full_reference else None)[0]),
                  value)
    command = ["metric", name, "--test", str(test_path), "--json"]
    result = runner.invoke(app, [*command, "--ref", str(reference_path)] if full_reference else command)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["metric"] == name and _close(payload["score"], value), (payload, value)
    assert _close(batch_scores[name], value), (name, batch_scores[name], value)


def test_every_functional_form_is_a_catalogue_name() -> None:
    """The public functions of reliqa.metrics are catalogue names (no second meaning of a name)."""
    metric_names = {info.name for info in reliqa.list_metrics()}
    functions = {name for name in reliqa.metrics.__all__ if name.islower()} - {
        "create_metric", "list_metrics", "metric_name", "register_metric"}
    assert functions == metric_names
    # the public listings return one kind of entry
    assert all(isinstance(info, reliqa.metrics.MetricInfo)
               for info in [*reliqa.list_metrics(), *reliqa.list_models(), *reliqa.list_scorers()])
    assert [info.name for info in reliqa.list_scorers()] == [
        *(info.name for info in reliqa.list_metrics()), *(info.name for info in reliqa.list_models())]
    # the catalogue name is vifp (pixel-domain VIF); reliqa.metrics.vif is only its module
    assert not callable(getattr(reliqa.metrics, "vif", None))


def test_either_spelling_is_accepted_and_one_is_printed(pair: tuple[Path, Path], tmp_path: Path) -> None:
    keys = [name.replace("-", "_").lower() for name in NAMES]
    assert len(set(keys)) == len(keys)  # no two names differ by spelling only
    assert canonical_name("MS-SSIM") == "ms_ssim" and canonical_name("hirqa_s") == "hirqa-s"
    assert canonical_name("relational_plus") == "relational-plus" and canonical_name("nope") == "nope"
    assert reliqa.create_metric("ms-ssim").info.name == "ms_ssim"
    assert reliqa.create_metric("hirqa_s", device="cpu").info.name == "hirqa-s"
    assert reliqa.create_model("hirqa_s", pretrained=False) is not None
    from reliqa.models.relational_api import check_relational_name

    assert check_relational_name("Relational_Plus") == "relational-plus"
    test, reference = pair
    result = runner.invoke(app, ["metric", "ms-ssim", "--test", str(test), "--ref", str(reference), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["metric"] == "ms_ssim"
    out = tmp_path / "r.csv"
    result = runner.invoke(app, ["batch", str(test), "-m", "hirqa_s,laplacian-var", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "image,hirqa-s,laplacian_var,error"


def test_models_take_no_options_and_unknown_names_list_both_registries() -> None:
    with pytest.raises(reliqa.ReliqaError, match="takes no options"):
        reliqa.create_metric("hirqa-s", window_size=7)
    with pytest.raises(reliqa.ReliqaError, match="metrics: .*ssim.*models: .*hirqa"):
        reliqa.create_metric("vif")
