"""Calibration of the distortion catalogue against KADID-10k, by PSNR.

For every catalogue type: the median PSNR (RGB, 8-bit) of the engine's output at intensity
0.2, 0.4, 0.6, 0.8, 1.0 over pristine Kodak photos reduced to KADID-10k's scale (512 px wide),
beside the median PSNR of the matching KADID-10k distortion at levels 1..5 (computed from the
real KADID-10k images' PSNR in ../shared/data/gmc_reference/kadid10k; no human labels used).

    python benchmarks/distortion_calibration.py [--images 12] [--seed 0] [--types a,b]

Prints a Markdown table (docs/distortions.md quotes it).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from reliqa.distortions import apply_distortion, list_distortions
from reliqa.io import list_images, load_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
INTENSITIES = (0.2, 0.4, 0.6, 0.8, 1.0)

# Catalogue type -> KADID-10k distortion number (01..25) that it re-implements or is calibrated on.
KADID_TYPE = {
    "gaussian_blur": 1,
    "lens_blur": 2,
    "motion_blur": 3,
    "colour_quantisation": 6,
    "saturation_down": 7,
    "saturation_up": 8,
    "jpeg2000": 9,
    "jpeg": 10,
    "webp": 10,
    "gaussian_noise": 11,
    "chroma_noise": 12,
    "shot_noise": 11,
    "impulse_noise": 13,
    "speckle_noise": 14,
    "brighten": 16,
    "darken": 17,
    "jitter": 19,
    "pixelation": 21,
    "banding": 22,
    "lost_blocks": 23,
    "high_boost_sharpen": 24,
}


def kadid_psnr_levels() -> dict[int, list[float]]:
    """Median PSNR of KADID-10k's distorted images per distortion number and level 1..5."""
    folder = SHARED / "gmc_reference" / "kadid10k"
    if not folder.is_dir():
        return {}
    with (
        open(folder / "meta_info.csv", newline="") as meta,
        open(folder / "pred_psnr.csv", newline="") as psnr,
    ):
        names = [row["dist_name"] for row in csv.DictReader(meta)]
        values = [float(row["Results Scores for CC"]) for row in csv.DictReader(psnr)]
    groups: dict[tuple[int, int], list[float]] = {}
    for name, value in zip(names, values, strict=True):
        kind, level = int(name[4:6]), int(name[7:9])
        groups.setdefault((kind, level), []).append(value)
    return {
        kind: [statistics.median(groups[(kind, level)]) for level in range(1, 6)]
        for kind in range(1, 26)
    }


def pristine_photos(count: int) -> list[torch.Tensor]:
    """The first ``count`` Kodak photos, each reduced so its longer side is 512 px."""
    photos = []
    for path in list_images(SHARED / "pristine" / "kodak24")[:count]:
        image = load_image(path)
        scale = 512 / max(image.shape[-2:])
        photos.append(F.interpolate(image, scale_factor=scale, mode="area").clamp(0, 1))
    return photos


def psnr_8bit(test: torch.Tensor, reference: torch.Tensor) -> float:
    error = ((test * 255).round() - (reference * 255).round()).pow(2).mean()
    return float("inf") if error == 0 else float(10 * torch.log10(255**2 / error))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--types", default="", help="comma-separated subset of the catalogue")
    args = parser.parse_args()
    torch.set_num_threads(2)
    photos = pristine_photos(args.images)
    kadid = kadid_psnr_levels()

    def cell(value: float) -> str:
        return "∞" if value > 79 else f"{value:.1f}"

    print(
        f"median PSNR (dB) over {len(photos)} Kodak photos at 512 px; "
        "KADID-10k: median over its 81 references\n"
    )
    print(
        "| type | attribute | sign | "
        + " | ".join(f"t={t}" for t in INTENSITIES)
        + " | KADID-10k levels 1..5 |"
    )
    print("|---|---|---|" + "---|" * len(INTENSITIES) + "---|")
    wanted = set(filter(None, args.types.split(",")))
    for entry in (e for e in list_distortions() if not wanted or e.name in wanted):
        row = []
        for intensity in INTENSITIES:
            generator = torch.Generator().manual_seed(args.seed)
            scores = [
                psnr_8bit(apply_distortion(entry.name, p, intensity, generator), p) for p in photos
            ]
            row.append(statistics.median(scores))
        kind = KADID_TYPE.get(entry.name)
        reference = (
            f"#{kind:02d}: " + " ".join(cell(v) for v in kadid[kind]) if kind and kadid else "—"
        )
        sign = "+" if entry.sign > 0 else "−"
        print(
            f"| {entry.name} | {entry.attribute} | {sign} | "
            + " | ".join(cell(v) for v in row)
            + f" | {reference} |"
        )


if __name__ == "__main__":
    main()
