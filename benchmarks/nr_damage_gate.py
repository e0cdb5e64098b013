"""The damage gate, counted: per defect, how many clean photos score above their damaged copy.

The test (``tests/test_nr_damage_gate.py``) says pass or fail; this prints and records the
counts behind it — for shipped models by name and for photo-head runs (``--heads``, each head
on the ImageNet backbone, before it is shipped). Photos: the engine's held-out split at native
resolution, and scikit-image's four bundled photos. ``--students`` counts ``hirqa-s`` networks
of a distillation run (its ``best.safetensors`` or a step checkpoint).

    python benchmarks/nr_damage_gate.py --models hirqa hirqa-s \
        --out benchmarks/results/nr_damage_gate_2026-12-07.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import torch
from skimage import data

import reliqa
from reliqa.distortions.dataset import split_images
from reliqa.evaluation.damage_gate import REQUIRED_WIN_RATE, damage_gate
from reliqa.io import load_image
from reliqa.models.hirqa import HIRQA_CONFIGS, HiRQA
from reliqa.training.checkpoint import module_state_from_checkpoint
from reliqa.training.nr_photo_head import load_head_run
from reliqa.verified import load_verified

BUNDLED = ("astronaut", "coffee", "chelsea", "rocket")


def student(path: Path) -> HiRQA:
    """A ``hirqa-s`` network from a distillation run's state file or step checkpoint."""
    if path.parent.name == "checkpoints":
        state = module_state_from_checkpoint(path, "student")
    else:
        state, _ = load_verified(path, None)
    network = HiRQA(**HIRQA_CONFIGS["hirqa-s"])  # type: ignore[arg-type]
    network.load_state_dict(state)
    return network.eval()


def scorers(
    models: list[str], heads: list[Path], students: list[Path]
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    chosen: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    for name in models:
        chosen[name] = partial(reliqa.score, model=reliqa.create_model(name))
    for run in heads:
        model, _ = load_head_run(run)
        model.load_imagenet_backbone()
        chosen[str(run)] = model.score
    for path in students:
        chosen[str(path)] = student(path).score
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pristine", type=Path, default=Path("../shared/data/pristine"))
    parser.add_argument("--models", nargs="*", default=["hirqa", "hirqa-s"])
    parser.add_argument("--heads", nargs="*", type=Path, default=[])
    parser.add_argument("--students", nargs="*", type=Path, default=[])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    held_out = [(f"{p.parent.name}/{p.name}", load_image(p))
                for p in split_images(args.pristine, "held_out")]
    bundled = [(name, load_image(getattr(data, name)())) for name in BUNDLED]
    results = {}
    for name, score in scorers(args.models, args.heads, args.students).items():
        entry = {}
        for photos_name, photos in (("held_out", held_out), ("bundled", bundled)):
            result = damage_gate(score, photos)
            entry[photos_name] = {
                "photos": result.photos,
                "wins": result.wins,
                "failures": {k: v for k, v in result.failures.items() if v},
                "passed": result.passed(REQUIRED_WIN_RATE if photos_name == "held_out" else 1.0),
            }
        results[name] = entry
        print(name, json.dumps(entry), flush=True)
    record = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "required_win_rate": REQUIRED_WIN_RATE,
        "results": results,
        "command": "python benchmarks/nr_damage_gate.py --models " + " ".join(args.models)
        + (" --heads " + " ".join(map(str, args.heads)) if args.heads else "")
        + (" --students " + " ".join(map(str, args.students)) if args.students else ""),
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
