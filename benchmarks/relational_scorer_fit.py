"""In-sample fit vs held-out: does the relational scorer reach its teachers' consensus at all?

    python benchmarks/relational_scorer_fit.py --train CACHE_TRAIN --validation CACHE_VAL \
        --weights shipped --weights shipped-plus --weights new=RUN/relational.safetensors \
        --out record.json

For each scorer, the validation metrics of ``reliqa train scorer`` (SRCC with the consensus of
``--teachers`` across all pairs, within-set SRCC with the level, share of negative scores) on
the TRAIN cache (in sample: the ceiling of the fit) and on the VALIDATION cache. The consensus
percentiles come from the train cache, as in training. No human label; seconds on one thread.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from reliqa.models.relational import RelationalModel, RelationalScorer
from reliqa.models.weights import load_shipped
from reliqa.training.relational_scorer import Consensus, validation_metrics
from reliqa.training.scorer_cache import TEACHERS, load_cache, teacher_matrix, teacher_names
from reliqa.verified import load_verified


def load_scorer(weights: str) -> RelationalScorer:
    """The scorer of 'shipped', 'shipped-plus' or a relational .safetensors state dict."""
    if weights in ("shipped", "shipped-plus"):
        state = load_shipped("relational" if weights == "shipped" else "relational-plus")[0]
    else:
        state = load_verified(weights, None)[0]
    return RelationalModel.from_state_dict(state).scorer.eval()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", required=True)
    parser.add_argument("--validation", required=True)
    parser.add_argument("--weights", action="append", required=True, metavar="[NAME=]WEIGHTS")
    parser.add_argument("--teachers", default=",".join(TEACHERS))
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    teachers = teacher_names(args.teachers.split(","))
    train, validation = load_cache(args.train), load_cache(args.validation)
    consensus = Consensus(teacher_matrix(train, teachers), teachers)
    results = {}
    for entry in args.weights:
        name, _, weights = entry.rpartition("=")
        scorer = load_scorer(weights)
        results[name or weights] = {
            split: validation_metrics(scorer, cache, consensus)
            for split, cache in (("train", train), ("validation", validation))
        }
        print(name or weights, json.dumps(results[name or weights]), flush=True)
    record = {
        "benchmark": "relational_scorer_fit",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "command": "python " + " ".join(sys.argv),
        "teachers": list(teachers),
        "pairs": {"train": int(train["level"].shape[0]), "validation": int(validation["level"].shape[0])},
        "results": results,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
