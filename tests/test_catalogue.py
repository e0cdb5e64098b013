"""Issue 19: one scorer catalogue, low in the tree (``reliqa.catalogue``, core), that the metric and
model registries register into and every caller asks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import reliqa
from reliqa import catalogue
from reliqa.exceptions import UnknownNameError

CATALOGUE = Path(__file__).resolve().parents[1] / "src" / "reliqa" / "catalogue.py"
CORE = {"exceptions", "attributes", "checks", "io", "verified", "runtime", "outputs", "catalogue"}


def _reliqa_imports(tree: ast.AST) -> set[str]:
    """Every ``reliqa…`` module that ``tree`` imports (lazy imports and ``from reliqa import x``
    counted; ``x`` named as ``reliqa.x``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "reliqa")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "reliqa":
            if node.module == "reliqa":
                found.update(f"reliqa.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return found


def test_the_catalogue_imports_nothing_above_the_core() -> None:
    imported = _reliqa_imports(ast.parse(CATALOGUE.read_text(encoding="utf-8")))
    above = sorted(name for name in imported if name.split(".")[1] not in CORE)
    assert not above, f"reliqa.catalogue imports above the core: {above}"
    assert "reliqa.exceptions" in imported  # the walk sees its real imports


def test_every_metric_and_model_is_in_the_catalogue_once_under_its_canonical_name() -> None:
    names = [entry.name for entry in catalogue.entries()]
    assert len(names) == len(set(names)) == len({catalogue.name_key(name) for name in names})
    metrics = [info.name for info in reliqa.metrics.list_metrics()]
    models = [entry.name for entry in reliqa.models.list_models()]
    assert metrics and models
    assert names == [*metrics, *models]  # metrics first, then models, each sorted
    for name in metrics:
        assert catalogue.find(name, source="metric") is not None
        assert catalogue.canonical_name(name.upper().replace("_", "-")) == name
    for entry in reliqa.models.list_models():
        found = catalogue.get(entry.name.replace("-", "_"))
        assert found.source == "model" and found.spec is entry and found.info == entry.info
    assert [info.name for info in reliqa.list_scorers()] == names


def test_catalogue_lookups_and_a_second_registration() -> None:
    assert catalogue.canonical_name("MS-SSIM") == "ms_ssim"
    assert catalogue.canonical_name("hirqa_s") == "hirqa-s"
    assert catalogue.find("hirqa-s", source="metric") is None
    with pytest.raises(UnknownNameError, match="metrics: .*ssim.*models: .*hirqa"):
        catalogue.get("nope")
    assert catalogue.column_higher_is_better("my_prediction") and not catalogue.higher_is_better("niqe")
    with pytest.raises(ValueError, match="registered twice"):
        catalogue.register(catalogue.scorer_info("ssim"), lambda device: None, source="metric")
    with pytest.raises(ValueError, match="registered twice"):  # another spelling, another registry
        catalogue.register(catalogue.scorer_info("hirqa-s"), lambda device: None, source="metric")
