"""The content-aware, label-free criterion for no-reference scorers (docs/nr.md), side by side.

For every held-out photo of the whole-photo corpus (the engine's fixed split), the corpus's
versions are re-rendered bit-exactly (clean + single camera defects + camera pairs, whole photo
at the corpus's scale), with their flipped and half-scale copies, and scored by each scorer.
Reported per scorer: pooled SRCC against the full-reference teacher consensus across all
held-out photos and defects (the number that chooses), SRCC on the damaged versions only, the
mean within-photo SRCC, the share of clearly damaged versions scored below their clean photo,
the largest flip difference and the full vs half-scale SRCC. Heads trained on the corpus
(``--heads RUN_DIR …``) are scored from the cached features (identical to their pixel path).
No human label is read.

    python benchmarks/nr_criterion.py --corpus /work/nr_cache/photos_v1 \
        --scorers laplacian_var niqe hirqa-s --out benchmarks/results/nr_criterion.json
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from reliqa.catalogue import higher_is_better
from reliqa.evaluation.scorers import resolve_scorer
from reliqa.training.nr_photo_distill import corpus_recipe, render_photo
from reliqa.training.nr_photo_head import (
    corpus_severity,
    load_photo_corpus,
    photo_criterion,
)
from reliqa.training.nr_photos import PhotoCorpusConfig, half_scale


def held_out_images(corpus, recipe: PhotoCorpusConfig):  # type: ignore[no-untyped-def]
    """Yield (versions, flipped, half) image lists of each held-out photo, in row order."""
    for pid in torch.unique(corpus.photo[corpus.held_out_rows]).tolist():
        versions = list(render_photo(corpus, pid, recipe).split(1))
        yield versions, [v.flip(-1) for v in versions], [half_scale(v) for v in versions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--scorers", nargs="*", default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = corpus_recipe(args.corpus)
    corpus = load_photo_corpus(args.corpus)
    severity = corpus_severity(corpus)[corpus.held_out_rows]
    results = {}
    for name in args.scorers:
        scorer = resolve_scorer(name, None)
        sign = 1.0 if higher_is_better(name) else -1.0
        start = time.monotonic()
        full, flipped, half = [], [], []
        for versions, flips, halves in held_out_images(corpus, config):
            with torch.inference_mode():
                full += [sign * float(scorer(v, None)[0]) for v in versions]
                flipped += [sign * float(scorer(v, None)[0]) for v in flips]
                half += [sign * float(scorer(v, None)[0]) for v in halves]
        metrics = photo_criterion(
            torch.tensor(full), corpus, severity, torch.tensor(flipped), torch.tensor(half)
        )
        metrics["seconds"] = round(time.monotonic() - start, 1)
        results[name] = {k: round(v, 4) for k, v in metrics.items()}
        print(name, results[name], flush=True)
        if args.out:  # after every scorer: a stopped run keeps what it measured
            record = {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "corpus": str(args.corpus),
                "held_out_photos": int(len(torch.unique(corpus.photo[corpus.held_out_rows]))),
                "held_out_versions": int(len(corpus.held_out_rows)),
                "train_photos": int((~corpus.held_out & corpus.clean).sum()),
                "results": results,
                "command": "python benchmarks/nr_criterion.py --corpus CORPUS --scorers "
                + " ".join(args.scorers),
            }
            args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
