"""Ship trained relational weights into the package with their model card.

    python benchmarks/ship_relational.py --weights runs/relational_gpu_stage2/relational.safetensors \
        --run runs/relational_gpu --run runs/relational_gpu_stage2 \
        --quality quality.json --speed speed_cpu.json --speed speed_gpu.json

Writes ``src/reliqa/weights/relational.safetensors`` and ``relational.json`` (the card: the
training commands and configs of every run in the chain, data, seeds, commit, measured results
and their commands, sha256) with :func:`reliqa.models.weights.save_with_card`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from reliqa.models.relational import SHIPPED_ARCHITECTURE
from reliqa.models.weights import load_verified, save_with_card
from reliqa.training.common import git_commit, read_metrics_log


def run_summary(run_dir: Path) -> dict[str, object]:
    """Config, command and the last validation records of one training run."""
    config = json.loads((run_dir / "config.json").read_text())
    records = read_metrics_log(run_dir / "metrics.jsonl")
    validation = [r for r in records if r["split"] == "val"]
    last_train = {
        phase: max((r["step"] for r in records if r.get("phase") == phase), default=0)
        for phase in ("maps", "scorer")
    }
    return {
        "command": f"reliqa train relational --config <config below> (run_dir {config['run_dir']})",
        "config": config,
        "last_logged_step": last_train,
        "best_validation": {
            "maps": min(
                (r for r in validation if r.get("phase") == "maps"),
                key=lambda r: r["map_loss"],
                default=None,
            ),
            "scorer": min(
                (r for r in validation if r.get("phase") == "scorer"),
                key=lambda r: r["score_loss"],
                default=None,
            ),
        },
        "wall_time_s": records[-1]["time_s"] if records else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--run", action="append", default=[], help="training run folders, in order")
    parser.add_argument(
        "--quality", required=True, help="JSON from benchmarks/relational_quality.py"
    )
    parser.add_argument(
        "--speed", action="append", default=[], help="JSON from benchmarks/relational_speed.py"
    )
    parser.add_argument(
        "--trained-on", default="", help="where the runs ran, e.g. 'one NVIDIA H100'"
    )
    args = parser.parse_args()
    state = load_verified(args.weights, None)
    quality = json.loads(Path(args.quality).read_text())
    card = {
        "model": "relational",
        "architecture": SHIPPED_ARCHITECTURE.kwargs(),
        "parameters": int(sum(t.numel() for t in state.values())),
        "training": {
            "human_labels_used": False,
            "data": "synthetic triplets and ordinal sets from reliqa's distortion engine on the TRAIN split of "
            "../shared/data/pristine (the held-out split, reliqa.distortions.is_held_out, never trained on; its "
            "validation half chose checkpoints, its evaluation half gave the figures below)",
            "trained_on": args.trained_on,
            "runs": [run_summary(Path(run)) for run in args.run],
            "commit": git_commit(),
        },
        "results": {
            "command": f"python benchmarks/relational_quality.py --weights {args.weights}",
            "quality": quality,
            "speed": [json.loads(Path(path).read_text()) for path in args.speed],
            "speed_command": "python benchmarks/relational_speed.py [--device cuda] [--large 8192]",
        },
        "neutral_score": 0.0,
    }
    path = save_with_card(state, "relational", card)
    print(f"wrote {path} and its card")


if __name__ == "__main__":
    main()
