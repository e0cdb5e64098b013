"""Default metrics vs the official values on ../shared/data/tid2013_calib (markdown table + JSON).

Usage:
    python benchmarks/metrics_calibration.py [--data ../shared/data/tid2013_calib]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import torch

import reliqa
from reliqa.io import load_image

PAIRS = ("I03", "I04", "I06", "I08", "I19")
# registry name -> row of official_values.csv
ROWS = {"psnr": "psnr", "ssim": "ssim", "ms_ssim": "ms_ssim", "gmsd": "gmsd", "fsim": "fsim", "vifp": "vif",
        "vsi": "vsi", "vsi_piq": "vsi"}  # the VSIs do NOT match (docs/metrics.md): shown, not claimed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "data" / "tid2013_calib")
    args = parser.parse_args()
    torch.set_num_threads(2)
    test = torch.cat([load_image(args.data / "dist" / f"{name}.bmp") for name in PAIRS])
    reference = torch.cat([load_image(args.data / "ref" / f"{name}.bmp") for name in PAIRS])
    with open(args.data / "official_values.csv", newline="") as handle:
        official = {row["metric"]: [float(row[name]) for name in PAIRS] for row in csv.DictReader(handle)}
    results = {}
    print("| metric (official row) | " + " | ".join(PAIRS) + " | max abs err | max rel err |")
    print("|---|" + "---:|" * (len(PAIRS) + 2))
    with torch.inference_mode():
        for name, row in ROWS.items():
            ours = reliqa.create_metric(name)(test, reference).tolist()
            theirs = official[row]
            absolute = max(abs(a - b) for a, b in zip(ours, theirs))
            relative = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs))
            results[name] = {"official_row": row, "ours": ours, "official": theirs,
                             "max_abs_err": absolute, "max_rel_err": relative}
            cells = " | ".join(f"{a:.4g} ({b:.4g})" for a, b in zip(ours, theirs))
            print(f"| {name} ({row}) | {cells} | {absolute:.2g} | {relative:.2g} |")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
