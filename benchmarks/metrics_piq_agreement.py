"""Values of reliqa's HaarPSI, MDSI, VSI, SR-SIM and DSS beside piq 0.8's (and, for VSI, the
official value) on the five TID2013 pairs of ../shared/data/tid2013_calib (issue 17).

piq is called image by image (its SR-SIM normalises saliency over the whole batch) and loaded
without ``piq/__init__.py`` (``pip install --no-deps piq``).

Usage:
    python benchmarks/metrics_piq_agreement.py [--data ../shared/data/tid2013_calib] [--json-out F]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_speed_fr_extra import load_piq

import reliqa
from reliqa.io import load_image

PAIRS = ("I03", "I04", "I06", "I08", "I19")
# our metric -> (piq function, official row or None)
ROWS = {"haarpsi": ("haarpsi", None), "mdsi": ("mdsi", None), "vsi": ("vsi", "vsi"),
        "vsi_piq": ("vsi", "vsi"), "srsim": ("srsim", None), "dss": ("dss", None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    repo = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", type=Path, default=repo.parent / "shared" / "data" / "tid2013_calib")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    piq = load_piq()
    if piq is None:
        raise SystemExit("piq is not installed (pip install --no-deps piq)")
    test = torch.cat([load_image(args.data / "dist" / f"{name}.bmp") for name in PAIRS])
    reference = torch.cat([load_image(args.data / "ref" / f"{name}.bmp") for name in PAIRS])
    with open(args.data / "official_values.csv", newline="") as handle:
        official = {row["metric"]: [float(row[name]) for name in PAIRS] for row in csv.DictReader(handle)}
    results = []
    print("| metric | " + " | ".join(PAIRS) + " | max abs diff vs piq | max abs diff vs official |")
    print("|---|" + "---:|" * (len(PAIRS) + 2))
    with torch.inference_mode():
        for name, (piq_name, official_row) in ROWS.items():
            ours = reliqa.create_metric(name)(test, reference)
            function = getattr(piq, piq_name)
            theirs = torch.cat([function(test[i:i + 1], reference[i:i + 1], reduction="none")
                                for i in range(len(PAIRS))])
            row = {"metric": name, "ours": ours.tolist(), "piq": theirs.tolist(),
                   "max_abs_diff_vs_piq": float((ours - theirs).abs().max())}
            cells = [f"{a:.4f} ({b:.4f})" for a, b in zip(row["ours"], row["piq"])]
            versus_official = "—"
            if official_row is not None:
                row["official"] = official[official_row]
                row["max_abs_diff_vs_official"] = float((ours - torch.tensor(official[official_row])).abs().max())
                versus_official = f"{row['max_abs_diff_vs_official']:.2g}"
            results.append(row)
            print(f"| {name} | " + " | ".join(cells) + f" | {row['max_abs_diff_vs_piq']:.1e} | {versus_official} |")
    if "vsi" in official:
        print("official vsi: " + ", ".join(f"{value:.4f}" for value in official["vsi"]))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump({"command": "python " + " ".join(sys.argv), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
