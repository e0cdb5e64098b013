"""Pack one split of the pristine photos into a compact folder, for a machine without ../shared.

The photos are re-encoded losslessly (WebP) and, where the longer side exceeds ``--max-side``,
downscaled with a Lanczos filter (downscaling only removes detail and noise; it adds no
distortion). Sub-folders are kept. Train with ``"data_split": "all"`` on the packed folder:
it already holds only the chosen split.

    python benchmarks/pack_pristine.py --split train --max-side 512 --out .device_carry/pristine_train
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from reliqa.distortions.dataset import split_images
from reliqa.training.relational import held_out_halves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/pristine")
    parser.add_argument(
        "--split",
        default="train",
        choices=("train", "held_out", "all", "validation", "evaluation"),
        help="validation / evaluation: the two fixed halves of the held-out split (training.relational)",
    )
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    total = 0
    if args.split in ("validation", "evaluation"):
        validation, evaluation = held_out_halves(args.root)
        photos = validation if args.split == "validation" else evaluation
    else:
        photos = split_images(args.root, args.split)
    for path in photos:
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = args.max_side / max(image.size)
            if scale < 1.0:
                size = (round(image.width * scale), round(image.height * scale))
                image = image.resize(size, Image.Resampling.LANCZOS)
            target = out / path.parent.name / (path.stem + ".webp")
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, "WEBP", lossless=True, method=6)
            total += target.stat().st_size
    print(f"{out}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
