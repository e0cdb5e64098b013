"""Which candidate teachers enter the relational scorer's consensus: a label-free choice.

    python benchmarks/relational_teachers.py --cache VALIDATION_CACHE --out record.json

Reads a scorer cache of the VALIDATION half of the held-out photos (``reliqa train scorer-cache
--split validation``), which holds every candidate's column (``teacher.<name>``), and reports
per candidate (:func:`reliqa.training.relational_scorer.teacher_agreement`):

- ``consensus``: Spearman correlation with the mean percentile of the *other* candidates,
  across all pairs (contents and distortion types mixed);
- ``sets``: mean Spearman correlation with the engine level inside each ordinal set.

The rule (:func:`~reliqa.training.relational_scorer.select_teachers`): a candidate enters when
its ``consensus`` agreement reaches ``--minimum`` (default
:data:`~reliqa.training.relational_scorer.MIN_TEACHER_AGREEMENT`). No human score is read.
Seconds on one thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from reliqa.training.relational_scorer import (
    MIN_TEACHER_AGREEMENT,
    select_teachers,
    teacher_agreement,
)
from reliqa.training.scorer_cache import TEACHER_CANDIDATES, load_cache


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", required=True, help="a validation scorer cache folder")
    parser.add_argument("--candidates", default=",".join(TEACHER_CANDIDATES))
    parser.add_argument("--minimum", type=float, default=MIN_TEACHER_AGREEMENT)
    parser.add_argument("--out", help="write the record here (JSON)")
    args = parser.parse_args()
    candidates = tuple(name for name in args.candidates.split(",") if name)
    cache = load_cache(args.cache)
    agreement = teacher_agreement(cache, candidates)
    chosen = select_teachers(agreement, args.minimum)
    manifest = json.loads((Path(args.cache) / "cache.json").read_text())
    result = {
        "benchmark": "relational_teachers",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "command": "python " + " ".join(sys.argv),
        "cache": manifest,
        "pairs": int(cache["level"].shape[0]),
        "rule": f"consensus agreement (leave-one-out, all pairs) >= {args.minimum}",
        "agreement": agreement,
        "chosen": list(chosen),
    }
    print("| candidate | SRCC with the others' consensus | within-set SRCC with the level | enters |")
    print("|---|---:|---:|---|")
    for name, row in agreement.items():
        enters = "yes" if name in chosen else "no"
        print(f"| {name} | {row['consensus']:.3f} | {row['sets']:.3f} | {enters} |")
    print(f"{result['pairs']} pairs; chosen: {','.join(chosen)}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
