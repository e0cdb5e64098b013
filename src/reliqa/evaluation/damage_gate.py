"""The "damage never helps" gate for no-reference scorers.

A no-reference score that rises when a clean photo is JPEG-compressed, blurred or made noisy
rewards damage. The gate applies the everyday defects a user applies — Pillow JPEG at quality
50/20/10, Gaussian blur σ 1.5 and 3, Gaussian noise σ 0.05 and 0.1 (on the 0..1 scale) — to
clean photos at their native resolution, and counts how often the damaged copy scores strictly
below its original. Every shipped NR model must pass ≥ :data:`REQUIRED_WIN_RATE` for every
defect on the held-out photos of the engine's fixed split (``tests/test_nr_damage_gate.py``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter

REQUIRED_WIN_RATE = 0.97
"""Share of photos whose damaged copy must score below the original, per defect."""

NOISE_SEED = 20261207


def _to_pil(image: torch.Tensor) -> Image.Image:
    array = (image[0].permute(1, 2, 0).clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    return Image.fromarray(array)


def _from_pil(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def jpeg(quality: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Pillow JPEG round trip at ``quality`` (4:2:0, Pillow's default for quality < 95)."""

    def apply(image: torch.Tensor) -> torch.Tensor:
        buffer = io.BytesIO()
        _to_pil(image).save(buffer, format="JPEG", quality=quality)
        return _from_pil(Image.open(buffer))

    return apply


def gaussian_blur(sigma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Pillow Gaussian blur with standard deviation ``sigma`` pixels."""

    def apply(image: torch.Tensor) -> torch.Tensor:
        return _from_pil(_to_pil(image).filter(ImageFilter.GaussianBlur(radius=sigma)))

    return apply


def gaussian_noise(sigma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Additive Gaussian noise of standard deviation ``sigma`` (0..1 scale), clipped and
    rounded to 8 bits, with a fixed seed."""

    def apply(image: torch.Tensor) -> torch.Tensor:
        generator = torch.Generator().manual_seed(NOISE_SEED)
        noise = torch.randn(image.shape, generator=generator) * sigma
        return ((image + noise).clamp(0, 1) * 255.0).round() / 255.0

    return apply


DEFECTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "jpeg_q50": jpeg(50),
    "jpeg_q20": jpeg(20),
    "jpeg_q10": jpeg(10),
    "blur_sigma1.5": gaussian_blur(1.5),
    "blur_sigma3": gaussian_blur(3.0),
    "noise_sigma0.05": gaussian_noise(0.05),
    "noise_sigma0.1": gaussian_noise(0.1),
}
"""The gate's defects (the issue's JPEG q50/q20/q10, blur σ ≥ 1.5, noise σ ≥ 0.05)."""


@dataclass(frozen=True)
class GateResult:
    """Per defect: how many photos' damaged copies scored strictly below the original."""

    wins: dict[str, int]
    photos: int
    failures: dict[str, list[str]]

    def win_rate(self, defect: str) -> float:
        return self.wins[defect] / self.photos if self.photos else float("nan")

    def passed(self, required: float = REQUIRED_WIN_RATE) -> bool:
        return all(self.win_rate(defect) >= required for defect in self.wins)


def damage_gate(
    score: Callable[[torch.Tensor], torch.Tensor],
    photos: Sequence[tuple[str, torch.Tensor]],
    defects: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> GateResult:
    """Run the gate.

    Args:
        score: (N, 3, H, W) in [0, 1] → (N,) scores, higher = better.
        photos: (name, (1, 3, H, W) clean photo) pairs.
        defects: name → damage function; default :data:`DEFECTS`.

    Returns:
        :class:`GateResult` with the wins and the names of the photos that failed.
    """
    chosen = DEFECTS if defects is None else defects
    wins = dict.fromkeys(chosen, 0)
    failures: dict[str, list[str]] = {name: [] for name in chosen}
    for name, photo in photos:
        original = float(score(photo)[0])
        for defect, damage in chosen.items():
            if float(score(damage(photo))[0]) < original:
                wins[defect] += 1
            else:
                failures[defect].append(name)
    return GateResult(wins=wins, photos=len(photos), failures=failures)
