"""Metric-side names for the checks of :mod:`reliqa.checks` (the one place for input checks),
plus the reduction helper shared by the functional metrics.

Checks are cheap on the happy path: messages are only formatted when a check fails.
"""

from __future__ import annotations

from typing import Literal

import torch

from reliqa.checks import (
    check_data_range,
    check_positive,
    check_tensor_image,
    check_tensor_pair,
    check_window_size,
)
from reliqa.exceptions import InvalidInputError

Reduction = Literal["none", "mean", "sum"]


def check_image(
    image: torch.Tensor,
    name: str,
    *,
    channels: tuple[int, ...] = (1, 3),
    data_range: float | None = 1.0,
) -> None:
    """A finite floating (N, C, H, W) tensor in [0, ``data_range``] (see
    :func:`reliqa.checks.check_tensor_image`)."""
    check_tensor_image(image, name, channels=channels, data_range=data_range)


def check_pair(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    metric: str,
    min_size: int = 1,
    size_reason: str = "",
    channels: tuple[int, ...] = (1, 3),
    data_range: float = 1.0,
) -> None:
    """Validate a full-reference pair.

    Arguments:
        test: (N, C, H, W) test (distorted) images in [0, data_range].
        reference: (N, C, H, W) reference images, same shape.
        metric: metric name used in the messages.
        min_size: smallest allowed height and width.
        size_reason: why ``min_size`` is needed (appended to the message).
        channels: allowed channel counts.
        data_range: the value of white (1 for reliqa tensors, 255 for 8-bit values).

    Raises:
        ShapeMismatchError: shapes differ (names both; the CLI can ``--resize``).
        InvalidInputError: wrong rank/dtype, NaN/inf, values outside [0, data_range], or
            smaller than ``min_size``.
    """
    check_tensor_pair(
        test,
        reference,
        name=metric,
        channels=channels,
        min_size=min_size,
        size_reason=size_reason,
        data_range=data_range,
    )


def check_window_options(window_size: int, sigma: float, k1: float, k2: float) -> None:
    """SSIM-family options: an odd window of ≥ 3 taps, σ > 0, K1 > 0, K2 > 0 (K = 0 would
    divide 0 by 0 on flat regions; a negative K would be squared into a valid-looking one)."""
    check_window_size(window_size)
    check_positive(sigma, "sigma")
    check_positive(k1, "k1")
    check_positive(k2, "k2")


def reduce(scores: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    """Apply ``reduction`` to per-image scores (N,): ``none`` → (N,), ``mean``/``sum`` → ()."""
    if reduction == "none":
        return scores
    if reduction == "mean":
        return scores.mean()
    if reduction == "sum":
        return scores.sum()
    raise InvalidInputError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


__all__ = [
    "Reduction",
    "check_data_range",
    "check_image",
    "check_pair",
    "check_window_options",
    "reduce",
]
