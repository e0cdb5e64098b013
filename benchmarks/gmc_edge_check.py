"""GMC at the edges of a 0–100 scale: reliqa's grouped sums against the literal pair sum.

Data shaped like issue 11's report (11,125 images, MOS 2–96 in integer steps so many ties, std
0–23.5 with two zeros — one at the top, one at the bottom — and three top images with large
regulator weights); query points at the edges of the scale, among them (95.9946, 41.4962).

    python benchmarks/gmc_edge_check.py            # grouped only (~10 s)
    python benchmarks/gmc_edge_check.py --literal  # also the literal float64 pair sum (~1 min)

The literal sum takes σ exactly (a σ = 0 image weighs exp(−(Qs − y)²/0) = 0 unless Qs is its
MOS, where both sides take the limit 1) and the same Qd-term floor for two σ = 0 images.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats

from reliqa.surfaces.gmc import SIGMA_FLOOR_FRACTION, gmc_values, regulator_weights


def literal_gmc(
    pred: np.ndarray,
    mos: np.ndarray,
    sigma: np.ndarray,
    weights: np.ndarray,
    points: np.ndarray,
    chunk: int = 1500,
) -> np.ndarray:
    """(K, 3) PLCC, SRCC, KRCC from every unordered pair, in float64 log-space, in row chunks."""
    size = mos.size
    rank_s = stats.rankdata(pred, method="dense")
    rank_y = stats.rankdata(mos, method="dense")
    pair_floor = 2 * (SIGMA_FLOOR_FRACTION * np.ptp(mos)) ** 2
    rows = []
    for qs, qd in points:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_u = np.log(weights) - (qs - mos) ** 2 / (2 * sigma**2)
        log_u = np.where(np.isnan(log_u), np.log(weights), log_u)  # σ = 0 at its own MOS
        sums = np.zeros(8)
        shift = -np.inf
        for start in range(0, size, chunk):
            i = np.arange(start, min(size, start + chunk))[:, None]
            j = np.arange(size)[None, :]
            b = mos[i] - mos[j]
            a = pred[i] - pred[j]
            rank_a = rank_s[i] - rank_s[j]
            rank_b = rank_y[i] - rank_y[j]
            coupling = np.maximum(sigma[i] ** 2 + sigma[j] ** 2, pair_floor)
            log_w = log_u[i] + log_u[j] - (qd - np.abs(b)) ** 2 / (2 * coupling)
            log_w = np.where(j > i, log_w, -np.inf)
            block_max = log_w.max()
            if block_max > shift:  # rescale what was summed so far (streaming log-sum-exp)
                sums *= np.exp(shift - block_max) if np.isfinite(shift) else 0.0
                shift = block_max
            w = np.exp(log_w - shift)
            sums += [
                w.sum(),
                (w * a * b).sum(),
                (w * a * a).sum(),
                (w * b * b).sum(),
                (w * rank_a * rank_b).sum(),
                (w * rank_a * rank_a).sum(),
                (w * rank_b * rank_b).sum(),
                (w * np.sign(a) * np.sign(b)).sum(),
            ]
        total, ab, aa, bb, rank_ab, rank_aa, rank_bb, concordant = sums
        rows.append([ab / np.sqrt(aa * bb), rank_ab / np.sqrt(rank_aa * rank_bb), concordant / total])
    return np.array(rows)


def issue_shaped_data(size: int = 11_125, seed: int = 11) -> tuple[np.ndarray, ...]:
    """(pred, mos, std, weights), each (size,)."""
    rng = np.random.default_rng(seed)
    mos = np.clip(np.round(rng.beta(2.2, 1.6, size) * 94 + 2), 2, 96)
    mos[:4] = [96.0, 96.0, 95.0, 2.0]
    std = np.clip(rng.normal(12, 5, size) * np.sqrt(mos * (100 - mos)) / 50, 0.3, 23.5)
    std[0] = std[3] = 0.0
    pred = mos + rng.normal(0, 12, size)
    weights = regulator_weights(mos, std)
    weights[:3] *= 40.0
    return pred, mos, std, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--literal", action="store_true", help="also sum every pair literally")
    args = parser.parse_args()
    pred, mos, std, weights = issue_shaped_data()
    points = np.array(
        [[95.9946, 41.4962], [2.003, 60.0], [50.0, 20.0], [95.5, 0.0], [96.0, 0.0]]
    )
    start = time.perf_counter()
    grouped = gmc_values(pred, mos, std, weights, points)
    print(f"grouped ({time.perf_counter() - start:.2f} s), rows = points, columns PLCC SRCC KRCC")
    print(np.array2string(grouped, precision=5))
    if args.literal:
        start = time.perf_counter()
        literal = literal_gmc(pred, mos, std, weights, points)
        print(f"literal ({time.perf_counter() - start:.2f} s)")
        print(np.array2string(literal, precision=5))
        print(f"max |grouped - literal| = {np.abs(grouped - literal).max():.3g}")


if __name__ == "__main__":
    main()
