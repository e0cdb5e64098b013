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

from reliqa.models.hirqa import feature_mask
from reliqa.training.config import load_config
from reliqa.training.nr_photo_head import (
    PhotoCorpus,
    PhotoHeadConfig,
    corpus_severity,
    load_photo_corpus,
    photo_criterion,
    train_photo_head,
)


def pristine_distance(corpus: PhotoCorpus, feature_set: str, rank: int = 40) -> dict[str, float]:
    """The training-free deep pristine statistic (the MDFS idea on whole-photo pooled features):
    standardise the feature set on the clean training photos, fit a Gaussian in the span of
    their ``rank`` leading principal directions (variance + 1 as shrinkage; unit variance off
    the span), score = −Mahalanobis distance; its criterion on the held-out rows."""
    train = torch.nonzero(~corpus.held_out, as_tuple=True)[0]
    clean = train[corpus.clean[train]]
    severity = corpus_severity(corpus)
    features = corpus.features[:, : feature_mask(feature_set).numel()][:, feature_mask(feature_set).bool()]
    mean, std = features[clean].mean(0), features[clean].std(0).clamp(min=1e-3)
    z = (features - mean) / std
    _, _, basis = torch.pca_lowrank(z[clean], q=min(rank, len(clean) - 1), center=False)
    projected = z @ basis
    variance = (z[clean] @ basis).var(0)
    inside = (projected**2 / (variance + 1.0)).sum(1)
    outside = ((z**2).sum(1) - (projected**2).sum(1)) / 2.0
    rows = corpus.held_out_rows
    return photo_criterion(-(inside + outside)[rows], corpus, severity[rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--sets", nargs="*", default=[], help="FEATURE_SET:STATISTICS(0/1)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int, help="Override the config's seed.")
    parser.add_argument(
        "--pristine", nargs="*", default=[],
        help="Feature sets for the training-free pristine distance rows.",
    )
    parser.add_argument("--runs", type=Path, default=Path("runs/nr_photo_selection"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_config(PhotoHeadConfig, args.config, steps=args.steps, seed=args.seed)
    corpus = load_photo_corpus(base.corpus, base.views)
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
    for feature_set in args.pristine:
        result = pristine_distance(corpus, feature_set)
        rows[f"pristine:{feature_set}"] = {k: round(v, 4) for k, v in result.items()}
        print(f"pristine:{feature_set}", rows[f"pristine:{feature_set}"], flush=True)
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "corpus": base.corpus,
        "views": list(base.views),
        "train_photos": int((~corpus.held_out & corpus.clean & ~corpus.view).sum()),
        "train_views": int((corpus.clean & corpus.view).sum()),
        "held_out_photos": int((corpus.held_out & corpus.clean).sum()),
        "config": dataclasses.asdict(base),
        "results": rows,
        "command": f"python benchmarks/nr_photo_selection.py --config {args.config} --sets "
        + " ".join(args.sets) + (f" --steps {args.steps}" if args.steps else "")
        + (f" --seed {args.seed}" if args.seed is not None else "")
        + (" --pristine " + " ".join(args.pristine) if args.pristine else ""),
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
