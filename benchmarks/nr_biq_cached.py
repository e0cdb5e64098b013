"""BIQ2021 correlations of ``hirqa`` through cached backbone features (EVALUATION ONLY).

``hirqa``'s backbone is frozen, so the pooled features of the 2,000 BIQ2021 photos are the
same for every head: ``--extract`` computes them once (the slow part: one backbone pass per
photo, each scored exactly as :meth:`PretrainedHiRQA.score` does — whole, downscaled only
above ``max_side``), and scoring a shipped head is then instant. The cache holds every map and the classical
statistics, so it serves heads that read any subset: ``--heads`` scores the pre-registered
candidate runs (and nothing else: the shipped model is not scored unless it is one of them);
``--baselines`` adds classical metrics scored on the photos; ``--gmc-figure`` draws every scored
entry's GMC surface; ``--check N`` verifies on N photos that the cached path gives the shipped
model's pixel-path scores (no MOS involved). The MOS is read only here:
the pre-registered final candidates (docs/nr.md) are compared once, by the rule written there
before this ran; nothing is trained, fitted or tuned on it.

    python benchmarks/nr_biq_cached.py --extract --features /work/nr_cache/biq2021_photos_v1.safetensors
    python benchmarks/nr_biq_cached.py --features /work/nr_cache/biq2021_photos_v1.safetensors \
        --heads RUN_DIR ... --check 40 --out benchmarks/results/nr_biq_candidates.json
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
from safetensors.torch import save_file

from reliqa.evaluation.correlation import correlation_report
from reliqa.io import load_image
from reliqa.metrics import create_metric
from reliqa.models import create_model
from reliqa.models.hirqa import PretrainedHiRQA, fit_to_max_side
from reliqa.surfaces.gmc import gmc
from reliqa.verified import load_verified


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
    done: dict[str, torch.Tensor] = load_verified(out, None, what="feature cache")[0] if out.is_file() else {}
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


def head_predictions(run: Path, features: torch.Tensor) -> np.ndarray:
    """Scores of a photo-head run (``reliqa train nr-photo-head``) from the cached features."""
    from reliqa.training.nr_photo_head import head_scores, input_features, load_head_run

    model, config = load_head_run(run)
    with torch.inference_mode():
        return head_scores(model, input_features(features, config.statistics))[0].numpy()


def report(pred: np.ndarray, mos: np.ndarray) -> dict[str, object]:
    # the same statistics and settings as `reliqa bench` (benchmarks/nr_quality.py)
    correlations = correlation_report(pred, mos, n_boot=1000, seed=0)
    surface = gmc(pred, mos, std=None, samples=100, seed=0)
    return {
        **{
            key: {"value": round(correlations[key]["value"], 4),
                  "ci": [round(v, 4) for v in correlations[key]["ci"]]}
            for key in ("SRCC", "PLCC", "KRCC", "PLCC_logistic")
        },
        "gmc_average_height": {k: round(float(v), 4) for k, v in surface.average_height.items()},
    }


def baseline_predictions(root: Path, names: list[str], metric: str) -> np.ndarray:
    """Scores of a classical no-reference metric on every photo, whole and at native resolution
    (as ``reliqa bench`` scores them), oriented so that higher = better."""
    scorer = create_metric(metric)
    sign = 1.0 if scorer.info.higher_is_better else -1.0
    scores = []
    with torch.inference_mode():
        for name in names:
            scores.append(sign * float(scorer(load_image(root / "Images" / name))[0]))
    return np.array(scores)


def gmc_figure(predictions: dict[str, np.ndarray], mos: np.ndarray, path: Path) -> None:
    """One GMC SRCC surface per scorer, side by side on one colour scale."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, len(predictions), figsize=(4.4 * len(predictions), 4.3),
                                dpi=120, squeeze=False, sharey=True, layout="constrained")
    for axis, (label, pred) in zip(axes[0], predictions.items()):
        result = gmc(pred, mos, std=None, samples=100, seed=0)
        surface = result.surfaces["SRCC"]
        image = axis.imshow(
            surface.values, origin="lower", aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0,
            extent=(surface.qs[0], surface.qs[-1], surface.qd[0], surface.qd[-1]),
        )
        height = float(result.average_height["SRCC"])
        axis.set_title(f"{label}\naverage height {height:.3f}", fontsize=10)
        axis.set_xlabel("quality scale position qs")
    axes[0][0].set_ylabel("granularity qd")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.85, label="SRCC")
    figure.suptitle("BIQ2021 test: where on the quality scale each scorer ranks well (GMC, SRCC)")
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--biq", type=Path, default=Path("../shared/data/biq2021_test"))
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--extract", action="store_true")
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--heads", type=Path, nargs="*", default=[],
                        help="Photo-head runs of PRE-REGISTERED candidates (docs/nr.md) to score.")
    parser.add_argument("--labels", nargs="*", default=[],
                        help="A label per --heads run (default: the run folder).")
    parser.add_argument("--baselines", nargs="*", default=[],
                        help="Classical NR metrics to score beside them (e.g. niqe laplacian_var).")
    parser.add_argument("--check", type=int, default=0,
                        help="Photos on which the shipped hirqa's pixel path is compared with the "
                        "cached path (no MOS is read for this).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--gmc-figure", type=Path,
                        help="Write the GMC SRCC surfaces of every scored entry side by side.")
    args = parser.parse_args()
    if args.extract:
        extract(args.biq, args.features, feature_extractor(args.max_side), args.threads)
        return
    torch.set_num_threads(args.threads)
    names, mos = read_mos(args.biq)
    cached = load_verified(args.features, None, what="feature cache")[0]
    features = torch.stack([cached[name] for name in names])
    labels = args.labels or [str(run) for run in args.heads]
    if len(labels) != len(args.heads):
        parser.error("give one --labels entry per --heads run")
    predictions = {label: head_predictions(run, features) for label, run in zip(labels, args.heads)}
    for metric in args.baselines:
        predictions[metric] = baseline_predictions(args.biq, names, metric)
    # The shipped model is scored only when named as a pre-registered candidate run: its BIQ2021
    # number is a comparison, and each design gets four (docs/nr.md).
    results = {label: report(pred, mos) for label, pred in predictions.items()}
    for label, result in results.items():
        print(label, result, flush=True)
    check = []
    if args.check:
        model: PretrainedHiRQA = create_model("hirqa")  # type: ignore[assignment]
        width = model.feature_mean.numel()
        for name in names[: args.check]:
            direct = float(model.score(load_image(args.biq / "Images" / name))[0])
            with torch.inference_mode():
                row = features[names.index(name), :width][None]
                via_cache = float(torch.sigmoid(model.score_logits(model.embed_features(row)))[0])
            check.append(abs(direct - via_cache))
    if args.gmc_figure:
        gmc_figure(predictions, mos, args.gmc_figure)
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "n": len(names),
        "check_max_abs_difference": max(check) if check else None,
        "check_photos": len(check),
        "results": results,
        "command": "python benchmarks/nr_biq_cached.py --features FEATURES"
        + (f" --check {args.check}" if args.check else "")
        + (" --heads " + " ".join(map(str, args.heads)) if args.heads else "")
        + (" --labels " + " ".join(args.labels) if args.labels else "")
        + (" --baselines " + " ".join(args.baselines) if args.baselines else "")
        + (f" --gmc-figure {args.gmc_figure}" if args.gmc_figure else ""),
    }
    print(json.dumps(record))
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
