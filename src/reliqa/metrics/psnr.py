"""Peak signal-to-noise ratio."""

from __future__ import annotations

import torch

from reliqa.checks import check_data_range, check_tensor_pair
from reliqa.metrics._validate import Reduction, reduce


def psnr(
    test: torch.Tensor,
    reference: torch.Tensor,
    data_range: float = 1.0,
    *,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """PSNR = 10·log10(data_range² / MSE), the MSE taken over all channels and pixels of an image.

    This is MATLAB's ``psnr(A, ref)`` on an RGB image (one MSE over the three channels). It is
    computed in float64 from the float32 inputs, because squared differences of nearly equal
    images lose digits in float32.

    Arguments:
        test: (N, C, H, W) test images in [0, data_range].
        reference: (N, C, H, W) reference images.
        data_range: value of white.
        reduction: ``"none"`` → (N,), ``"mean"`` / ``"sum"`` → ().

    Returns:
        (N,) float32 scores in dB; ``inf`` for identical images (MSE = 0), as MATLAB returns.

    Example:
        >>> psnr(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.1))
        tensor([20.])
    """
    check_data_range(data_range)
    check_tensor_pair(test, reference, data_range=data_range, name="psnr")
    mse = (test.double() - reference.double()).pow(2).mean(dim=(1, 2, 3))
    scores = 10.0 * torch.log10(data_range**2 / mse)
    return reduce(scores.to(test.dtype), reduction)
