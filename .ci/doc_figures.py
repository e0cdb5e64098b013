#!/usr/bin/env python3
"""Documented figures must match their records in benchmarks/results (issue 18).

A measured figure in README.md or docs/*.md names the record it comes from in an HTML comment
right after it (invisible when the Markdown is rendered, tables included):

    | relational | 24.66<!-- fig tuning_comparison.json:tasks/correct/runs/relational/quality/psnr --> |
    | relational | 48.8<!-- fig relational_speed_quiet_2026-11-30.json:median_s *1000 --> ms |

``FILE`` is a JSON file under ``benchmarks/results/``; ``KEY`` a ``/``-separated path into it
(list items by index); an optional ``*SCALE`` multiplies the record (seconds → ms). The figure as
written sets the precision: it must be the record rounded to the decimals written. Thousands
separators (``2,484``), a Unicode minus and a trailing ``*`` or unit after the comment are fine.

A record that lists the weights it was measured with (``config/weights_sha256``: name → sha256)
must name the weights shipped now (``src/reliqa/weights/<name>.json`` ``sha256``): after a
retraining the record — and so every figure tied to it — is stale until its command is rerun.

    python .ci/doc_figures.py            # check (exit 1 and one line per problem)
    python .ci/doc_figures.py --fix      # rewrite the figures from their records

``tests/test_doc_figures.py`` runs the check in ``make test``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WEIGHTS = ROOT / "src" / "reliqa" / "weights"
DOCUMENTS = ("README.md", "docs/*.md")

FIGURE = re.compile(
    r"(?P<number>[-−]?\d[\d,]*(?:\.\d+)?)"
    r"<!--\s*fig\s+(?P<file>[\w.\-]+\.json):(?P<key>\S+?)(?:\s+\*(?P<scale>[\d.eE+-]+))?\s*-->"
)


@dataclass(frozen=True)
class Figure:
    """One documented figure and its record."""

    document: Path
    line: int
    written: str
    file: str
    key: str
    scale: float
    start: int
    end: int

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def figures(document: Path) -> list[Figure]:
    """Every marked figure of a Markdown file, in order."""
    text = document.read_text(encoding="utf-8")
    found = []
    for match in FIGURE.finditer(text):
        found.append(Figure(
            document=document,
            line=text.count("\n", 0, match.start()) + 1,
            written=match["number"],
            file=match["file"],
            key=match["key"],
            scale=float(match["scale"]) if match["scale"] else 1.0,
            start=match.start("number"),
            end=match.end("number"),
        ))
    return found


def _load(file: str, cache: dict[str, Any]) -> Any:
    if file not in cache:
        cache[file] = json.loads((RESULTS / file).read_text(encoding="utf-8"))
    return cache[file]


def record_value(figure: Figure, cache: dict[str, Any]) -> float:
    """The record's number for a figure (scaled); KeyError/ValueError name what is missing."""
    node = _load(figure.file, cache)
    for part in figure.key.split("/"):
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise ValueError(f"{figure.file}:{figure.key} is {node!r}, not a number")
    return float(node) * figure.scale


def _decimals(written: str) -> int:
    return len(written.split(".")[1]) if "." in written else 0


def _number(written: str) -> float:
    return float(written.replace("−", "-").replace(",", ""))


def formatted(value: float, like: str) -> str:
    """``value`` written as ``like`` is (decimals, thousands separators, minus sign)."""
    decimals = _decimals(like)
    text = f"{value:,.{decimals}f}" if "," in like else f"{value:.{decimals}f}"
    return text.replace("-", "−") if "−" in like else text


def matches(written: str, value: float) -> bool:
    """Whether ``written`` is ``value`` rounded to the decimals written."""
    half_step = 0.5 * 10.0 ** -_decimals(written)
    return abs(_number(written) - value) <= half_step * (1 + 1e-9) + 1e-12


def stale_records(files: set[str], cache: dict[str, Any]) -> list[str]:
    """Records measured with weights other than the shipped ones."""
    problems = []
    for file in sorted(files):
        try:
            used = _load(file, cache).get("config", {}).get("weights_sha256", {})
        except (OSError, ValueError, AttributeError):
            continue
        for name, sha256 in sorted(used.items()):
            card = WEIGHTS / f"{name}.json"
            shipped = json.loads(card.read_text(encoding="utf-8")).get("sha256") if card.is_file() else None
            if shipped is not None and shipped != sha256:
                command = _load(file, cache).get("command", "its benchmark")
                problems.append(
                    f"benchmarks/results/{file}: measured with {name} weights {sha256[:12]}…, "
                    f"the shipped ones are {shipped[:12]}… — rerun `{command}`"
                )
    return problems


def documents(root: Path = ROOT) -> list[Path]:
    return sorted(path for pattern in DOCUMENTS for path in root.glob(pattern))


def check(paths: list[Path] | None = None) -> tuple[list[str], int]:
    """(problems, number of figures checked)."""
    cache: dict[str, Any] = {}
    problems: list[str] = []
    count = 0
    files: set[str] = set()
    for document in paths or documents():
        for figure in figures(document):
            count += 1
            files.add(figure.file)
            try:
                value = record_value(figure, cache)
            except FileNotFoundError:
                problems.append(f"{figure.where}: no record benchmarks/results/{figure.file}")
                continue
            except (KeyError, IndexError, ValueError) as error:
                problems.append(f"{figure.where}: {figure.file}:{figure.key}: no such number ({error})")
                continue
            if not matches(figure.written, value):
                problems.append(
                    f"{figure.where}: {figure.written} but {figure.file}:{figure.key} says "
                    f"{formatted(value, figure.written)} ({value!r})"
                )
    problems += stale_records(files, cache)
    return problems, count


def fix(paths: list[Path] | None = None) -> int:
    """Rewrite every figure from its record; returns how many changed."""
    cache: dict[str, Any] = {}
    changed = 0
    for document in paths or documents():
        text = document.read_text(encoding="utf-8")
        pieces, last = [], 0
        for figure in figures(document):
            value = record_value(figure, cache)
            if matches(figure.written, value):
                continue
            pieces += [text[last:figure.start], formatted(value, figure.written)]
            last = figure.end
            changed += 1
        if pieces:
            document.write_text("".join(pieces) + text[last:], encoding="utf-8")
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix", action="store_true", help="rewrite the figures from their records")
    args = parser.parse_args()
    if args.fix:
        print(f"{fix()} figure(s) rewritten")
    problems, count = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{count} documented figures checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
