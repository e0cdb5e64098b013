"""Why some map channels detect poorly: detection AUC split by visibility, coverage and cross-talk.

    python benchmarks/relational_map_diagnosis.py                      # the shipped maps
    python benchmarks/relational_map_diagnosis.py --weights runs/x/relational.safetensors

The engine's truth says "blurred" or "compressed" wherever the plan put the distortion, whether
or not the content there changed (a blur of a flat sky, JPEG of a smooth gradient). The map
network can only see changed pixels. On the same evaluation triplets as
``benchmarks/relational_quality.py`` (evaluation half, seed 2024, 12 triplets per photo, 384²
crops), each positive sample of an attribute is given its visibility: the mean absolute pixel
change |test − reference| (RGB, [0, 1]) inside the attribute's true region. The detection AUC is
then reported for the positives in each third of visibility (against all negatives), and the
share of positives whose change is below 1/255 (invisible in an 8-bit image). Two more splits:
by coverage (positives whose true region covers less / more than the median share of the
image: the predictor is the mean over the whole image), and **cross-talk** — the AUC against
only those negatives that carry another given attribute (a channel that fires on another
attribute's damage loses AUC there). Evaluation only: no training or shipping decision reads it.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from relational_quality import auc, center_crop, load_model  # a sibling: benchmarks/ is on sys.path

from reliqa.attributes import ACTIVE_THRESHOLD, ATTRIBUTES, NEUTRAL
from reliqa.distortions import distort
from reliqa.io import load_image
from reliqa.training.relational import held_out_halves


@torch.inference_mode()
def visibility_auc(
    weights: str, photos: list[Path], per_photo: int, crop: int, seed: int
) -> dict[str, dict[str, float]]:
    model = load_model(weights)
    predictor: list[list[float]] = [[] for _ in ATTRIBUTES]
    visible: list[list[float]] = [[] for _ in ATTRIBUTES]  # NaN for negatives
    coverage: list[list[float]] = [[] for _ in ATTRIBUTES]  # share of the image, 0 for negatives
    generator = torch.Generator().manual_seed(seed)
    for path in photos:
        reference = center_crop(load_image(path), crop).expand(per_photo, -1, -1, -1)
        batch = distort(reference, p_swap=0.25, generator=generator)
        signed = 2 * (model(batch.test, batch.reference).maps - NEUTRAL)
        truth = 2 * (batch.truth - NEUTRAL)
        change = (batch.test - batch.reference).abs().mean(dim=1)  # (N, H, W)
        for c in range(len(ATTRIBUTES)):
            for n in range(per_photo):
                region = truth[n, c].abs() > 2 * ACTIVE_THRESHOLD
                predictor[c].append(float(signed[n, c].abs().mean()))
                visible[c].append(float(change[n][region].mean()) if region.any() else np.nan)
                coverage[c].append(float(region.float().mean()))
    result = {}
    covered = np.array(coverage) > 0  # (attributes, samples)
    for c, name in enumerate(ATTRIBUTES):
        values, seen, share = np.array(predictor[c]), np.array(visible[c]), np.array(coverage[c])
        positive = ~np.isnan(seen)
        negatives = values[~positive]
        cuts = np.quantile(seen[positive], [1 / 3, 2 / 3])
        thirds = np.digitize(seen[positive], cuts)
        row = {
            "samples_with": int(positive.sum()),
            "detection_auc": auc(values[positive], negatives),
            "invisible_share": float(np.mean(seen[positive] < 1 / 255)),
            "visibility_terciles": [float(x) for x in cuts],
        }
        for third, label in enumerate(("least_visible", "middle", "most_visible")):
            row[f"auc_{label}"] = auc(values[positive][thirds == third], negatives)
        median_share = np.median(share[positive])
        row["auc_small_coverage"] = auc(values[positive & (share < median_share)], negatives)
        row["auc_large_coverage"] = auc(values[positive & (share >= median_share)], negatives)
        row["auc_against_negatives_with"] = {
            other: auc(values[positive], values[~positive & covered[k]])
            for k, other in enumerate(ATTRIBUTES)
            if k != c
        }
        result[name] = row
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="shipped", help="'shipped' or a .safetensors file")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--per-photo", type=int, default=12)
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = held_out_halves(Path(args.data) / "pristine")[1]
    result = visibility_auc(args.weights, photos, args.per_photo, args.crop, args.seed)
    print(
        f"{'attribute':12s} {'n':>4s} {'AUC':>6s} {'least':>6s} {'middle':>6s} {'most':>6s} "
        f"{'<1/255':>7s} {'small':>6s} {'large':>6s}  worst cross-talk"
    )
    for name, row in result.items():
        worst = min(row["auc_against_negatives_with"].items(), key=lambda item: item[1])
        print(
            f"{name:12s} {row['samples_with']:4d} {row['detection_auc']:6.3f} "
            f"{row['auc_least_visible']:6.3f} {row['auc_middle']:6.3f} "
            f"{row['auc_most_visible']:6.3f} {row['invisible_share']:7.1%} "
            f"{row['auc_small_coverage']:6.3f} {row['auc_large_coverage']:6.3f}  "
            f"{worst[0]} {worst[1]:.3f}"
        )
    record = {
        "benchmark": "relational map detection AUC by visibility, coverage and cross-talk",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "settings": vars(args),
        "command": "python benchmarks/relational_map_diagnosis.py "
        + ("" if args.weights == "shipped" else f"--weights {args.weights}"),
        "maps": result,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
