"""Issue 18: a figure in the README or docs that no longer matches its record fails here.

The figures carry their source as ``<!-- fig FILE:KEY -->`` right after the number;
``.ci/doc_figures.py`` checks them (and ``--fix`` rewrites them from the records).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("doc_figures", ROOT / ".ci" / "doc_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["doc_figures"] = module
    spec.loader.exec_module(module)
    return module


def test_documented_figures_match_their_records() -> None:
    problems, count = _checker().check()
    assert problems == [], "\n".join(problems)
    # the README's measured tables are marked (tuning, relational quality, maps, speed,
    # batch and distributed throughput): markers must not vanish silently
    assert count >= 150, count


@pytest.fixture()
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Path]:
    checker = _checker()
    results, weights = tmp_path / "benchmarks" / "results", tmp_path / "src" / "reliqa" / "weights"
    results.mkdir(parents=True)
    weights.mkdir(parents=True)
    (results / "run.json").write_text(json.dumps({
        "command": "python benchmarks/run.py",
        "config": {"weights_sha256": {"model": "a" * 64}},
        "rows": [{"psnr": 24.661264, "seconds": 0.04879}],
    }))
    (weights / "model.json").write_text(json.dumps({"sha256": "a" * 64}))
    monkeypatch.setattr(checker, "ROOT", tmp_path)
    monkeypatch.setattr(checker, "RESULTS", results)
    monkeypatch.setattr(checker, "WEIGHTS", weights)
    return checker, tmp_path


def test_a_drifted_figure_is_reported_and_fixed(sandbox: tuple[ModuleType, Path]) -> None:
    checker, root = sandbox
    readme = root / "README.md"
    readme.write_text(
        "| a | 24.66<!-- fig run.json:rows/0/psnr -->* | 48.8<!-- fig run.json:rows/0/seconds *1000 --> ms |\n"
        "| b | 24.70<!-- fig run.json:rows/0/psnr --> | 1,234<!-- fig run.json:rows/0/nothing --> |\n"
    )
    problems, count = checker.check([readme])
    assert count == 4
    assert problems[0] == "README.md:2: 24.70 but run.json:rows/0/psnr says 24.66 (24.661264)"
    assert "README.md:2: run.json:rows/0/nothing: no such number" in problems[1]
    assert len(problems) == 2
    readme.write_text(readme.read_text().replace("| 1,234<!-- fig run.json:rows/0/nothing --> ", ""))
    assert checker.fix([readme]) == 1
    assert "| b | 24.66<!-- fig run.json:rows/0/psnr --> |" in readme.read_text()
    assert checker.check([readme])[0] == []


def test_a_record_of_other_weights_is_stale(sandbox: tuple[ModuleType, Path]) -> None:
    checker, root = sandbox
    (root / "src" / "reliqa" / "weights" / "model.json").write_text(json.dumps({"sha256": "b" * 64}))
    readme = root / "README.md"
    readme.write_text("24.66<!-- fig run.json:rows/0/psnr -->\n")
    problems, _ = checker.check([readme])
    assert problems == [
        "benchmarks/results/run.json: measured with model weights aaaaaaaaaaaa…, the shipped ones "
        "are bbbbbbbbbbbb… — rerun `python benchmarks/run.py`"
    ]


def _readme_commands() -> list[str]:
    """The README's shell lines that run reliqa (continuation lines joined)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("reliqa ")]


def test_readme_examples_do_not_overwrite_their_inputs() -> None:
    """Issue 18: `reliqa batch --pairs pairs.csv … --out pairs.csv` wrote over its own input."""
    import shlex

    for line in _readme_commands():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # prose around an inline command: plain words are enough here
            words = line.split("#")[0].split()
        inputs = {words[k + 1] for k, word in enumerate(words[:-1]) if word in ("--pairs", "--ref-dir", "--mos")}
        outputs = {words[k + 1] for k, word in enumerate(words[:-1]) if word in ("--out", "-o", "--report")}
        assert not inputs & outputs, line


def test_readme_score_range_examples_say_which_scale() -> None:
    """Issue 18: `--score-range 1,5` was shown as if it suited any MOS; it fits a 1…5 scale."""
    for line in _readme_commands():
        if "--score-range" in line:
            assert "#" in line and "1…5" in line.split("#", 1)[1], line
