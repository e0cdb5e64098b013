"""GMC speed and exactness on the KADID-10k reference (and scaling on synthetic data).

For each metric of ../shared/data/gmc_reference/kadid10k: the PLCC/SRCC/KRCC-GMC at the 100
reference query points (reliqa.surfaces.gmc.gmc_values, all three correlations in one pass),
the time it takes, and the largest absolute deviation from expected_<metric>.csv. For
comparison, the literal pairwise formula in numpy (every one of the 51 M image pairs, the way
the authors' code does it) is timed on a few points. ``--scaling`` times MOS without ties
(every image its own group, the worst case: O(N²) per point) for a few N.

    python benchmarks/gmc_speed.py --threads 2 --json runs/gmc_speed.json
    python benchmarks/gmc_speed.py --device cuda --scaling 2000,5000,10125

Timings are wall-clock and depend on what else runs on the machine; the JSON records the
machine, the thread count and the load average at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from reliqa.surfaces.gmc import fit_surface, gmc_values, regulator_weights

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gmc_reference" / "kadid10k"
)


def literal_numpy(
    pred: np.ndarray, mos: np.ndarray, std: np.ndarray, weights: np.ndarray, point: np.ndarray
) -> np.ndarray:
    """PLCC, SRCC, KRCC-GMC at one point by the definition: a row of pairs at a time."""
    rank_s, rank_y = stats.rankdata(pred, method="dense"), stats.rankdata(mos, method="dense")
    qs, qd = point
    with np.errstate(
        divide="ignore", invalid="ignore"
    ):  # σ = 0 images: x/0 as in the authors' code
        u = weights * np.exp(-((qs - mos) ** 2) / (2 * std**2))
        sums = np.zeros(8)
        for i in range(mos.size - 1):
            j = slice(i + 1, None)
            a, b = pred[i] - pred[j], mos[i] - mos[j]
            ra, rb = rank_s[i] - rank_s[j], rank_y[i] - rank_y[j]
            w = u[i] * u[j] * np.exp(-((qd - np.abs(b)) ** 2) / (2 * (std[i] ** 2 + std[j] ** 2)))
            w = np.nan_to_num(w)
            sums += [
                w.sum(),
                w @ (a * b),
                w @ (a * a),
                w @ (b * b),
                w @ (ra * rb),
                w @ (ra * ra),
                w @ (rb * rb),
                w @ (np.sign(a) * np.sign(b)),
            ]
    return np.array(
        [
            sums[1] / np.sqrt(sums[2] * sums[3]),
            sums[4] / np.sqrt(sums[5] * sums[6]),
            sums[7] / sums[0],
        ]
    )


def timed(function, repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        value = function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--metrics", default="psnr,ssim,ms_ssim")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per measurement; the best is kept"
    )
    parser.add_argument(
        "--literal-points",
        type=int,
        default=1,
        help="points timed with the literal formula (0: skip)",
    )
    parser.add_argument(
        "--scaling", default="", help="comma-separated N for the no-ties scaling run"
    )
    parser.add_argument(
        "--synthetic-kadid",
        action="store_true",
        help="also time generated data with KADID-like ties",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    report: dict = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "torch_threads": args.threads,
        "load_average_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "metrics": {},
        "scaling": [],
    }
    print(
        f"{report['machine']}; device {report['device']}; torch threads {args.threads}; "
        f"load average {report['load_average_at_start'][0]:.1f}"
    )
    if args.data.is_dir():
        meta = np.genfromtxt(
            args.data / "meta_info.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
        )
        weights = regulator_weights(meta["mos"], meta["std"])
        print(
            f"{'metric':8s} {'images':>7s} {'groups':>7s} {'points':>6s} {'total s':>8s} {'ms/point':>9s} "
            f"{'max |dev|':>10s} {'surface s':>10s} {'literal s/point':>16s}"
        )
        for metric in [name for name in args.metrics.split(",") if name]:
            predictions = np.loadtxt(args.data / f"pred_{metric}.csv", delimiter=",", skiprows=1)
            expected = np.loadtxt(args.data / f"expected_{metric}.csv", delimiter=",", skiprows=1)
            pred, mos = predictions[:, 0], predictions[:, 1]
            seconds, values = timed(
                lambda: gmc_values(
                    pred, mos, meta["std"], weights, expected[:, :2], device=args.device
                ),
                args.repeat,
            )
            deviation = float(np.abs(values - expected[:, 2:]).max())
            surface_seconds, _ = timed(
                lambda: [fit_surface(expected[:, :2], values[:, k]) for k in range(3)], args.repeat
            )
            groups = np.unique(np.column_stack([mos, meta["std"], weights]), axis=0).shape[0]
            literal = None
            if args.literal_points:
                start = time.perf_counter()
                for point in expected[: args.literal_points, :2]:
                    literal_numpy(pred, mos, meta["std"], weights, point)
                literal = (time.perf_counter() - start) / args.literal_points
            row = {
                "images": int(mos.size),
                "groups": int(groups),
                "points": int(expected.shape[0]),
                "seconds": seconds,
                "ms_per_point": 1000 * seconds / expected.shape[0],
                "max_abs_deviation": deviation,
                "surface_fit_seconds_3": surface_seconds,
                "literal_numpy_seconds_per_point_3_correlations": literal,
            }
            report["metrics"][metric] = row
            literal_text = "—" if literal is None else f"{literal:.2f}"
            print(
                f"{metric:8s} {mos.size:7d} {groups:7d} {expected.shape[0]:6d} {seconds:8.2f} "
                f"{row['ms_per_point']:9.1f} {deviation:10.1e} {surface_seconds:10.2f} {literal_text:>16s}"
            )
    else:
        print(f"no reference data at {args.data}: skipping the KADID-10k rows")

    sizes = [int(n) for n in args.scaling.split(",") if n]
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(1, 5, 100), rng.uniform(0, 4, 100)])
    if args.synthetic_kadid:
        # KADID-10k-like ties without its data: 30 ratings on a 1..5 scale per image, so MOS and
        # std are functions of a rating histogram (MOS to 2 decimals, std to 3, as published).
        quality = rng.uniform(1, 5, 10125)
        ratings = np.clip(np.round(quality[:, None] + rng.normal(0, 0.8, (quality.size, 30))), 1, 5)
        mos = np.round(ratings.mean(axis=1), 2)
        std = np.round(ratings.std(axis=1), 3)
        pred = mos + rng.normal(0, 0.7, mos.size)
        weights = regulator_weights(mos, std)
        seconds, values = timed(
            lambda: gmc_values(pred, mos, std, weights, points, device=args.device), args.repeat
        )
        groups = np.unique(np.column_stack([mos, std, weights]), axis=0).shape[0]
        row = {"images": mos.size, "groups": int(groups), "seconds": seconds}
        if args.device != "cpu":
            row["max_abs_difference_to_cpu"] = float(
                np.abs(values - gmc_values(pred, mos, std, weights, points)).max()
            )
        report["synthetic_kadid"] = row
        print(f"\nsynthetic KADID-like ties, 100 points: {row}")
    if sizes:
        print(
            f"\nno ties (every image its own group), 100 points:\n"
            f"{'N':>7s} {'pairs':>12s} {'total s':>8s} {'ns/pair/point':>14s} {'|GPU−CPU|':>10s}"
        )
    for size in sizes:
        mos = rng.uniform(1, 5, size)
        pred = mos + rng.normal(0, 0.7, size)
        std = rng.uniform(0.3, 1.2, size)
        seconds, values = timed(
            lambda: gmc_values(pred, mos, std, np.ones(size), points, device=args.device),
            args.repeat,
        )
        pairs = size * (size - 1) // 2
        row = {"images": size, "pairs": pairs, "seconds": seconds}
        difference = ""
        if args.device != "cpu" and size <= 4000:
            row["max_abs_difference_to_cpu"] = float(
                np.abs(values - gmc_values(pred, mos, std, np.ones(size), points)).max()
            )
            difference = f"{row['max_abs_difference_to_cpu']:.1e}"
        report["scaling"].append(row)
        print(
            f"{size:7d} {pairs:12d} {seconds:8.2f} {1e9 * seconds / (pairs * 100):14.2f} {difference:>10s}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
