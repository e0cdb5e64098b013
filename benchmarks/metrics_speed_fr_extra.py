"""Speed of reliqa's HaarPSI, MDSI, VSI, SR-SIM and DSS vs piq 0.8 on the same inputs (issue 17).

Inputs are those of ``metrics_speed.py``: crops of scikit-image photos at 384 x 512, the test a
blurred and noisy copy. Each pair of implementations computes the same definition (``vsi_piq``
for piq's VSI; our ``vsi``, the VSI.m reading, is timed beside piq's VSI too and checked to 1e-2
only); values are checked image by image to 1e-3 (asserted) before times are reported
(piq's SR-SIM normalises saliency over the whole batch, so its batched VALUES differ; it is
timed batched all the same). Times: the implementations take turns for ``--repeats`` rounds;
the best round of each, in ms per image, under ``torch.inference_mode``.

piq is loaded without ``piq/__init__.py`` (which needs torchvision): ``pip install --no-deps piq``.

Usage:
    python benchmarks/metrics_speed_fr_extra.py --threads 1 --batch 1 8 --repeats 5 [--json-out F]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import sys
import types
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_speed import HEIGHT, WIDTH, make_inputs, time_round_robin

from reliqa.metrics import dss, haarpsi, mdsi, srsim, vsi

TOLERANCE = 1e-3
LOOSER = {"vsi": 1e-2}  # VSI.m vs piq's VSI: resizing and downsampling differ (docs/metrics.md)
METRICS = ("haarpsi", "mdsi", "vsi", "vsi_piq", "srsim", "dss")


def load_piq() -> types.SimpleNamespace | None:
    """piq's weight-free metric functions without piq/__init__.py; None if piq is absent."""
    spec = importlib.util.find_spec("piq")
    if spec is None or spec.submodule_search_locations is None:
        return None
    package = types.ModuleType("piq")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("piq", package)
    names = ("haarpsi", "mdsi", "vsi", "srsim", "dss")
    return types.SimpleNamespace(**{name: getattr(importlib.import_module(f"piq.{name}"), name) for name in names})


def implementations(piq: types.SimpleNamespace | None) -> dict[str, dict[str, Callable]]:
    """metric -> library -> f(test, reference) -> (N,)."""
    table: dict[str, dict[str, Callable]] = {
        "haarpsi": {"reliqa": lambda t, r: haarpsi(t, r)},
        "mdsi": {"reliqa": lambda t, r: mdsi(t, r)},
        "vsi": {"reliqa": lambda t, r: vsi(t, r)},
        "vsi_piq": {"reliqa": lambda t, r: vsi(t, r, variant="piq")},
        "srsim": {"reliqa": lambda t, r: srsim(t, r)},
        "dss": {"reliqa": lambda t, r: dss(t, r)},
    }
    if piq is not None:
        for metric in ("haarpsi", "mdsi", "srsim", "dss"):
            table[metric]["piq"] = lambda t, r, f=getattr(piq, metric): f(t, r, reduction="none")
        table["vsi_piq"]["piq"] = lambda t, r: piq.vsi(t, r, reduction="none")
        # piq's VSI beside our VSI.m reading too: the nearest piq has (values differ by < 1e-2).
        table["vsi"]["piq"] = table["vsi_piq"]["piq"]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json-out", help="also write the JSON result to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    piq = load_piq()
    table = implementations(piq)
    results = []
    with torch.inference_mode():
        for batch in args.batch:
            test, reference = make_inputs(batch)
            for metric in METRICS:
                functions = table[metric]
                ours = functions["reliqa"](test, reference)
                difference = 0.0
                if "piq" in functions:
                    theirs = torch.cat([functions["piq"](test[i:i + 1], reference[i:i + 1]) for i in range(batch)])
                    difference = float((ours - theirs).abs().max())
                    if difference > LOOSER.get(metric, TOLERANCE):
                        raise SystemExit(f"{metric}: piq differs from reliqa by {difference:.2e}")
                seconds = time_round_robin(functions, test, reference, args.repeats)
                row = {"metric": metric, "batch": batch, "max_abs_diff_vs_piq": difference}
                for library, value in seconds.items():
                    row[f"{library}_ms_per_image"] = 1000 * value / batch
                if "piq" in seconds:
                    row["piq_over_reliqa"] = seconds["piq"] / seconds["reliqa"]
                results.append(row)
                print(json.dumps(row), flush=True)
    print()
    print("| metric | batch | reliqa ms/image | piq ms/image | piq / reliqa | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in results:
        piq_ms = row.get("piq_ms_per_image")
        print(f"| {row['metric']} | {row['batch']} | {row['reliqa_ms_per_image']:.1f} | "
              + (f"{piq_ms:.1f} | {row['piq_over_reliqa']:.2f}x" if piq_ms is not None else "— | —")
              + f" | {row['max_abs_diff_vs_piq']:.1e} |")
    payload = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "threads": args.threads, "size": [HEIGHT, WIDTH], "repeats": args.repeats,
        "torch": torch.__version__, "piq": "0.8.0 (loaded without __init__)" if piq is not None else "not installed",
        "command": "python " + " ".join(sys.argv),
        "results": results,
    }
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(payload, handle, indent=2)


if __name__ == "__main__":
    main()
