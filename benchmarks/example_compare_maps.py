"""The README's relational-maps picture: a known two-region change, then `reliqa compare`.

The left half of scikit-image's chelsea photo is blurred (gaussian_blur 0.6), the right half
brightened (gamma_brighten 0.6); the shipped relational model draws its maps over the test.

    python benchmarks/example_compare_maps.py --out docs/images/compare_maps.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from skimage import data

from reliqa.distortions import apply_distortion
from reliqa.io import load_image
from reliqa.models.relational_api import compare
from reliqa.reports.maps import render_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/compare_maps.png"))
    args = parser.parse_args()

    reference = load_image(data.chelsea())
    generator = torch.Generator().manual_seed(0)
    blurred = apply_distortion("gaussian_blur", reference, 0.6, generator)
    brightened = apply_distortion("gamma_brighten", reference, 0.6, generator)
    half = reference.shape[-1] // 2
    test = torch.cat([blurred[..., :half], brightened[..., half:]], dim=-1)

    result = compare(test, reference)
    render_maps(test[0], result.maps, path=args.out, title=f"left: blurred, right: brightened   score {result.score:.3f}")
    summary = {name: round(item.mean_signed, 3) for name, item in result.attributes.items()}
    print(json.dumps({"picture": str(args.out), "score": result.score, "mean_signed": summary}, indent=2))


if __name__ == "__main__":
    main()
