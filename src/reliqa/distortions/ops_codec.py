"""Compression distortions (compression +): real codecs through Pillow, and quantisation.

Every function: images (N, 3, H, W) float32 in [0, 1], intensity (N,) in [0, 1], optional
``torch.Generator`` (unused: codecs are deterministic) → (N, 3, H, W). Codecs work on 8-bit
images, so they loop over the batch on the CPU and return to the input's device; banding is
vectorised.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from reliqa.distortions.ops_common import KADID_KNOTS, LevelTable, per_sample

JPEG_QUALITY = LevelTable(KADID_KNOTS, (100.0, 43.0, 36.0, 24.0, 7.0, 4.0))
"""libjpeg quality factor, rounded (KADID-10k: 43, 36, 24, 7, 4); 4:2:0 chroma subsampling."""

JPEG2000_RATIO = LevelTable(KADID_KNOTS, (1.0, 10.0, 24.0, 40.0, 120.0, 300.0), log=True)
"""OpenJPEG compression ratio, 9/7 wavelet (KADID-10k: 16, 32, 45, 120, 170 with MATLAB's
encoder; OpenJPEG's rates give a flatter PSNR curve, so the ends are stretched to match it)."""

WEBP_QUALITY = LevelTable(KADID_KNOTS, (100.0, 40.0, 25.0, 15.0, 5.0, 0.0))
"""libwebp lossy quality, rounded (no KADID counterpart; calibrated by PSNR against JPEG)."""

PALETTE_COLOURS = LevelTable(KADID_KNOTS, (256.0, 40.0, 28.0, 20.0, 14.0, 8.0), log=True)
"""Palette size of fast-octree quantisation with Floyd–Steinberg dithering, rounded."""

BANDING_LEVELS = LevelTable(KADID_KNOTS, (256.0, 12.0, 10.0, 8.0, 6.0, 5.0), log=True)
"""Uniform levels per channel, continuous. KADID-10k's quantisation (20, 16, 13, 10, 7 levels)
floors to its bins, which errs about twice as much as rounding; fewer rounded levels match it."""

_JPEG2000_MAX_RESOLUTIONS = 6


def _through_pil(
    images: Tensor, parameters: Tensor, transform: Callable[[Image.Image, float], Image.Image]
) -> Tensor:
    """Apply ``transform(pil_image, parameter)`` to each sample as an 8-bit RGB image.

    Args:
        images: (N, 3, H, W) in [0, 1], any device.
        parameters: (N,) one parameter per sample.

    Returns:
        (N, 3, H, W) float32 on the input's device.
    """
    pixels = (
        images.detach()
        .clamp(0.0, 1.0)
        .mul(255.0)
        .round()
        .to(torch.uint8)
        .permute(0, 2, 3, 1)
        .cpu()
        .numpy()
    )
    outputs = [
        np.asarray(transform(Image.fromarray(pixel_array, "RGB"), float(parameter)).convert("RGB"))
        for pixel_array, parameter in zip(pixels, parameters.tolist(), strict=True)
    ]
    stacked = torch.from_numpy(np.stack(outputs)).permute(0, 3, 1, 2)
    return stacked.to(device=images.device, dtype=torch.float32) / 255.0


def encode_decode(image: Image.Image, **save_options: Any) -> tuple[Image.Image, int]:
    """``image`` written with Pillow's ``save_options`` to memory and read back: the decoded
    picture and the encoded file's size in bytes (the one codec round trip of reliqa)."""
    buffer = io.BytesIO()
    image.save(buffer, **save_options)
    size = buffer.tell()
    buffer.seek(0)
    decoded = Image.open(buffer)
    decoded.load()
    return decoded, size


def jpeg_round_trip(image: Image.Image, quality: float) -> tuple[Image.Image, int]:
    """``image`` through libjpeg at ``quality`` (rounded; Pillow's 4:2:0 default): the decoded
    picture and the JPEG file's size in bytes."""
    return encode_decode(image, format="JPEG", quality=int(round(quality)))


def _jpeg(image: Image.Image, quality: float) -> Image.Image:
    return jpeg_round_trip(image, quality)[0]


def _jpeg2000(image: Image.Image, ratio: float) -> Image.Image:
    # OpenJPEG refuses more wavelet levels than the smaller side can be halved.
    resolutions = min(_JPEG2000_MAX_RESOLUTIONS, int(math.log2(min(image.size))) + 1)
    return encode_decode(
        image,
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=[ratio],
        num_resolutions=resolutions,
        irreversible=True,
    )[0]


def _webp(image: Image.Image, quality: float) -> Image.Image:
    return encode_decode(image, format="WEBP", quality=int(round(quality)))[0]


def _palette(image: Image.Image, colours: float) -> Image.Image:
    return image.quantize(
        colors=int(round(colours)),
        method=Image.Quantize.FASTOCTREE,
        dither=Image.Dither.FLOYDSTEINBERG,
    )


def jpeg(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Baseline JPEG (Pillow/libjpeg), quality from :data:`JPEG_QUALITY` (43 → 4)."""
    return _through_pil(images, JPEG_QUALITY(intensity), _jpeg)


def jpeg2000(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """JPEG 2000 (Pillow/OpenJPEG), compression ratio from :data:`JPEG2000_RATIO` (10 → 300)."""
    return _through_pil(images, JPEG2000_RATIO(intensity), _jpeg2000)


def webp(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Lossy WebP (Pillow/libwebp), quality from :data:`WEBP_QUALITY` (40 → 0)."""
    return _through_pil(images, WEBP_QUALITY(intensity), _webp)


def colour_quantisation(
    images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """GIF-like palette coding: octree palette of 40 → 8 colours, Floyd–Steinberg dithered."""
    return _through_pil(images, PALETTE_COLOURS(intensity), _palette)


def banding(images: Tensor, intensity: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Posterisation: each channel rounded to L uniform levels (12 → 5), so gradients band.

    L is continuous (step 1 / (L − 1)), so the strength grows smoothly with the intensity.
    """
    steps = per_sample(BANDING_LEVELS(intensity) - 1.0)
    return torch.round(images * steps) / steps
