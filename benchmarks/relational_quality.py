"""Quality of the relational model: every figure in the README and the card.

    python benchmarks/relational_quality.py                          # the shipped weights
    python benchmarks/relational_quality.py --weights shipped-plus   # relational-plus
    python benchmarks/relational_quality.py --weights runs/x/relational.safetensors --out q.json

Three parts, all on data no training decision saw:

1. Maps, on the EVALUATION half of the held-out pristine photos
   (``reliqa.training.relational.held_out_halves``) with engine triplets (random mixes and
   masks, p_swap 0.25, a fixed seed), per attribute:
   - detection AUC: does the sample carry a distortion of this attribute? predictor = mean of
     |2(m − 0.5)| over the image;
   - direction accuracy (where present): sign of the mean of 2(m − 0.5) over the true region;
   - intensity MAE (where present): mean |2|m − 0.5| − 2|t − 0.5|| over the true region;
   - localisation IoU (where present): {|m − 0.5| > 0.05} against {|t − 0.5| > 0.05}.
2. Ordinal sets from the same photos (one mix, K rising levels): Spearman correlation of the
   score with the level inside each set (averaged over sets, with its standard error and per
   distortion type), side by side with the naive map score −mean|2(m − 0.5)| (monotone maps,
   but not anti-symmetric) and classical metrics (each in its own direction). The same pairs
   pooled ACROSS contents and types: Spearman correlation of each measure with the consensus
   of the scorer's teachers (mean percentile of their values), always leaving the
   measure itself out of the consensus, so a teacher is not judged by itself (``--teachers``,
   default the scorer's current ones, ``scorer_cache.TEACHERS``; each is also reported).
3. ../shared/data/tid2013_calib: five real distorted pairs with human MOS (evaluation only):
   SRCC of each measure with MOS.

Prints a table and one JSON object (``--out`` writes it). Runs on CPU in a few minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata, spearmanr

from reliqa.attributes import ACTIVE_THRESHOLD, ATTRIBUTES, NEUTRAL
from reliqa.distortions import distort, ordinal_set
from reliqa.exceptions import UnknownNameError
from reliqa.io import load_image
from reliqa.metrics import create_metric
from reliqa.models import create_model
from reliqa.models.relational import RelationalModel
from reliqa.training.relational import held_out_halves
from reliqa.training.scorer_cache import TEACHERS, teacher_names
from reliqa.verified import load_verified

CLASSICAL = ("psnr", "ssim", "ms_ssim", "gmsd", "fsim", "vifp")
TID_MOS = {"I03": 0.70000, "I04": 3.92683, "I06": 3.88889, "I08": 3.28125, "I19": 1.65789}


def load_model(weights: str) -> RelationalModel:
    """'shipped' / 'shipped-plus' (the packaged relational / relational-plus) or a state dict."""
    if weights in ("shipped", "shipped-plus"):
        name = "relational" if weights == "shipped" else "relational-plus"
        return create_model(name)  # type: ignore[return-value]
    return RelationalModel.from_state_dict(load_verified(weights, None)[0]).eval()


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """(1, 3, H, W) → (1, 3, min(H, size), min(W, size)), multiples of 16 (the engine's JPEG grid)."""
    height, width = image.shape[-2:]
    h, w = min(height, size) // 16 * 16, min(width, size) // 16 * 16
    top, left = (height - h) // 2, (width - w) // 2
    return image[..., top : top + h, left : left + w]


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U / (n⁺ n⁻)), ties counted half."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([positive, negative]))
    u = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u / (len(positive) * len(negative)))


