"""The images of the tuning example (``reliqa tune``): a bundled photo, the camera-like Pillow
degradation of the *correct* task, and the JPEG black box of the *blackbox* task — all made by
tools outside reliqa's own pipeline (Pillow), so the tuned pipeline cannot simply invert them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter
from torch.nn import functional as F

from reliqa.distortions.ops_codec import jpeg_round_trip
from reliqa.exceptions import InvalidInputError, UnknownNameError
from reliqa.io import load_image, to_uint8_array

DEGRADATION: dict[str, float] = {
    "blur_radius": 1.0,
    "blue_gain": 1.12,
    "red_gain": 0.92,
    "brightness": 0.72,
    "color": 0.75,
    "jpeg_quality": 35,
}
"""The Pillow degradation of the *correct* task, applied in this order (blur first)."""


def load_photo(name_or_path: str = "astronaut", size: int = 256) -> torch.Tensor:
    """A (1, 3, size, size) photo: a ``skimage.data`` name or a file, centre-cropped and resized.

    Raises:
        UnknownNameError: an unknown skimage name that is not a file either.
        InvalidInputError: ``size < 32``.
    """
    if size < 32:
        raise InvalidInputError(f"size must be at least 32 px, got {size}")
    if Path(name_or_path).is_file():
        image = load_image(name_or_path)
    else:
        from skimage import data

        loader = getattr(data, name_or_path, None)
        if loader is None or name_or_path.startswith("_"):
            raise UnknownNameError(
                f"{name_or_path!r} is neither a file nor a scikit-image photo "
                "(e.g. astronaut, coffee, chelsea, rocket)"
            )
        image = load_image(loader())
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = image[..., top : top + side, left : left + side]
    return F.interpolate(square, size=(size, size), mode="area").clamp(0.0, 1.0)


def _to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(to_uint8_array(image))


def _from_pil(image: Image.Image) -> torch.Tensor:
    return load_image(np.asarray(image.convert("RGB")))


def degrade_with_pillow(
    image: torch.Tensor, degradation: Mapping[str, float] = DEGRADATION
) -> torch.Tensor:
    """Camera-like degradation by Pillow only: blur, colour cast, darker, desaturated, JPEG.

    Arguments:
        image: (1, 3, H, W) in [0, 1].
        degradation: keys of :data:`DEGRADATION`.

    Returns:
        (1, 3, H, W) in [0, 1] (8-bit values).
    """
    picture = _to_pil(image).filter(ImageFilter.GaussianBlur(degradation["blur_radius"]))
    array = np.asarray(picture).astype(np.float32)
    array[..., 0] *= degradation["red_gain"]
    array[..., 2] *= degradation["blue_gain"]
    picture = Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8))
    picture = ImageEnhance.Brightness(picture).enhance(degradation["brightness"])
    picture = ImageEnhance.Color(picture).enhance(degradation["color"])
    return _from_pil(jpeg_round_trip(picture, degradation["jpeg_quality"])[0])


def soften_with_pillow(image: torch.Tensor, radius: float) -> torch.Tensor:
    """The *blackbox* task's soft start: Pillow's Gaussian blur of ``radius`` px, 8-bit values."""
    return _from_pil(_to_pil(image).filter(ImageFilter.GaussianBlur(radius)))


def jpeg_sharpen(image: torch.Tensor, quality: float, sharpen: float) -> tuple[torch.Tensor, int]:
    """The black box: Pillow's unsharp mask (radius 1.5 px, ``sharpen`` %), then JPEG ``quality``.

    Returns:
        the decoded result (1, 3, H, W) and the JPEG file's size in bytes.
    """
    picture = _to_pil(image)
    if sharpen > 0:
        picture = picture.filter(
            ImageFilter.UnsharpMask(radius=1.5, percent=round(sharpen), threshold=0)
        )
    decoded, size = jpeg_round_trip(picture, quality)
    return _from_pil(decoded), size


__all__ = [
    "DEGRADATION",
    "degrade_with_pillow",
    "jpeg_sharpen",
    "load_photo",
    "soften_with_pillow",
]
