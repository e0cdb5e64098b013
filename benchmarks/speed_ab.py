"""Before/after speed of two source trees of reliqa, measured interleaved on one machine.

Used by ``benchmarks/nr_speed.py --before`` and ``benchmarks/relational_speed.py --before``: the
benchmark runs itself in child processes, alternately on the *before* tree and on this
checkout's ``src`` (before, after, before, after, …), so that a machine busy with other work
slows both alike; each child times its cases and writes a JSON record. The summary takes, per
case, the fastest child of each side (contention only ever adds time) and the median of the
per-round ratios. Make a before tree with::

    mkdir -p /tmp/before && git archive <commit> src | tar -x -C /tmp/before

and pass ``--before /tmp/before/src``. The weights come with each tree (``src/reliqa/weights``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

AFTER_SRC = Path(__file__).resolve().parents[1] / "src"
"""This checkout's package sources (the *after* side)."""


def run_interleaved(
    script: Path, arguments: list[str], before_src: Path, rounds: int
) -> dict[str, list[dict[str, object]]]:
    """``rounds`` × (before, after) runs of ``script arguments --out FILE``; the records they wrote.

    Raises:
        FileNotFoundError: ``before_src`` holds no ``reliqa`` package.
        subprocess.CalledProcessError: a child failed (its stderr is printed).
    """
    if not (before_src / "reliqa" / "__init__.py").is_file():
        raise FileNotFoundError(f"{before_src}: no reliqa package (expected {before_src}/reliqa)")
    records: dict[str, list[dict[str, object]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as folder:
        for round_index in range(rounds):
            for side, source in (("before", before_src), ("after", AFTER_SRC)):
                out = Path(folder) / f"{side}_{round_index}.json"
                environment = {**os.environ, "PYTHONPATH": str(source)}
                result = subprocess.run(
                    [sys.executable, str(script), *arguments, "--out", str(out)],
                    env=environment, capture_output=True, text=True,
                )
                if result.returncode:
                    print(result.stderr, file=sys.stderr)
                    result.check_returncode()
                records[side].append(json.loads(out.read_text()))
                print(f"round {round_index + 1} {side}: done", file=sys.stderr, flush=True)
    return records


def summarise(
    records: dict[str, list[dict[str, object]]], timings: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """Per case (name → key path into a record): the fastest ms of each side, their ratio and
    the median of the per-round ratios (before / after: > 1 = the after tree is faster)."""
    summary = {}
    for case, path in timings.items():
        before = [float(_at(record, path)) for record in records["before"]]
        after = [float(_at(record, path)) for record in records["after"]]
        summary[case] = {
            "before_min_ms": round(min(before), 2),
            "after_min_ms": round(min(after), 2),
            "speedup_of_minima": round(min(before) / min(after), 3),
            "speedup_median_of_rounds": round(
                statistics.median(b / a for b, a in zip(before, after)), 3
            ),
        }
    return summary


def _at(record: object, path: list[str]) -> object:
    for key in path:
        record = record[key]  # type: ignore[index]
    return record