@torch.inference_mode()
def evaluate_maps(
    model: RelationalModel, photos: list[Path], per_photo: int, crop: int, seed: int
) -> dict[str, dict[str, float]]:
    predictors: list[list[float]] = [[] for _ in ATTRIBUTES]
    present: list[list[bool]] = [[] for _ in ATTRIBUTES]
    directions: list[list[bool]] = [[] for _ in ATTRIBUTES]
    errors: list[list[float]] = [[] for _ in ATTRIBUTES]
    ious: list[list[float]] = [[] for _ in ATTRIBUTES]
    generator = torch.Generator().manual_seed(seed)
    for path in photos:
        reference = center_crop(load_image(path), crop).expand(per_photo, -1, -1, -1)
        batch = distort(reference, p_swap=0.25, generator=generator)
        maps = model(batch.test, batch.reference).maps
        signed, truth = 2 * (maps - NEUTRAL), 2 * (batch.truth - NEUTRAL)
        for c in range(len(ATTRIBUTES)):
            for n in range(per_photo):
                region = truth[n, c].abs() > 2 * ACTIVE_THRESHOLD
                is_present = bool(region.any())
                predictors[c].append(float(signed[n, c].abs().mean()))
                present[c].append(is_present)
                if not is_present:
                    continue
                true_sign = float(truth[n, c][region].mean()) > 0
                directions[c].append((float(signed[n, c][region].mean()) > 0) == true_sign)
                errors[c].append(
                    float((signed[n, c].abs() - truth[n, c].abs())[region].abs().mean())
                )
                predicted = signed[n, c].abs() > 2 * ACTIVE_THRESHOLD
                ious[c].append(float((predicted & region).sum() / (predicted | region).sum()))
    result: dict[str, dict[str, float]] = {}
    for c, name in enumerate(ATTRIBUTES):
        values, labels = np.array(predictors[c]), np.array(present[c])
        result[name] = {
            "samples_with": int(labels.sum()),
            "detection_auc": auc(values[labels], values[~labels]),
            "direction_accuracy": float(np.mean(directions[c])) if directions[c] else float("nan"),
            "intensity_mae": float(np.mean(errors[c])) if errors[c] else float("nan"),
            "localisation_iou": float(np.mean(ious[c])) if ious[c] else float("nan"),
        }
    return result


def classical_metrics(teachers: tuple[str, ...] = TEACHERS) -> dict[str, torch.nn.Module]:
    """The classical metrics of the tables and the teachers of the consensus."""
    metrics = {}
    for name in (*CLASSICAL, *(t for t in teachers if t not in CLASSICAL)):
        try:
            metrics[name] = create_metric(name)
        except UnknownNameError:
            pass
    return metrics


def oriented(name: str, values: torch.Tensor, metrics: dict[str, torch.nn.Module]) -> torch.Tensor:
    """Values turned so that higher = better (for correlations)."""
    if name.startswith("relational") or metrics[name].info.higher_is_better:
        return values
    return -values


@torch.inference_mode()
def evaluate_ordinal(
    model: RelationalModel,
    photos: list[Path],
    sets_per_photo: int,
    levels: int,
    crop: int,
    seed: int,
    teachers: tuple[str, ...] = TEACHERS,
) -> dict[str, object]:
    """Mean SRCC of each measure with the level inside each set; for the relational score also
    its standard error over sets and the mean per distortion type present in the set's mix."""
    metrics = classical_metrics(teachers)
    names = ("relational", "relational_naive", *metrics)
    correlations: dict[str, list[float]] = {name: [] for name in names}
    pooled: dict[str, list[float]] = {name: [] for name in names}
    by_type: dict[str, list[float]] = {}
    generator = torch.Generator().manual_seed(seed)
    for path in photos:
        reference = center_crop(load_image(path), crop).expand(sets_per_photo, -1, -1, -1)
        sets = ordinal_set(reference, levels, generator=generator)
        flat = sets.versions.flatten(0, 1)
        repeated = reference[:, None].expand(-1, levels, -1, -1, -1).flatten(0, 1)
        output = model(flat, repeated)
        # The naive map score is even in the maps (any change counts as worse), so it can break
        # the score's anti-symmetry; it separates "maps not monotone" from "scorer misorders".
        values = {
            "relational": output.score,
            "relational_naive": -(2 * (output.maps - NEUTRAL)).abs().mean(dim=(1, 2, 3)),
        }
        for name, metric in metrics.items():
            values[name] = metric(flat, repeated)
        for name, scores in values.items():
            pooled[name].extend(oriented(name, scores.float(), metrics).tolist())
            table = oriented(name, scores.float(), metrics).view(sets_per_photo, levels).numpy()
            for row, level, mix in zip(table, sets.levels.numpy(), sets.distortions):
                rho = spearmanr(row, -level).statistic  # quality falls as the level rises
                correlations[name].append(0.0 if math.isnan(rho) else float(rho))
                if name == "relational":
                    for applied in mix:
                        by_type.setdefault(applied.type, []).append(correlations[name][-1])
    result: dict[str, object] = {name: float(np.mean(v)) for name, v in correlations.items()}
    result["relational_standard_error"] = float(
        np.std(correlations["relational"]) / math.sqrt(len(correlations["relational"]))
    )
    result["relational_by_type"] = {  # sets whose mix contains the type: (sets, mean SRCC)
        name: [len(v), float(np.mean(v))] for name, v in sorted(by_type.items())
    }
    result["pairs"] = len(pooled["relational"])
    result["teachers"] = list(teachers)
    result["srcc_with_teacher_consensus"] = consensus_agreement(pooled, teachers)
    return result


