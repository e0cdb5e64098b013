"""Before/after speed of two source trees of reliqa, each in its own processes, alternating.

``benchmarks/speed_ab.py`` interleaves both trees in one process, which is fair to contention
but not to memory: the two trees share one allocator, so a tree whose path maps fresh pages at
every call hides behind the other's freed memory. Here every measurement is a fresh process of a
speed benchmark (``nr_speed.py`` or ``relational_speed.py``) that imports either the ``--before``
tree (via ``PYTHONPATH``) or this checkout, alternating ``--rounds`` times; the record holds
every run and, per model and figure, the median of each side and their ratio::

    mkdir -p /tmp/before && git archive <commit> src | tar -x -C /tmp/before
    python benchmarks/speed_ab_processes.py --before /tmp/before/src --rounds 6 \\
        --out benchmarks/results/ab.json -- benchmarks/nr_speed.py --models hirqa-s --no-flops
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(benchmark: list[str], source: Path | None) -> dict[str, dict[str, float]]:
    """One process of ``benchmark`` (a script and its arguments) on ``source`` (a tree's
    ``src`` folder; None = this checkout): its ``models`` entries."""
    environment = dict(os.environ)
    if source is not None:
        environment["PYTHONPATH"] = str(source)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run.json"
        subprocess.run(
            [sys.executable, *benchmark, "--out", str(out)], env=environment, cwd=ROOT,
            check=True, stdout=subprocess.DEVNULL,
        )
        return json.loads(out.read_text())["models"]  # type: ignore[no-any-return]


def summarise(
    runs: dict[str, list[dict[str, dict[str, float]]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per model and numeric figure: median before, median after, before / after."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for model, figures in runs["after"][0].items():
        summary[model] = {}
        for figure, value in figures.items():
            if not isinstance(value, (int, float)) or figure == "parameters":
                continue
            before = statistics.median(run[model][figure] for run in runs["before"])
            after = statistics.median(run[model][figure] for run in runs["after"])
            summary[model][figure] = {
                "before_median": round(before, 2),
                "after_median": round(after, 2),
                "before_over_after": round(before / after, 3) if after else float("nan"),
            }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="The earlier tree's src/.")
    parser.add_argument("--before-label", help="What the before tree is (e.g. its commit).")
    parser.add_argument("--rounds", type=int, default=6, help="Processes per side.")
    parser.add_argument("--out", type=Path, required=True, help="JSON record to write.")
    parser.add_argument("benchmark", nargs=argparse.REMAINDER, help="-- SCRIPT [ARGS]")
    args = parser.parse_args()
    benchmark = [part for part in args.benchmark if part != "--"]
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        runs["before"].append(run_once(benchmark, args.before))
        runs["after"].append(run_once(benchmark, None))
    record = {
        "benchmark": "before/after speed, one process per measurement, alternating",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python", *sys.argv]),
        "before": args.before_label or str(args.before),
        "rounds": args.rounds,
        "summary": summarise(runs),
        "runs": runs,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["summary"], indent=1))


if __name__ == "__main__":
    main()
