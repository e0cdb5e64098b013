"""Image loading and saving: the one place where outside data becomes reliqa tensors.

Convention:
    Every image inside reliqa is a float32 tensor of shape (N, 3, H, W), RGB, values in [0, 1].
    Conversions done here, once, at the edge:

    - grayscale (L, I;16, I, 1-bit) becomes three equal channels;
    - alpha (RGBA, LA, palette with transparency) is composited on WHITE, then dropped;
    - palette images are expanded to RGB;
    - 16-bit images are scaled by 1/65535 (8-bit by 1/255); Pillow reads 16-bit RGB(A) PNG and
      TIFF files as 8 bits per channel (the high byte), so those load with 8-bit precision;
    - CMYK (e.g. CMYK JPEG) is converted to RGB by Pillow;
    - EXIF orientation is applied, so the tensor is upright as a viewer shows it;
    - images with more than ``MAX_PIXELS`` pixels are refused *before* decoding (the header is
      read lazily), which stops decompression bombs.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from reliqa.checks import check_tensor_image
from reliqa.exceptions import ImageLoadError, InvalidInputError

ImageSource = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor
"""Anything :func:`load_image` accepts."""

MAX_PIXELS: int = 8192 * 8192 * 2
"""Largest image (width × height) reliqa decodes: 134 M pixels, twice an 8K × 8K frame."""

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".jp2"}
)

# We enforce our own limit (MAX_PIXELS) with a clear message; Pillow's own check would raise
# a DecompressionBombError only above twice its limit and merely warn below it.
Image.MAX_IMAGE_PIXELS = None


def describe_source(source: object) -> str:
    """A short human name for an image source, used in every error message."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, Image.Image):
        return f"<PIL image {source.mode} {source.width}x{source.height}>"
    if isinstance(source, np.ndarray):
        return f"<numpy array {source.dtype} {tuple(source.shape)}>"
    if isinstance(source, torch.Tensor):
        return f"<tensor {source.dtype} {tuple(source.shape)}>"
    return f"<{type(source).__name__}>"


