"""BIQ2021 correlations of ``hirqa`` through cached backbone features (EVALUATION ONLY).

``hirqa``'s backbone is frozen, so the pooled features of the 2,000 BIQ2021 photos are the
same for every head: ``--extract`` computes them once (the slow part: one backbone pass per
photo, each scored exactly as :meth:`PretrainedHiRQA.score` does — whole, downscaled only
above ``max_side``), and scoring a shipped head is then instant. ``--check N`` verifies on N
photos that the cached path gives the shipped model's scores. The MOS is read only here, to
report correlations of the final weights; nothing is chosen on it.

    python benchmarks/nr_biq_cached.py --extract --features /work/nr_cache/biq2021_lite0.safetensors
    python benchmarks/nr_biq_cached.py --features /work/nr_cache/biq2021_lite0.safetensors \
        --check 40 --out benchmarks/results/nr_biq_hirqa.json
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from reliqa.evaluation.correlation import correlation_report
from reliqa.evaluation.gmc import gmc
from reliqa.evaluation.gmc_plot import plot_heatmap
from reliqa.io import load_image
from reliqa.models import create_model
from reliqa.models.nr import PretrainedHiRQA, fit_to_max_side


def read_mos(root: Path) -> tuple[list[str], np.ndarray]:
    with open(root / "Test (Images and MOS).csv", newline="") as handle:
        rows = [(row["Image Name"], float(row["MOS"])) for row in csv.DictReader(handle)]
    return [name for name, _ in rows], np.array([mos for _, mos in rows])


def feature_extractor(max_side: int) -> PretrainedHiRQA:
    """Every map and the statistics: one cache serves heads that read any feature subset."""
    model = PretrainedHiRQA(feature_set="all", statistics=True, max_side=max_side)
    model.load_imagenet_backbone()
    return model.eval()


def extract(root: Path, out: Path, model: PretrainedHiRQA, threads: int) -> None:
    torch.set_num_threads(threads)
    names, _ = read_mos(root)
    done: dict[str, torch.Tensor] = load_file(str(out)) if out.is_file() else {}
    start = time.monotonic()
    for index, name in enumerate(names):
        if name in done:
            continue
        image = fit_to_max_side(load_image(root / "Images" / name), model.max_side)
        with torch.inference_mode():
            done[name] = model.features(image)[0].clone()
        if (index + 1) % 100 == 0:
            save_file(done, str(out))  # resumable
            rate = len(done) / (time.monotonic() - start)
            print(f"{len(done)} photos, {rate:.2f}/s", flush=True)
    save_file(done, str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--biq", type=Path, default=Path("../shared/data/biq2021_test"))
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--extract", action="store_true")
    parser.add_argument("--check", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--plot", type=Path, help="Write the GMC heat map (PNG) here.")
    args = parser.parse_args()
    model: PretrainedHiRQA = create_model("hirqa")  # type: ignore[assignment]
    if args.extract:
        extract(args.biq, args.features, model, args.threads)
        return
    names, mos = read_mos(args.biq)
    cached = load_file(str(args.features))
    features = torch.stack([cached[name] for name in names])
    with torch.inference_mode():
        pred = torch.sigmoid(model.score_logits(model.embed_features(features))).numpy()
    check = []
    for name in names[: args.check]:
        direct = float(model.score(load_image(args.biq / "Images" / name))[0])
        check.append(abs(direct - float(pred[names.index(name)])))
    # the same statistics and settings as `reliqa bench` (benchmarks/nr_quality.py)
    report = correlation_report(pred, mos, n_boot=1000, seed=0)
    surface = gmc(pred, mos, std=None, samples=100, seed=0)
    if args.plot:
        plot_heatmap(surface, args.plot, title="hirqa on BIQ2021 (GMC, SRCC)")
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": "hirqa",
        "n": len(names),
        "check_max_abs_difference": max(check) if check else None,
        "check_photos": len(check),
        **{
            key: {"value": round(report[key]["value"], 4),
                  "ci": [round(v, 4) for v in report[key]["ci"]]}
            for key in ("SRCC", "PLCC", "KRCC", "PLCC_logistic")
        },
        "gmc_average_height": {k: round(float(v), 4) for k, v in surface.average_height.items()},
        "command": "python benchmarks/nr_biq_cached.py --features FEATURES --check "
        f"{args.check}",
    }
    print(json.dumps(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
