"""Every quality figure reported for ``hirqa`` / ``hirqa-s`` (model cards, the README).

Two parts, each a pure function of the shipped weights (or given checkpoints) and the data:

1. ``synthetic``: the HELD-OUT pristine photos (never trained on; the engine's fixed split), each
   downscaled to a longer side of 512 and centre-cropped to 384×384. For every distortion type
   of the catalogue alone (full-frame mask), five versions at levels 0.2, 0.4, 0.6, 0.8, 1.0
   plus the pristine crop (level 0). Reported per type: SRCC of the score against −level
   pooled over all photos (``srcc_pooled``: cross-content) and the mean per-photo SRCC
   (``srcc_within``).
2. ``biq2021``: ../shared/data/biq2021_test (2,000 photos with MOS; EVALUATION ONLY) through
   ``reliqa.evaluation.bench.run_benchmark`` for NIQE and the variance of the Laplacian, and for
   the models named with ``--biq-models`` (pre-registered candidates only, docs/nr.md): SRCC,
   PLCC, KRCC with bootstrap CIs and the GMC surface.

    python benchmarks/nr_quality.py        # both parts, shipped weights; updates the cards
    python benchmarks/nr_quality.py --part synthetic \
        --checkpoint hirqa=runs/x/checkpoints/best.safetensors
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch.nn import functional as F

from reliqa.checks import resolve_device
from reliqa.distortions.catalogue import DISTORTIONS
from reliqa.distortions.compose import apply_plan
from reliqa.distortions.dataset import split_images
from reliqa.distortions.plan import sample_plan
from reliqa.io import load_image
from reliqa.models import create_model
from reliqa.models.hirqa import HIRQA_CONFIGS, PRETRAINED_CONFIG, HiRQA, PretrainedHiRQA
from reliqa.training.checkpoint import module_state_from_checkpoint

MODELS = ("hirqa", "hirqa-s")
BASELINES = ("niqe", "laplacian_var")
LEVELS = (0.2, 0.4, 0.6, 0.8, 1.0)
CROP = 384
RESULTS = Path(__file__).resolve().parent / "results"
BENCH_DIR = Path(__file__).resolve().parents[1] / "runs" / "biq2021_nr"
"""Scores, GMC surfaces and plots of the BIQ2021 part (git-ignored: the HTML surfaces are large)."""


def held_out_crops(root: str) -> torch.Tensor:
    """(P, 3, 384, 384): each held-out photo downscaled to a longer side of 512, centre crop."""
    crops = []
    for path in split_images(root, "held_out"):
        image = load_image(path)
        height, width = image.shape[-2:]
        scale = 512 / max(height, width)
        size = (max(CROP, round(height * scale)), max(CROP, round(width * scale)))
        image = F.interpolate(
            image, size=size, mode="bilinear", antialias=True, align_corners=False
        )
        top, left = (image.shape[-2] - CROP) // 2, (image.shape[-1] - CROP) // 2
        crops.append(image[0, :, top : top + CROP, left : left + CROP].clamp(0, 1))
    return torch.stack(crops)


def load_network(
    name: str, checkpoint: str | None, device: torch.device
) -> HiRQA | PretrainedHiRQA:
    if checkpoint is None:
        return create_model(name, device=device)  # type: ignore[return-value]
    network: HiRQA | PretrainedHiRQA = (
        PretrainedHiRQA(**PRETRAINED_CONFIG)  # type: ignore[arg-type]
        if name == "hirqa"
        else HiRQA(**HIRQA_CONFIGS[name])  # type: ignore[arg-type]
    )
    network.load_state_dict(module_state_from_checkpoint(checkpoint, "model"))
    return network.eval().to(device)


def _srcc(scores: np.ndarray, levels: np.ndarray) -> float:
    return float(spearmanr(scores, -levels).statistic)


def synthetic_part(
    networks: dict[str, HiRQA | PretrainedHiRQA], root: str, device: torch.device,
    max_photos: int | None = None,
) -> dict[str, Any]:
    references = held_out_crops(root)[:max_photos].to(device)
    count = references.shape[0]
    per_model: dict[str, dict[str, dict[str, float]]] = {name: {} for name in networks}
    for type_index, type_name in enumerate(DISTORTIONS):
        plan = sample_plan(
            count,
            CROP,
            CROP,
            mix=[type_name],
            intensity_range=(1.0, 1.0),
            mask_families=["full"],
            generator=1000 + type_index,
            device=device,
        )
        versions = [references]
        for level in LEVELS:
            stream = torch.Generator().manual_seed(2000 + type_index)  # same noise at every level
            scaled = plan.scaled(torch.full((count,), level))
            versions.append(apply_plan(references, scaled, generator=stream))
        images = torch.stack(versions, dim=1)  # (P, 6, 3, C, C)
        levels = np.tile(np.array((0.0, *LEVELS)), (count, 1))
        for name, network in networks.items():
            scores = (
                torch.cat(
                    [
                        network.score(chunk.to(device)).cpu()
                        for chunk in images.flatten(0, 1).split(32)
                    ]
                )
                .numpy()
                .reshape(count, -1)
            )
            within = [_srcc(scores[p], levels[p]) for p in range(count)]
            per_model[name][type_name] = {
                "srcc_pooled": round(_srcc(scores.ravel(), levels.ravel()), 4),
                "srcc_within": round(float(np.nanmean(within)), 4),
            }
    summary = {
        name: {
            "mean_srcc_pooled": round(
                float(np.mean([v["srcc_pooled"] for v in types.values()])), 4
            ),
            "mean_srcc_within": round(
                float(np.mean([v["srcc_within"] for v in types.values()])), 4
            ),
        }
        for name, types in per_model.items()
    }
    return {
        "photos": count,
        "levels": [0.0, *LEVELS],
        "crop": CROP,
        "per_type": per_model,
        "summary": summary,
    }


def biq_part(
    root: str, models: list[str], device: str, baselines: tuple[str, ...] = BASELINES
) -> dict[str, Any]:
    from reliqa.evaluation.bench import run_benchmark
    from reliqa.evaluation.dataset_layouts import load_dataset

    dataset = load_dataset(root)
    result = run_benchmark(
        dataset,
        [*models, *baselines],
        BENCH_DIR,
        device=device,
        batch_size=16,
        n_boot=1000,
        seed=0,
    )
    table: dict[str, dict[str, Any]] = {}
    for name, summary in result.metrics.items():
        correlations = summary.correlations
        table[name] = {
            key: {
                "value": round(correlations[key]["value"], 4),
                "ci": [round(v, 4) for v in correlations[key]["ci"]],
            }
            for key in ("SRCC", "PLCC", "KRCC", "PLCC_logistic")
            if key in correlations
        }
        table[name]["gmc_average_height"] = {
            k: round(v, 4) for k, v in summary.gmc_average_height.items()
        }
        table[name]["n"] = summary.count
    return {"dataset": str(root), "items": result.items, "failed": result.failed, "metrics": table}


def update_cards(results: dict[str, Any]) -> None:
    """Write the measured results into the shipped model cards (the sha256 is unchanged)."""
    from reliqa.models.weights import WEIGHTS_DIR

    for name in MODELS:
        card_path = WEIGHTS_DIR / f"{name}.json"
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text())
        measured = card.setdefault("results", {})
        if "synthetic" in results and name in results["synthetic"]["summary"]:
            measured["synthetic_held_out"] = {
                **results["synthetic"]["summary"][name],
                "per_type": results["synthetic"]["per_type"][name],
                "command": "python benchmarks/nr_quality.py",
            }
        if "biq2021" in results and name in results["biq2021"]["metrics"]:
            measured["biq2021_test"] = {
                name: results["biq2021"]["metrics"][name],
                "command": "python benchmarks/nr_quality.py",
                "baselines": {
                    k: v for k, v in results["biq2021"]["metrics"].items() if k not in MODELS
                },
            }
        card_path.write_text(json.dumps(card, indent=2) + "\n")


def markdown(results: dict[str, Any]) -> str:
    """The README tables of the results (BIQ2021 and the synthetic held-out summary)."""
    lines = []
    if "biq2021" in results:
        lines += [
            "| BIQ2021 test (2,000 photos) | SRCC [95% CI] | PLCC [95% CI] | KRCC [95% CI] "
            + "| GMC avg. height (SRCC) |",
            "|---|---|---|---|---|",
        ]
        for name, m in results["biq2021"]["metrics"].items():
            cells = [
                f"{m[k]['value']:.3f} [{m[k]['ci'][0]:.3f}, {m[k]['ci'][1]:.3f}]"
                for k in ("SRCC", "PLCC", "KRCC")
            ]
            lines.append(
                f"| {name} | {' | '.join(cells)} | {m['gmc_average_height']['SRCC']:.3f} |"
            )
        lines.append("")
    if "synthetic" in results:
        synthetic = results["synthetic"]
        types = len(next(iter(synthetic["per_type"].values())))
        lines += [
            f"| synthetic held-out ({synthetic['photos']} photos × {types} types × 6 levels) "
            + "| mean SRCC pooled (cross-content) | mean SRCC within photo |",
            "|---|---|---|",
        ]
        for name, summary in synthetic["summary"].items():
            lines.append(
                f"| {name} | {summary['mean_srcc_pooled']:.3f} "
                + f"| {summary['mean_srcc_within']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "synthetic", "biq2021"), default="all")
    parser.add_argument("--pristine", default="../shared/data/pristine")
    parser.add_argument("--biq", default="../shared/data/biq2021_test")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="Evaluate a training checkpoint instead of the shipped weights.",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "nr_quality.json")
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated models.")
    parser.add_argument(
        "--biq-models", default="",
        help="Models scored on BIQ2021 (comma-separated). Empty by default: a model's BIQ2021 "
        "number is one of its design's four pre-registered comparisons (docs/nr.md), never a "
        "side effect of a benchmark run.",
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="BIQ2021 without NIQE / laplacian_var."
    )
    parser.add_argument("--max-photos", type=int, help="Synthetic part on the first N photos.")
    parser.add_argument(
        "--no-cards", action="store_true", help="Do not write results into the model cards."
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    checkpoints = dict(item.split("=", 1) for item in args.checkpoint)
    models = args.models.split(",")
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    if args.part in ("all", "synthetic"):
        networks = {
            name: load_network(name, checkpoints.get(name), device) for name in models
        }
        results["synthetic"] = synthetic_part(networks, args.pristine, device, args.max_photos)
        print(json.dumps(results["synthetic"]["summary"]), flush=True)
    if args.part in ("all", "biq2021"):
        biq_models = [name for name in args.biq_models.split(",") if name]
        results["biq2021"] = biq_part(
            args.biq, biq_models, args.device, () if args.no_baselines else BASELINES
        )
        print(
            json.dumps({k: v["SRCC"] for k, v in results["biq2021"]["metrics"].items()}), flush=True
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    if not args.no_cards and not checkpoints:
        update_cards(results)


if __name__ == "__main__":
    main()