def _open_path(path: Path, max_pixels: int, name: str | None = None) -> Image.Image:
    name = name or str(path)
    if not path.exists():
        raise ImageLoadError(f"{name}: file does not exist")
    if path.is_dir():
        raise ImageLoadError(f"{name}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{name}: file is empty (0 bytes)")
    try:
        image = Image.open(path)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name}: not an image, or a format Pillow cannot read") from None
    except (OSError, ValueError, SyntaxError) as error:  # e.g. a PPM with a corrupt header
        raise ImageLoadError(f"{name}: cannot be read ({error})") from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        image.close()
        raise ImageLoadError(
            f"{name}: header claims {image.width}x{image.height} = {pixels:,} pixels, more than "
            f"the limit of {max_pixels:,} (refused as a possible decompression bomb)"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{name}: corrupt or truncated image data ({error})") from None
    return image


def _pil_to_array(image: Image.Image, name: str) -> np.ndarray:
    """PIL image → float32 (H, W, 3) array in [0, 1], applying the conventions above."""
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not cost the pixels
        pass
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        gray = np.clip(array / scale, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        array = np.asarray(image, dtype=np.float32)
        return np.repeat(_check_float_range(array, name)[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        return _composite_on_white(rgba)
    if mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.float32) / 255.0


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    alpha = rgba[..., 3:4]
    return (rgba[..., :3] * alpha + (1.0 - alpha)).astype(np.float32)


def _check_float_range(array: np.ndarray, name: str) -> np.ndarray:
    """A float (H, W, C) array in [0, 1] by the one image check; clipped into [0, 1] exactly."""
    check_tensor_image(torch.from_numpy(array).permute(2, 0, 1)[None], name, channels=(1, 3, 4))
    return np.clip(array, 0.0, 1.0)


def _numpy_to_array(array: np.ndarray, name: str) -> np.ndarray:
    """HxW or HxWxC numpy (uint8, uint16, bool or float in [0, 1]) → float32 (H, W, 3)."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InvalidInputError(
            f"{name}: expected an HxW or HxWxC array with C in (1, 3, 4), got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InvalidInputError(f"{name}: image has zero size {array.shape[:2]}")
    if array.dtype == np.uint8:
        data = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        data = array.astype(np.float32) / 65535.0
    elif array.dtype == np.bool_:
        data = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.floating):
        data = _check_float_range(array.astype(np.float32), name)
    else:
        raise InvalidInputError(
            f"{name}: unsupported dtype {array.dtype} (use uint8, uint16, bool or float in [0, 1])"
        )
    if data.shape[2] == 4:
        return _composite_on_white(data)
    if data.shape[2] == 1:
        return np.repeat(data, 3, axis=2)
    return data


def _tensor_to_batch(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """(H, W), (C, H, W) or (N, C, H, W) tensor with C in (1, 3) → float32 (N, 3, H, W)."""
    if tensor.ndim == 2:
        tensor = tensor[None, None]
    elif tensor.ndim == 3:
        tensor = tensor[None]
    if tensor.ndim != 4 or tensor.shape[1] not in (1, 3):
        raise InvalidInputError(
            f"{name}: expected a (H, W), (C, H, W) or (N, C, H, W) tensor with C in (1, 3), "
            f"got shape {tuple(tensor.shape)}"
        )
    if tensor.dtype == torch.uint8:
        tensor = tensor.float() / 255.0
    tensor = check_tensor_image(tensor, name, channels=(1, 3)).float()
    tensor = tensor.clamp(0.0, 1.0)
    if tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1)
    return tensor.contiguous()


def load_image(
    source: ImageSource, *, max_pixels: int = MAX_PIXELS, name: str | None = None
) -> torch.Tensor:
    """Load one image (or pass a tensor batch through) as a float32 RGB batch.

    Args:
        source: a path, a PIL image, an HxW / HxWxC numpy array (uint8, uint16, bool, or float
            in [0, 1]), or a tensor of shape (H, W), (C, H, W) or (N, C, H, W), C in {1, 3},
            float in [0, 1] or uint8.
        max_pixels: refuse images with more pixels than this (decoding never starts).
        name: how error messages name the source (default :func:`describe_source`), e.g.
            ``"test <tensor …>"`` so that a message names the argument.

    Returns:
        Tensor of shape (N, 3, H, W), float32, values in [0, 1]; N = 1 except for a batch tensor.

    Raises:
        ImageLoadError: the file is missing, empty, unreadable, corrupt, or too large.
        InvalidInputError: an array or tensor has a bad shape, dtype, range, NaN or inf.

    Example:
        >>> import numpy as np
        >>> load_image(np.zeros((4, 5), dtype=np.uint8)).shape
        torch.Size([1, 3, 4, 5])
    """
    name = name or describe_source(source)
    if isinstance(source, torch.Tensor):
        return _tensor_to_batch(source.detach(), name)
    if isinstance(source, (str, os.PathLike)):
        with _open_path(Path(source), max_pixels, name) as image:
            array = _pil_to_array(image, name)
    elif isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise ImageLoadError(f"{name}: more than the limit of {max_pixels:,} pixels")
        array = _pil_to_array(source, name)
    elif isinstance(source, np.ndarray):
        array = _numpy_to_array(source, name)
    else:
        raise InvalidInputError(
            f"{name}: cannot load an image from a {type(source).__name__} "
            "(use a path, PIL image, numpy array or tensor)"
        )
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def load_images(sources: Sequence[ImageSource]) -> list[torch.Tensor]:
    """Load several images; each item of the result has shape (1, 3, H, W) (or (N, 3, H, W))."""
    return [load_image(source) for source in sources]


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """Image files in a folder (by extension, case-insensitive), sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageLoadError(f"{root}: not a directory")
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def expand_image_paths(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand folders to their images (sorted); keep files (even broken ones) as given."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        paths.extend(list_images(path) if path.is_dir() else [path])
    return paths


def resize_to(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The one resize-to-reference rule: (N, C, H, W) → (N, C, *size), bilinear with
    antialiasing (which only acts when shrinking), clipped to [0, 1]; unchanged if already
    that size. Used by ``compare(align="resize")``, ``reliqa metric --resize`` and batch."""
    target = (int(size[0]), int(size[1]))
    if tuple(image.shape[-2:]) == target:
        return image
    resized = torch.nn.functional.interpolate(
        image, size=target, mode="bilinear", align_corners=False, antialias=True
    )
    return resized.clamp(0.0, 1.0)


def to_uint8_array(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) or (1, 3, H, W) float tensor in [0, 1] → HxWx3 uint8 array (rounded)."""
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise InvalidInputError(f"expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise InvalidInputError(f"expected a (3, H, W) image tensor, got {tuple(image.shape)}")
    array = image.detach().float().clamp(0, 1).mul(255).round().byte().cpu().numpy()
    array = array.transpose(1, 2, 0)
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else np.ascontiguousarray(array)


def save_image(image: torch.Tensor, path: str | os.PathLike, **save_kwargs: Any) -> Path:
    """Save a (3, H, W) or (1, 3, H, W) tensor in [0, 1] as an 8-bit image (format from suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8_array(image)).save(path, **save_kwargs)
    return path


def save_maps(maps: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save distortion maps (9, H, W) or (1, 9, H, W) as ``.npz`` with key ``maps`` (float32)."""
    if maps.ndim == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim != 3:
        raise InvalidInputError(f"expected maps of shape (K, H, W), got {tuple(maps.shape)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, maps=maps.detach().float().cpu().numpy())
    return path


def load_maps(path: str | os.PathLike) -> torch.Tensor:
    """Load maps written by :func:`save_maps` → float32 tensor (K, H, W). Never unpickles."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return torch.from_numpy(np.asarray(data["maps"], dtype=np.float32))
    except (OSError, KeyError, ValueError) as error:
        raise ImageLoadError(f"{path}: not a reliqa maps file ({error})") from None
