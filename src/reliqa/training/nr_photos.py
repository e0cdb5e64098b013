"""The whole-photo corpus for ``hirqa``: every pristine photo, whole, with single realistic camera
defects (and a few camera-pipeline pairs), each version described by frozen backbone features,
classical statistics and the full-reference teachers' verdict against its clean photo.

Why whole photos and full-reference teachers (docs/nr.md, "The content-aware criterion"):
crops with mixed, masked damage ranked by the engine's own level taught the previous ``hirqa``
pixel-level cues that do not carry over to authentic photos. Here the unit is a whole photo at a
fixed viewing scale, the damage is one thing a camera does, and the severity that makes different
photos comparable is the consensus of full-reference metrics (MS-SSIM, GMSD, FSIMc, VIFp) against
the clean photo — which sees content: the same blur costs a detailed photo more than a smooth one.

One safetensors file per photo (written to a temporary name, then renamed), so a stopped run
resumes at the next missing photo and two processes can share the work (``part``/``parts``).
Held-out photos (the engine's fixed split) also get a horizontally flipped and a half-scale copy
of every version, for the sanity filters of the criterion.

A corpus can also be made of *views* of the training photos (``view_scale``, ``view_crop``): each
photo scaled down and/or cropped at a random place, then damaged and described like a whole
photo. Every view is a further content (another framing, another detail density) for the head
to learn from; held-out photos never get views, so the criterion still judges unseen photos.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from reliqa.distortions.catalogue import apply_distortion
from reliqa.distortions.dataset import is_held_out, split_images
from reliqa.io import load_image, resize_to
from reliqa.metrics import create_metric
from reliqa.metrics.ssim import MS_SSIM_WEIGHTS, ms_ssim_min_size
from reliqa.metrics.vif import vif_min_size
from reliqa.models.efficientnet_lite import EfficientNetLite0, efficientnet_lite0
from reliqa.models.hirqa import fit_to_max_side, pooled_stage_features
from reliqa.models.nr_statistics import image_statistics
from reliqa.training.config import canonical_keys

CORPUS_VERSION = 1

DEFECT_GROUPS: dict[str, tuple[str, ...]] = {
    "blur": ("gaussian_blur", "lens_blur", "motion_blur"),
    "noise": ("gaussian_noise", "shot_noise", "chroma_noise"),
    "coding": ("jpeg", "jpeg", "webp"),
    "exposure": ("exposure_down", "exposure_up", "darken", "brighten", "gamma_darken"),
    "tone": ("linear_contrast_down", "nonlinear_contrast_down", "saturation_down", "unsharp_mask"),
}
"""Single camera defects, by kind; every photo gets one of each kind (JPEG twice as likely as
WebP: it is what cameras write)."""

CAMERA_PAIRS: tuple[tuple[str, str], ...] = (
    ("shot_noise", "jpeg"),
    ("gaussian_blur", "jpeg"),
    ("exposure_down", "gaussian_noise"),
    ("motion_blur", "shot_noise"),
    ("lens_blur", "webp"),
    ("gaussian_noise", "jpeg"),
)
"""Two-defect versions in camera-pipeline order (optics/sensor first, coding last)."""

TEACHERS: tuple[str, ...] = ("ms_ssim", "gmsd", "fsim", "vifp")
"""Full-reference teachers, catalogue names; their value for a clean photo against itself."""
TEACHER_PERFECT: dict[str, float] = {"ms_ssim": 1.0, "gmsd": 0.0, "fsim": 1.0, "vifp": 1.0}
TEACHER_MIN_SIDE = max(ms_ssim_min_size(len(MS_SSIM_WEIGHTS), 11), vif_min_size())
"""Smallest side every teacher accepts (MS-SSIM's five scales need 161 px): a view smaller than
this is left out of its corpus."""


@dataclass(frozen=True)
class PhotoCorpusConfig:
    """Recipe of the whole-photo corpus (stored in ``corpus.json``; a folder holds one recipe;
    ``data_root`` is ``data`` in older ones)."""

    data_root: str
    max_side: int = 512
    singles: int = 6
    pairs: int = 2
    min_intensity: float = 0.08
    max_intensity: float = 0.9
    seed: int = 2026
    view_scale: float = 1.0
    view_crop: float = 1.0

    @property
    def is_view(self) -> bool:
        """Whether the corpus is made of views (training photos only) instead of whole photos."""
        return self.view_scale != 1.0 or self.view_crop != 1.0

    def recipe(self) -> dict[str, object]:
        """What ``corpus.json`` stores: the fields, the view ones only when set (a whole-photo
        recipe reads as it did before views existed)."""
        fields = dict(self.__dict__)
        if not self.is_view:
            del fields["view_scale"], fields["view_crop"]
        return {"version": CORPUS_VERSION, **fields}


def photo_view(photo: torch.Tensor, photo_index: int, config: PhotoCorpusConfig) -> torch.Tensor:
    """The view of photo ``photo_index`` (1, 3, H, W) a corpus is made of: the photo scaled by
    ``view_scale`` (the one resize rule), then cropped to ``view_crop`` of each side at a place
    drawn from (index, seed); the photo itself when both are 1. Deterministic."""
    if config.view_scale != 1.0:
        height, width = photo.shape[-2:]
        photo = resize_to(
            photo, (round(height * config.view_scale), round(width * config.view_scale))
        )
    if config.view_crop != 1.0:
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + photo_index + 1)
        height, width = photo.shape[-2:]
        crop_h, crop_w = round(height * config.view_crop), round(width * config.view_crop)
        top = int(torch.randint(height - crop_h + 1, (1,), generator=generator))
        left = int(torch.randint(width - crop_w + 1, (1,), generator=generator))
        photo = photo[..., top : top + crop_h, left : left + crop_w]
    return photo


def version_plan(photo_index: int, config: PhotoCorpusConfig) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
    """The defect versions of photo ``photo_index``: ``[(types, intensities), …]``, the clean
    photo first (``((), ())``); deterministic in (index, seed).

    One defect from each of :data:`DEFECT_GROUPS`, further singles from any group, then
    :data:`CAMERA_PAIRS`. Intensities (engine scale, KADID-calibrated) are drawn with mild
    levels more likely — what cameras produce — between ``min_intensity`` and ``max_intensity``.
    """
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + photo_index)

    def pick(options: Sequence[str]) -> str:
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    def level() -> float:
        u = float(torch.rand((), generator=generator)) ** 1.5
        return round(config.min_intensity + (config.max_intensity - config.min_intensity) * u, 4)

    groups = list(DEFECT_GROUPS.values())
    plan: list[tuple[tuple[str, ...], tuple[float, ...]]] = [((), ())]
    for index in range(config.singles):
        group = groups[index] if index < len(groups) else pick([t for g in groups for t in g])
        name = group if isinstance(group, str) else pick(group)
        plan.append(((name,), (level(),)))
    for _ in range(config.pairs):
        pair = CAMERA_PAIRS[int(torch.randint(len(CAMERA_PAIRS), (1,), generator=generator))]
        plan.append((pair, (level(), level())))
    return plan


def render_version(
    photo: torch.Tensor, types: Sequence[str], intensities: Sequence[float], seed: int
) -> torch.Tensor:
    """Apply ``types`` in order at ``intensities`` to the whole photo (1, 3, H, W)."""
    generator = torch.Generator().manual_seed(seed)
    image = photo
    for name, intensity in zip(types, intensities):
        image = apply_distortion(name, image, float(intensity), generator=generator)
    return image


def half_scale(image: torch.Tensor) -> torch.Tensor:
    """×0.5 downscale with the one resize rule (the criterion's scale-consistency copy)."""
    height, width = image.shape[-2:]
    return resize_to(image, (height // 2, width // 2))


def describe(backbone: EfficientNetLite0, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) → (deep (N, 4128) float16, statistics (N, 13) float32), one image at a time."""
    deep, stats = [], []
    with torch.no_grad():
        for image in images.split(1):
            deep.append(pooled_stage_features(backbone, image).half())
            stats.append(image_statistics(image))
    return torch.cat(deep), torch.cat(stats)


def build_photo_corpus(
    out: str | os.PathLike, config: PhotoCorpusConfig, *, part: int = 0, parts: int = 1,
    max_minutes: float | None = None,
) -> int:
    """Write the corpus files of every photo ``i`` with ``i % parts == part`` that is missing.

    Returns the number of photos written by this call.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    recipe = config.recipe()
    recipe_path = folder / "corpus.json"
    if recipe_path.exists():
        stored = canonical_keys(json.loads(recipe_path.read_text()), str(recipe_path))
        if stored != recipe:
            raise ValueError(f"{folder}: holds another recipe {stored}; use a new folder")
    else:
        recipe_path.write_text(json.dumps(recipe, indent=1))
    photos = split_images(config.data_root, "all")
    backbone = efficientnet_lite0(pretrained=True, num_classes=0).eval()
    metrics = {name: create_metric(name) for name in TEACHERS}
    started = time.monotonic()
    written = 0
    # held-out photos first: the criterion needs all of them, training can start on a part
    order = sorted(range(len(photos)), key=lambda i: (not is_held_out(photos[i]), i))
    for position, index in enumerate(order):
        path = photos[index]
        if position % parts != part:
            continue
        held_out = is_held_out(path)
        target = folder / f"photo_{index:05d}.safetensors"
        if target.exists() or (held_out and config.is_view):
            continue
        if max_minutes is not None and time.monotonic() - started > 60 * max_minutes:
            break
        photo = photo_view(fit_to_max_side(load_image(path), config.max_side), index, config)
        if min(photo.shape[-2:]) < TEACHER_MIN_SIDE:
            print(f"{index} {path.name}: view {tuple(photo.shape[-2:])} too small, left out", flush=True)
            continue
        plan = version_plan(index, config)
        versions = torch.cat(
            [render_version(photo, types, levels, config.seed + index) for types, levels in plan]
        )
        deep, stats = describe(backbone, versions)
        teachers = torch.zeros(len(plan), len(TEACHERS))
        with torch.no_grad():
            for column, name in enumerate(TEACHERS):
                teachers[0, column] = TEACHER_PERFECT[name]
                values = metrics[name](versions[1:], photo.expand(len(plan) - 1, -1, -1, -1))
                teachers[1:, column] = values.float()
        tensors = {
            "deep": deep, "stats": stats, "teachers": teachers,
            "intensity": torch.tensor([sum(levels) for _, levels in plan]),
        }
        if held_out:
            tensors["deep_flip"], tensors["stats_flip"] = describe(backbone, versions.flip(-1))
            tensors["deep_half"], tensors["stats_half"] = describe(backbone, half_scale(versions))
        metadata = {
            "photo": f"{path.parent.name}/{path.name}",
            "held_out": str(held_out),
            "types": json.dumps([list(types) for types, _ in plan]),
            "levels": json.dumps([list(levels) for _, levels in plan]),
            "size": json.dumps(list(photo.shape[-2:])),
        }
        temporary = target.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(temporary), metadata=metadata)
        temporary.rename(target)
        written += 1
        print(
            f"{index} {path.name} held_out={held_out} versions={len(plan)} "
            f"{time.monotonic() - started:.0f}s", flush=True,
        )
    return written
