"""Helpers shared by the functional metrics: the SSIM-family option check and the reduction.

Image checks are :func:`reliqa.checks.check_tensor_image` / :func:`~reliqa.checks.check_tensor_pair`,
called directly (the one place for input checks).
"""

from __future__ import annotations

from typing import Literal

import torch

from reliqa.checks import check_positive, check_window_size
from reliqa.exceptions import InvalidInputError

Reduction = Literal["none", "mean", "sum"]


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


__all__ = ["Reduction", "check_window_options", "reduce"]
