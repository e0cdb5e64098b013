"""Peak memory of `reliqa batch` on one large (reference, test) pair, at several sizes.

For each side length S (default 2048, 4096, 8192) the script writes an S×S pair (a bundled photo
upscaled, plus fine grain; the test adds noise and a brightness shift) as JPEG files, then runs
the real command in a fresh subprocess:

    reliqa batch --pairs pairs.csv --metrics psnr,hirqa-s --out results.csv --workers 0

(``--via compare`` runs ``reliqa compare --ref R --test T`` instead: the relational model with
its tiled inference) and reads that process's peak resident memory (``ru_maxrss`` of the child). A 256×256 run
first measures the fixed cost (interpreter, torch, weights); the table gives the peak and the
growth per megapixel above it. "Bounded" means the growth comes only from the full-resolution
tensors a pair needs anyway (two (1, 3, S, S) inputs and the (1, 9, S, S) maps, float32:
60 bytes per pixel, a few copies of each), not from the network's activations, which the
relational model's tiled inference keeps to one tile.

    python benchmarks/large_pair_memory.py                 # 2048 4096 8192, psnr + hirqa-s
    python benchmarks/large_pair_memory.py --sizes 8192 --metrics relational,psnr
    python benchmarks/large_pair_memory.py --via compare   # the relational model alone

Prints a Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

BASELINE_SIDE = 256


def make_pair(side: int, folder: Path) -> tuple[Path, Path]:
    from skimage import data

    base = Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.BICUBIC)
    rng = np.random.default_rng(side)
    reference = np.asarray(base, dtype=np.int16) + rng.integers(-6, 7, (side, side, 3), dtype=np.int16)
    test = reference + 12 + rng.integers(-20, 21, (side, side, 3), dtype=np.int16)
    paths = folder / f"ref_{side}.jpg", folder / f"test_{side}.jpg"
    for path, array in zip(paths, (reference, test)):
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path, quality=95)
    return paths


def run(side: int, metrics: str, device: str, folder: Path, via: str) -> dict:
    reference, test = make_pair(side, folder)
    reliqa = str(Path(sys.executable).with_name("reliqa"))
    if via == "compare":
        command = [reliqa, "compare", "--ref", str(reference), "--test", str(test), "--device", device, "--json"]
    else:
        pairs = folder / f"pairs_{side}.csv"
        pairs.write_text(f"reference,test\n{reference.name},{test.name}\n")
        out = folder / f"results_{side}.csv"
        command = [reliqa, "batch", "--pairs", str(pairs), "--metrics", metrics, "--out", str(out),
                   "--workers", "0", "--device", device, "--json"]
    # A fresh process per size: ru_maxrss of RUSAGE_CHILDREN is the largest child so far, and
    # sizes run in increasing order, so each reading is this run's own peak.
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if done.returncode != 0:
        raise SystemExit(f"reliqa {via} failed at {side}px ({done.returncode}): {done.stderr}")
    if via == "compare":
        scores = {"relational": json.loads(done.stdout)["score"]}
    else:
        with out.open(newline="") as handle:
            row = next(csv.DictReader(handle))
        scores = {k: v for k, v in row.items() if k not in ("image", "reference", "error")}
    return {"side": side, "pixels": side * side, "peak_rss_mb": peak_mb, "wall_seconds": wall, "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--metrics", default="psnr,hirqa-s")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--via", choices=("batch", "compare"), default="batch",
        help="batch: `reliqa batch --pairs` with --metrics; compare: `reliqa compare` (relational model)",
    )
    args = parser.parse_args()
    label = args.metrics if args.via == "batch" else "reliqa compare"
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        # A 256×256 run first gives the fixed cost (interpreter, torch, weights) to subtract.
        for side in [BASELINE_SIDE] + sorted(args.sizes):
            results.append(run(side, args.metrics, args.device, Path(scratch), args.via))
    baseline = results[0]
    print(f"| pair size ({label}, {args.device}) | peak RSS MB | above the 256×256 run, MB per megapixel | wall s |")
    print("|---|---|---|---|")
    for result in results:
        extra_mp = (result["pixels"] - baseline["pixels"]) / 1e6
        per_mp = (result["peak_rss_mb"] - baseline["peak_rss_mb"]) / extra_mp if extra_mp else float("nan")
        result["extra_mb_per_megapixel"] = per_mp
        print(f"| {result['side']}×{result['side']} | {result['peak_rss_mb']:.0f} | {per_mp:.1f} | {result['wall_seconds']:.1f} |")
    print(json.dumps({
        "benchmark": "large_pair_memory",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "metrics": label,
        "device": args.device,
        "results": results,
    }))


if __name__ == "__main__":
    main()
