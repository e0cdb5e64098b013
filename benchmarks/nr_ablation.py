"""What each HiRQA loss term and the pooling buy: ``hirqa`` head variants on one cached corpus.

Every variant trains the head from the same seed on the same first ``--shards`` shards of the
corpus for the same number of steps and is scored on the corpus's synthetic held-out batches
(``val.safetensors``): SRCC against −severity within a content, pooled over all contents
(cross-content), and their mean (the checkpoint criterion). No human label is read; the
BIQ2021 figures are reported for the shipped models only (benchmarks/nr_quality.py).

    python benchmarks/nr_ablation.py --cache /work/nr_cache/lite0_v1 --shards 16 --steps 400 \
        --out benchmarks/results/nr_ablation_cpu.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reliqa.training.nr_head import NRHeadConfig, train_nr_head

VARIANTS: dict[str, dict[str, Any]] = {
    "full objective, mean+std of 8 maps": {},
    "no within-content rank": {"weight_rank": 0.0},
    "no cross-content rank": {"weight_cross": 0.0},
    "no higher-order rank": {"weight_higher": 0.0},
    "no embedding consistency": {"weight_embed": 0.0},
    "no text alignment": {"weight_text": 0.0},
    "no severity anchor": {"weight_anchor": 0.0},
    "pooling: means only": {"feature_set": "mean"},
    "pooling: last map only (global average + std)": {"feature_set": "last"},
    "pooling: stages 1-4 only": {"feature_set": "early"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", required=True)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--groups", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    base = NRHeadConfig(
        cache=args.cache, steps=args.steps, groups=args.groups, threads=args.threads,
        max_shards=args.shards, val_every=max(args.steps // 4, 1), checkpoint_every=args.steps,
    )
    rows: dict[str, Any] = {}
    for name, changes in VARIANTS.items():
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.monotonic()
            summary = train_nr_head(replace(base, run_dir=run_dir, **changes), quiet=True)
            best = summary["best_val"]
            rows[name] = {
                "changes": changes,
                "best_step": best["step"],
                "srcc_within": round(best["srcc_within"], 4),
                "srcc_all": round(best["srcc_all"], 4),
                "selection": round(best["selection"], 4),
                "seconds": round(time.monotonic() - start, 1),
            }
        print(name, json.dumps(rows[name]), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": "python benchmarks/nr_ablation.py " + " ".join(
                f"--{k} {v}" for k, v in vars(args).items()),
            "contents": summary["corpus_contents"], "variants": rows,
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
