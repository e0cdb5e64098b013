"""The one place where inputs are checked: images and parameters (core layer).

Metrics, models, the distortion engine, NIQE and the public API call these functions at their
public entry points, so a wrong input fails loudly with a :class:`~reliqa.exceptions.ReliqaError`
that names the argument, instead of giving a silently wrong number (an SSIM of 1.0 for two
unrelated 0..255 images, a relational score of −5288, NaN in → NaN out).

Checks are cheap on the happy path: one reduction per tensor for range and finiteness, and
messages are formatted only when a check fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import torch

from reliqa.exceptions import DeviceError, InvalidInputError, ShapeMismatchError

DEFAULT_DEVICE = "cpu"
"""The one device default of every function, model and command (``device=None`` means it)."""

RANGE_TOLERANCE = 1e-3
"""Values may exceed [0, data_range] by this fraction of ``data_range`` (resampling and
float arithmetic overshoot by ~1e-6; a 0..255 image exceeds it by a factor of 255)."""


def check_tensor_image(
    image: object,
    name: str,
    *,
    channels: Sequence[int] = (1, 3),
    min_size: int = 1,
    size_reason: str = "",
    data_range: float | None = 1.0,
) -> torch.Tensor:
    """Check that ``image`` is a finite floating (N, C, H, W) tensor with values in
    [0, ``data_range``], at least ``min_size`` pixels high and wide; return it.

    Arguments:
        image: the tensor to check.
        name: the argument's name, used in every message (e.g. ``"ssim: test"``).
        channels: allowed values of C.
        min_size: smallest allowed H and W.
        size_reason: why ``min_size`` is needed (appended to the message).
        data_range: the value of white; ``None`` skips the range check (for tensors that are
            not images in a known range).

    Raises:
        InvalidInputError: not a tensor, wrong rank or channel count, integer dtype, empty,
            NaN/inf, values outside [0, data_range] (a 0..255 image with ``data_range`` 1
            names the argument and says to divide by 255), or too small; ``data_range`` not
            a positive number.
    """
    if not isinstance(image, torch.Tensor):
        raise InvalidInputError(f"{name}: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 4 or image.shape[1] not in channels:
        expected = (
            f"(N, {channels[0]}, H, W)"
            if len(channels) == 1
            else f"(N, C, H, W) with C in {tuple(channels)}"
        )
        raise InvalidInputError(f"{name}: expected shape {expected}, got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise InvalidInputError(
            f"{name}: expected a floating-point tensor in [0, 1], got {image.dtype} "
            "(convert with image.float() / 255 for 8-bit data)"
        )
    if image.numel() == 0:
        raise InvalidInputError(f"{name}: empty tensor {tuple(image.shape)}")
    _check_min_size(image, f"{name}: ", min_size, size_reason)
    values = image.detach()
    low, high = torch.aminmax(values)
    low_value, high_value = float(low), float(high)
    # NaN propagates through min/max; ±inf shows as a non-finite bound.
    if not (math.isfinite(low_value) and math.isfinite(high_value)):
        raise InvalidInputError(f"{name}: contains NaN or infinite values")
    if data_range is not None:
        data_range = check_data_range(data_range)  # a bad one is named as such, not as the image's
        slack = RANGE_TOLERANCE * data_range
        if low_value < -slack or high_value > data_range + slack:
            hint = (
                "; it looks like 0..255 data: divide by 255 (reliqa images are float in [0, 1])"
                if data_range == 1.0 and high_value > 2.0
                else ""
            )
            raise InvalidInputError(
                f"{name}: values must lie in [0, {data_range:g}], got "
                f"[{low_value:.6g}, {high_value:.6g}]{hint}"
            )
    return image


def _check_min_size(image: torch.Tensor, prefix: str, min_size: int, size_reason: str) -> None:
    height, width = image.shape[-2:]
    if min(height, width) < min_size:
        reason = f" ({size_reason})" if size_reason else ""
        raise InvalidInputError(
            f"{prefix}images must be at least {min_size}x{min_size} px{reason}, "
            f"got {height}x{width}"
        )


def check_tensor_pair(
    test: object,
    reference: object,
    *,
    name: str = "",
    channels: Sequence[int] = (1, 3),
    min_size: int = 1,
    size_reason: str = "",
    data_range: float | None = 1.0,
) -> None:
    """Check a (test, reference) pair: each as :func:`check_tensor_image`, shapes equal.

    Arguments:
        test: (N, C, H, W) the image judged.
        reference: (N, C, H, W) the image it is judged against, same shape.
        name: prefix of the messages (a metric or model name), e.g. ``"ssim"``.

    Raises:
        ShapeMismatchError: the shapes differ (both named).
        InvalidInputError: see :func:`check_tensor_image`.
    """
    prefix = f"{name}: " if name else ""
    for role, image in (("test", test), ("reference", reference)):
        check_tensor_image(
            image,
            f"{prefix}{role}",
            channels=channels,
            min_size=1,
            data_range=data_range,
        )
    test, reference = cast(torch.Tensor, test), cast(torch.Tensor, reference)
    if test.shape != reference.shape:
        raise ShapeMismatchError(
            f"{prefix}test {tuple(test.shape)} and reference {tuple(reference.shape)} differ in "
            "shape; resize the test to the reference first (CLI: --align resize / --resize)"
        )
    _check_min_size(test, prefix, min_size, size_reason)


def check_data_range(data_range: object) -> float:
    """Return ``data_range`` as a float; raise unless it is a positive finite number."""
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)):
        raise InvalidInputError(f"data_range must be a positive number, got {data_range!r}")
    value = float(data_range)
    if not (0.0 < value < math.inf):
        raise InvalidInputError(f"data_range must be a positive number, got {data_range!r}")
    return value


def check_positive(value: object, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float; raise unless it is a finite number > 0 (≥ 0 if allowed)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise InvalidInputError(f"{name} must be a finite number {bound}, got {value!r}")
    return number


def check_window_size(value: object, name: str = "window_size", *, minimum: int = 3) -> int:
    """Return ``value``; raise unless it is an odd integer ≥ ``minimum`` (a window centred on
    a pixel, as every metric's reference implementation uses)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an odd integer ≥ {minimum}, got {value!r}")
    if value < minimum or value % 2 == 0:
        raise InvalidInputError(f"{name} must be an odd integer ≥ {minimum}, got {value!r}")
    return value


def check_positive_int(value: object, name: str) -> int:
    """Return ``value``; raise unless it is an integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an integer ≥ 1, got {value!r}")
    return value


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device ``device`` names (None: :data:`DEFAULT_DEVICE`), checked to exist here.

    ``"auto"`` (the training configs' default) is CUDA when a GPU is available, else the CPU.

    Raises:
        DeviceError: an unknown device string, or a CUDA/MPS device this machine does not have
            (named, with what is available), instead of a torch traceback on the first tensor.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else DEFAULT_DEVICE
    try:
        resolved = torch.device(DEFAULT_DEVICE if device is None else device)
    except (RuntimeError, TypeError) as error:
        raise DeviceError(f"device {device!r} is not a torch device ({error})") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise DeviceError(
                f"device {str(resolved)!r}: no CUDA GPU is available here (torch {torch.__version__}, "
                f"{build}); use --device cpu (device='cpu')"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {str(resolved)!r}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s)"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(resolved)!r}: MPS is not available here; use cpu")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device {str(resolved)!r}: expected cpu, cuda or cuda:N")
    return resolved


__all__ = [
    "DEFAULT_DEVICE",
    "RANGE_TOLERANCE",
    "check_data_range",
    "check_positive",
    "check_positive_int",
    "check_tensor_image",
    "check_tensor_pair",
    "check_window_size",
    "resolve_device",
]
