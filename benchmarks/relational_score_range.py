"""How low the relational score goes: every catalogue type at full intensity, a strong blur,
and the TID2013 calibration pairs (the README's "how much worse" paragraph quotes this record).

Intensity 1.0 of a type is about as strong as KADID-10k's strongest level (DESIGN.md). Three of
scikit-image's bundled photos (no data needed), 256 × 256 centre crops, seed 0.

    python benchmarks/relational_score_range.py --out benchmarks/results/relational_score_range.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
from skimage import data

from reliqa.distortions import apply_distortion
from reliqa.distortions.catalogue import list_distortions
from reliqa.io import load_image
from reliqa.models.relational_api import compare

PHOTOS = ("astronaut", "coffee", "chelsea")
SIDE = 256
BLUR_SIGMA = 5.0


def _crop(name: str) -> np.ndarray:
    photo = getattr(data, name)()
    top, left = (photo.shape[0] - SIDE) // 2, (photo.shape[1] - SIDE) // 2
    return np.ascontiguousarray(photo[top : top + SIDE, left : left + SIDE])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/relational_score_range.json"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    references = {name: load_image(_crop(name)) for name in PHOTOS}
    by_type: dict[str, float] = {}
    for entry in list_distortions():
        scores = []
        for index, reference in enumerate(references.values()):
            generator = torch.Generator().manual_seed(index)
            test = apply_distortion(entry.name, reference, 1.0, generator)
            scores.append(float(compare(test, reference).score))
        by_type[entry.name] = statistics.fmean(scores)
    blur = statistics.fmean(
        float(compare(load_image(np.asarray(Image.fromarray(_crop(name)).filter(ImageFilter.GaussianBlur(BLUR_SIGMA)))),
                      references[name]).score)
        for name in PHOTOS
    )
    ordered = sorted(by_type.values())
    record = {
        "benchmark": "relational_score_range",
        "command": f"python benchmarks/relational_score_range.py --out {args.out}",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "photos": list(PHOTOS),
        "side": SIDE,
        "intensity_1": {
            "types": len(by_type),
            "median": statistics.median(ordered),
            "lowest": ordered[0],
            "lowest_type": min(by_type, key=by_type.__getitem__),
            "highest": ordered[-1],
            "highest_type": max(by_type, key=by_type.__getitem__),
            "by_type": dict(sorted(by_type.items())),
        },
        "gaussian_blur_sigma5": blur,
        "seconds": time.time() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps({k: v for k, v in record["intensity_1"].items() if k != "by_type"} | {"blur_sigma5": blur}))


if __name__ == "__main__":
    main()
