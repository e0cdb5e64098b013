"""Issue 19, CLI: shared options are declared once (reliqa.cli.options), one Typer style, thin
command functions, and ``reliqa batch``'s exit codes (1 = a bad input, 2 = bad usage)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.main import get_command
from typer.testing import CliRunner

from reliqa.cli import app
from reliqa.cli.options import SHARED_OPTIONS

SRC = Path(__file__).resolve().parents[1] / "src" / "reliqa"
CLI_FILES = sorted((SRC / "cli").glob("*.py"))
MAX_FUNCTION_LINES = 80

runner = CliRunner()


def _typer_calls(tree: ast.AST) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "typer"
        and node.func.attr in ("Option", "Argument")
    ]


@pytest.mark.parametrize("path", CLI_FILES, ids=lambda path: path.name)
def test_shared_options_are_declared_only_in_the_options_module(path: Path) -> None:
    if path.name == "options.py":
        return
    tree = ast.parse(path.read_text())
    declared = {
        arg.value
        for call in _typer_calls(tree)
        for arg in call.args
        if isinstance(arg, ast.Constant) and arg.value in SHARED_OPTIONS
    }
    assert not declared, f"{path.name} declares {sorted(declared)}: use reliqa.cli.options"


@pytest.mark.parametrize("path", CLI_FILES, ids=lambda path: path.name)
def test_one_typer_style_annotated(path: Path) -> None:
    """Options are ``Annotated[T, typer.Option(...)]``, never ``x: T = typer.Option(...)``."""
    tree = ast.parse(path.read_text())
    old_style = [
        f"{node.name}({arg.arg})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for arg, default in zip(
            node.args.args[len(node.args.args) - len(node.args.defaults) :],
            node.args.defaults,
            strict=True,
        )
        if default in _typer_calls(default)
    ] + [
        f"{node.name}({arg.arg})"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for arg, default in zip(node.args.kwonlyargs, node.args.kw_defaults, strict=True)
        if default is not None and default in _typer_calls(default)
    ]
    assert not old_style, f"{path.name}: typer.Option as a default value in {old_style}"


def _commands() -> list[tuple[str, Any]]:
    found = []

    def walk(command: Any, prefix: str) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            found.append((prefix, command))

    walk(get_command(app), "")
    return found


def test_every_shared_option_has_one_help_text() -> None:
    helps: dict[str, set[str]] = defaultdict(set)
    users: dict[str, list[str]] = defaultdict(list)
    for name, command in _commands():
        for param in command.params:
            for flag in param.opts:
                if flag in SHARED_OPTIONS:
                    helps[flag].add(param.help)
                    users[flag].append(name)
    for flag in ("--device", "--json", "--threads"):
        assert len(users[flag]) >= 3, (flag, users[flag])
    different = {flag: texts for flag, texts in helps.items() if len(texts) != 1}
    assert not different, different


def test_every_command_takes_json() -> None:
    without = [
        name
        for name, command in _commands()
        if name not in ("serve", "train scorer-cache")
        and not any("--json" in param.opts for param in command.params)
    ]
    assert not without, without


def test_no_function_in_the_cli_or_web_is_longer_than_80_lines() -> None:
    long = []
    for path in [*CLI_FILES, *sorted((SRC / "web").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert not long, long


# ---------------------------------------------------------------------------------------------
# reliqa batch: 1 = an input failed, 2 = bad usage (README "Scoring whole folders", docs/batch.md)
# ---------------------------------------------------------------------------------------------


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"a{index}.png")
    return folder


def _batch(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["batch", *args])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_batch_bad_input_exits_1(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    empty_pairs = tmp_path / "pairs.csv"
    empty_pairs.write_text("reference,test\n")  # a pairs CSV without rows: the input is bad
    code, output = _batch("--pairs", str(empty_pairs), "-m", "ssim", "-o", str(out))
    assert code == 1 and "no rows" in output, output
    not_text = tmp_path / "list.csv"
    not_text.write_bytes(b"\xff\xfe\x00bad")  # a list of paths that is not UTF-8
    code, output = _batch(str(not_text), "-m", "laplacian_var", "-o", str(out))
    assert code == 1 and "UTF-8" in output, output
    # a results file that is not one, given to --merge: a bad input too, nothing written
    merged = tmp_path / "m.csv"
    code, output = _batch("--merge", str(empty_pairs), "-o", str(merged))
    assert code == 1 and not merged.exists(), output
    assert not out.exists()


def test_batch_bad_usage_exits_2(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.csv"
    cases = [
        ([str(images), "-m", "no_such_metric", "-o", str(out)], "no_such_metric"),
        ([str(images), "-m", "ssim", "-o", str(out)], "full-reference"),  # FR without pairs
        ([str(images), "--pairs", "p.csv", "-m", "ssim", "-o", str(out)], "no INPUT"),
        ([str(images), "-m", "laplacian_var", "-o", str(out), "--shard", "5/2"], "--shard"),
        ([str(images), "-m", "laplacian_var", "-o", str(out), "--engine", "spark"], "--engine"),
        ([str(images / "*.jpg"), "-m", "laplacian_var", "-o", str(out)], "matches no file"),
        (["--merge", "-o", str(out)], "--merge"),
    ]
    for args, message in cases:
        code, output = _batch(*args)
        assert code == 2 and message in output, (args, output)
    assert not out.exists()


@pytest.mark.parametrize(("flags", "expected"), [((), None), (("--device", "cpu"), "cpu")])
def test_batch_ray_device_is_passed_through(
    images: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...], expected: str | None,
) -> None:
    """Without --device a Ray actor picks its device itself (a GPU when given one); an explicit
    --device cpu must reach the actors as "cpu", not be turned into "pick for me"."""
    import reliqa.batch.distributed as distributed

    seen: dict[str, object] = {}

    def fake_score_dataset(*args: object, **kwargs: object) -> object:
        seen["device"] = kwargs["device"]
        raise SystemExit(0)

    monkeypatch.setattr(distributed, "score_dataset", fake_score_dataset)
    out = tmp_path / "r.csv"
    runner.invoke(app, ["batch", str(images), "-m", "laplacian_var", "-o", str(out),
                        "--engine", "ray", *flags])
    assert seen == {"device": expected}