def consensus_agreement(
    pooled: dict[str, list[float]], teachers: tuple[str, ...] = TEACHERS
) -> dict[str, float]:
    """SRCC of each measure with the mean percentile of the teachers other than itself."""
    percentiles = {name: rankdata(pooled[name]) / len(pooled[name]) for name in teachers}
    agreement = {}
    for name, values in pooled.items():
        others = [percentiles[t] for t in percentiles if t != name]
        agreement[name] = float(spearmanr(values, np.mean(others, axis=0)).statistic)
    return agreement


@torch.inference_mode()
def evaluate_tid(
    model: RelationalModel, folder: Path, teachers: tuple[str, ...] = TEACHERS
) -> dict[str, object]:
    metrics = classical_metrics(teachers)
    names = sorted(TID_MOS)
    values: dict[str, list[float]] = {
        name: [] for name in ("relational", "relational_naive", *metrics)
    }
    for name in names:
        reference = load_image(folder / "ref" / f"{name}.bmp")
        test = load_image(next((folder / "dist").glob(f"{name}*")))
        output = model(test, reference)
        values["relational"].append(float(output.score))
        values["relational_naive"].append(-float((2 * (output.maps - NEUTRAL)).abs().mean()))
        for metric_name, metric in metrics.items():
            values[metric_name].append(
                float(oriented(metric_name, metric(test, reference), metrics))
            )
    mos = [TID_MOS[name] for name in names]
    return {
        "pairs": names,
        "mos": mos,
        "values_higher_is_better": values,
        "srcc": {name: float(spearmanr(v, mos).statistic) for name, v in values.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--weights", default="shipped",
        help="'shipped', 'shipped-plus' or a .safetensors state dict",
    )
    parser.add_argument("--data", default="../shared/data", help="the shared data folder")
    parser.add_argument("--per-photo", type=int, default=12, help="triplets per evaluation photo")
    parser.add_argument("--sets-per-photo", type=int, default=4)
    parser.add_argument("--levels", type=int, default=5, help="K of the ordinal sets")
    parser.add_argument("--crop", type=int, default=384)
    parser.add_argument(
        "--set-crop", type=int, default=256,
        help="side of the ordinal-set pairs (the consensus SRCC); default 256, the scorer's size",
    )
    parser.add_argument(
        "--deep-max-side", type=int, default=None,
        help="relational-plus: the longest side its deep-feature branch sees (default: the model's)",
    )
    parser.add_argument(
        "--ordinal-only", action="store_true",
        help="only the ordinal sets (the maps and TID2013 parts do not depend on the deep branch)",
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--teachers", default=",".join(TEACHERS), help="the consensus (comma-separated metrics)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    teachers = teacher_names(args.teachers.split(","))
    model = load_model(args.weights)
    if args.deep_max_side is not None:
        model.deep_max_side = args.deep_max_side
    _, photos = held_out_halves(data / "pristine")
    maps = {} if args.ordinal_only else evaluate_maps(
        model, photos, args.per_photo, args.crop, args.seed
    )
    ordinal = evaluate_ordinal(
        model, photos, args.sets_per_photo, args.levels, args.set_crop, args.seed + 1, teachers,
    )
    tid = {"srcc": {}} if args.ordinal_only else evaluate_tid(
        model, data / "tid2013_calib", teachers
    )
    result = {
        "benchmark": "relational_quality",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "weights": args.weights,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "evaluation_photos": [f"{p.parent.name}/{p.name}" for p in photos],
        "maps": maps,
        "ordinal_srcc": ordinal,
        "tid2013_calib": tid,
    }
    print(f"{'attribute':12s} {'n':>4s} {'AUC':>6s} {'dir':>6s} {'MAE':>6s} {'IoU':>6s}")
    for name, row in maps.items():
        print(
            f"{name:12s} {row['samples_with']:4d} {row['detection_auc']:6.3f} {row['direction_accuracy']:6.3f} "
            f"{row['intensity_mae']:6.3f} {row['localisation_iou']:6.3f}"
        )
    print(
        "ordinal-set SRCC (score vs intensity):",
        json.dumps({k: round(v, 3) for k, v in ordinal.items() if isinstance(v, float)}),
    )
    print(
        "SRCC with the teachers' consensus across contents and types (self left out):",
        json.dumps({k: round(v, 3) for k, v in ordinal["srcc_with_teacher_consensus"].items()}),
    )
    worst = sorted(ordinal["relational_by_type"].items(), key=lambda item: item[1][1])[:6]
    print("lowest relational SRCC by type (sets, SRCC):", json.dumps(dict(worst)))
    print(
        "tid2013_calib SRCC with MOS:", json.dumps({k: round(v, 3) for k, v in tid["srcc"].items()})
    )
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
