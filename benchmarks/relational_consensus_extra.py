"""How the relational scores agree with a teacher consensus that includes the issue-17
metrics (HaarPSI, MDSI, VSI, SR-SIM, DSS), on the evaluation pairs of relational_quality.py.

The pairs are those of ``benchmarks/relational_quality.py`` part 2 (same held-out photos, same
ordinal sets: seed 2025, 4 sets per photo, 5 levels, 256-px crops; 520 pairs), pooled across
contents and types. For every measure (higher = better) the Spearman correlation with three
consensuses, each the mean percentile of its metrics, always leaving the measure itself out:

- ``current``: the scorer's teachers before issue 17, FSIMc, GMSD, VIFp, MS-SSIM
  (:data:`OLD_TEACHERS`) — reproduces the README's "SRCC with the teachers' consensus"
  (0.889 / 0.921);
- ``extended``: those four plus HaarPSI, MDSI, VSI, SR-SIM, DSS;
- ``new_only``: the five new metrics alone;
- ``chosen``: the scorer's teachers now (``--teachers``, default ``scorer_cache.TEACHERS``).

Also the mean within-set SRCC with the level (ordinal), as relational_quality.py reports it,
and the SRCC with MOS on the five TID2013 calibration pairs (evaluation only). The shipped
weights, and with ``--model NAME=WEIGHTS`` (repeatable) other relational weights on the same
pairs. Nothing is trained or cached. CPU, about ten minutes on one thread.

Usage:
    python benchmarks/relational_consensus_extra.py [--data ../shared/data] [--threads 1]
        [--model new=runs/scorer/relational.safetensors] [--out F]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relational_quality import TID_MOS, center_crop, load_model

from reliqa.distortions import ordinal_set
from reliqa.io import load_image
from reliqa.metrics import create_metric
from reliqa.models import create_model
from reliqa.training.relational import held_out_halves
from reliqa.training.scorer_cache import TEACHERS, teacher_names

OLD_TEACHERS = ("fsim", "gmsd", "vifp", "ms_ssim")
"""The scorer's teachers before issue 17 (the shipped 2026-11-30 weights learned from them)."""
NEW = ("haarpsi", "mdsi", "vsi", "srsim", "dss")
OTHERS = ("psnr", "ssim")
MODELS = ("relational", "relational-plus")


def consensus_srcc(pooled: dict[str, np.ndarray], members: tuple[str, ...]) -> dict[str, float]:
    """SRCC of every measure with the mean percentile of ``members`` other than itself."""
    percentiles = {name: rankdata(pooled[name]) / len(pooled[name]) for name in members}
    result = {}
    for name, values in pooled.items():
        others = [percentiles[member] for member in members if member != name]
        result[name] = float(spearmanr(values, np.mean(others, axis=0)).statistic)
    return result


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--sets-per-photo", type=int, default=4)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--seed", type=int, default=2025, help="relational_quality.py's ordinal seed (2024 + 1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--teachers", default=",".join(TEACHERS), help="the 'chosen' consensus")
    parser.add_argument(
        "--model", action="append", default=[], metavar="NAME=WEIGHTS",
        help="more relational weights (a .safetensors state dict) under NAME",
    )
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    chosen = teacher_names(args.teachers.split(","))
    models = {name: create_model(name) for name in MODELS}
    for entry in args.model:
        name, _, weights = entry.partition("=")
        models[name] = load_model(weights)
    metric_names = (*OLD_TEACHERS, *NEW, *OTHERS)
    metrics = {name: create_metric(name) for name in metric_names}
    _, photos = held_out_halves(Path(args.data) / "pristine")
    generator = torch.Generator().manual_seed(args.seed)
    pooled: dict[str, list[float]] = {name: [] for name in (*models, *metric_names)}
    within: dict[str, list[float]] = {name: [] for name in pooled}
    for path in photos:
        reference = center_crop(load_image(path), args.crop).expand(args.sets_per_photo, -1, -1, -1)
        sets = ordinal_set(reference, args.levels, generator=generator)
        flat = sets.versions.flatten(0, 1)
        repeated = reference[:, None].expand(-1, args.levels, -1, -1, -1).flatten(0, 1)
        values = {name: model(flat, repeated).score for name, model in models.items()}
        for name, metric in metrics.items():
            scores = metric(flat, repeated)
            values[name] = scores if metric.info.higher_is_better else -scores
        for name, scores in values.items():
            scores = scores.float()
            pooled[name].extend(scores.tolist())
            for row, level in zip(scores.view(args.sets_per_photo, args.levels).numpy(), sets.levels.numpy()):
                rho = spearmanr(row, -level).statistic
                within[name].append(0.0 if math.isnan(rho) else float(rho))
    arrays = {name: np.array(values) for name, values in pooled.items()}
    tid = Path(args.data) / "tid2013_calib"
    tid_values: dict[str, list[float]] = {name: [] for name in pooled}
    for pair in sorted(TID_MOS):
        reference = load_image(tid / "ref" / f"{pair}.bmp")
        test = load_image(next((tid / "dist").glob(f"{pair}*")))
        for name, model in models.items():
            tid_values[name].append(float(model(test, reference).score))
        for name, metric in metrics.items():
            value = float(metric(test, reference))
            tid_values[name].append(value if metric.info.higher_is_better else -value)
    mos = [TID_MOS[pair] for pair in sorted(TID_MOS)]
    result = {
        "benchmark": "relational_consensus_extra",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "command": "python " + " ".join(sys.argv),
        "settings": vars(args),
        "pairs": len(arrays["relational"]),
        "photos": len(photos),
        "models": {name: entry for name, _, entry in (m.partition("=") for m in args.model)},
        "consensus_members": {
            "current": list(OLD_TEACHERS), "extended": [*OLD_TEACHERS, *NEW],
            "new_only": list(NEW), "chosen": list(chosen),
        },
        "srcc_with_consensus": {
            "current": consensus_srcc(arrays, OLD_TEACHERS),
            "extended": consensus_srcc(arrays, (*OLD_TEACHERS, *NEW)),
            "new_only": consensus_srcc(arrays, NEW),
            "chosen": consensus_srcc(arrays, chosen),
        },
        "ordinal_srcc": {name: float(np.mean(values)) for name, values in within.items()},
        "tid2013_calib": {
            "pairs": sorted(TID_MOS),
            "values_higher_is_better": tid_values,
            "srcc": {
                name: float(spearmanr(values, mos).statistic) for name, values in tid_values.items()
            },
        },
        "seconds": time.perf_counter() - started,
    }
    print(f"| measure | SRCC w/ current (4) | w/ extended (9) | w/ new only (5) | "
          f"w/ chosen ({len(chosen)}) | within-set SRCC | TID2013 calib SRCC |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    table = result["srcc_with_consensus"]
    tid_srcc = result["tid2013_calib"]["srcc"]
    for name in pooled:
        print(f"| {name} | {table['current'][name]:.3f} | {table['extended'][name]:.3f} | "
              f"{table['new_only'][name]:.3f} | {table['chosen'][name]:.3f} | "
              f"{result['ordinal_srcc'][name]:.3f} | {tid_srcc[name]:.2f} |")
    print(f"{result['pairs']} pairs from {result['photos']} photos, {result['seconds']:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
