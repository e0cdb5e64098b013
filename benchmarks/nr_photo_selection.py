"""Label-free selection of the ``hirqa`` design on the whole-photo corpus (docs/nr.md).

Trains one head per feature set (deep maps of any stages, with or without the classical
statistics) from the same config and seed, and records each one's content-aware criterion on
the held-out photos: the pooled SRCC against the full-reference teacher consensus across all
held-out photos and defects (the number that chooses), damaged-only and within-photo SRCC,
clean-beats-damage, flip and half-scale consistency. No human label is read.

    python benchmarks/nr_photo_selection.py --config configs/nr_hirqa_photos.json \
        --sets all:1 mean:1 early:1 late:1 middle:1 none:1 all:0 \
        --out benchmarks/results/nr_photo_selection.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import torch

from reliqa.training.nr_photo_head import (
    load_photo_corpus,
    load_photo_head_config,
    train_photo_head,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--sets", nargs="+", required=True, help="FEATURE_SET:STATISTICS(0/1)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--runs", type=Path, default=Path("runs/nr_photo_selection"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_photo_head_config(args.config, steps=args.steps)
    corpus = load_photo_corpus(base.corpus)
    rows = {}
    for spec in args.sets:
        feature_set, statistics = spec.split(":")
        config = dataclasses.replace(
            base, feature_set=feature_set, statistics=statistics == "1",
            run_dir=str(args.runs / spec.replace(":", "_stats")),
        )
        summary = train_photo_head(config, corpus)
        best = summary["best"] or {}
        rows[spec] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in best.items()}
        print(spec, rows[spec], f"{summary['seconds']} s", flush=True)
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": base.corpus,
        "train_photos": summary["train_photos"],
        "held_out_photos": summary["held_out_photos"],
        "config": dataclasses.asdict(base),
        "results": rows,
        "command": f"python benchmarks/nr_photo_selection.py --config {args.config} --sets "
        + " ".join(args.sets) + (f" --steps {args.steps}" if args.steps else ""),
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
