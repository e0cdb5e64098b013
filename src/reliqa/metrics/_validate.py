"""The one place where metric inputs are checked (piq-style explicit validation).

Checks are cheap on the happy path: messages are only formatted when a check fails.
"""

from __future__ import annotations

from typing import Literal

import torch

from reliqa.exceptions import InvalidInputError, ShapeMismatchError

Reduction = Literal["none", "mean", "sum"]


def check_image(image: torch.Tensor, name: str, *, channels: tuple[int, ...] = (1, 3)) -> None:
    """Raise :class:`InvalidInputError` unless ``image`` is a finite floating (N, C, H, W) tensor."""
    if not isinstance(image, torch.Tensor):
        raise InvalidInputError(f"{name}: expected a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 4 or image.shape[1] not in channels:
        raise InvalidInputError(
            f"{name}: expected shape (N, C, H, W) with C in {channels}, got {tuple(image.shape)}"
        )
    if not image.is_floating_point():
        raise InvalidInputError(f"{name}: expected a floating-point tensor, got {image.dtype}")
    if image.numel() == 0:
        raise InvalidInputError(f"{name}: empty tensor {tuple(image.shape)}")
    # One reduction instead of torch.isfinite's four passes: the sum is finite exactly when
    # every value is (images never come near float32 overflow); the message covers that case.
    if not bool(torch.isfinite(image.detach().sum())):
        raise InvalidInputError(f"{name}: contains NaN or infinite values (or values near float overflow)")


def check_pair(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    metric: str,
    min_size: int = 1,
    size_reason: str = "",
    channels: tuple[int, ...] = (1, 3),
) -> None:
    """Validate a full-reference pair.

    Arguments:
        test: (N, C, H, W) test (distorted) images.
        reference: (N, C, H, W) reference images, same shape.
        metric: metric name used in the messages.
        min_size: smallest allowed height and width.
        size_reason: why ``min_size`` is needed (appended to the message).
        channels: allowed channel counts.

    Raises:
        ShapeMismatchError: shapes differ (names both; the CLI can ``--resize``).
        InvalidInputError: wrong rank/dtype, NaN/inf, or smaller than ``min_size``.
    """
    check_image(test, f"{metric}: test", channels=channels)
    check_image(reference, f"{metric}: reference", channels=channels)
    if test.shape != reference.shape:
        raise ShapeMismatchError(
            f"{metric}: test {tuple(test.shape)} and reference {tuple(reference.shape)} differ in "
            "shape; resize one of them (the CLI's `reliqa metric ... --resize` resizes the test "
            "to the reference size)"
        )
    height, width = test.shape[-2:]
    if min(height, width) < min_size:
        reason = f" ({size_reason})" if size_reason else ""
        raise InvalidInputError(
            f"{metric}: images must be at least {min_size}x{min_size} px{reason}, got {height}x{width}"
        )


def check_data_range(data_range: float) -> None:
    """Raise :class:`InvalidInputError` unless ``data_range`` is a positive finite number."""
    if not (isinstance(data_range, (int, float)) and 0.0 < float(data_range) < float("inf")):
        raise InvalidInputError(f"data_range must be a positive number, got {data_range!r}")


def reduce(scores: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Apply ``reduction`` to per-image scores (N,): ``none`` → (N,), ``mean``/``sum`` → ()."""
    if reduction == "none":
        return scores
    if reduction == "mean":
        return scores.mean()
    if reduction == "sum":
        return scores.sum()
    raise InvalidInputError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
