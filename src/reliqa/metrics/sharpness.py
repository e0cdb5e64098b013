"""Variance of the Laplacian: the simplest no-reference sharpness measure (a baseline).

Convention:
    Luminance as MATLAB ``rgb2gray`` on the 0..255 scale (like the other classical metrics), the
    4-neighbour Laplacian [[0, 1, 0], [1, −4, 1], [0, 1, 0]] (OpenCV ``Laplacian`` with ksize=1)
    on the valid region only (no padding, so borders add no artificial edges), and the
    population variance of the response over the image. Higher = more high-frequency energy:
    sharper, but noise raises it too — it is a baseline, not a quality model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reliqa.checks import check_tensor_image
from reliqa.exceptions import InvalidInputError
from reliqa.metrics.base import Metric, MetricInfo, register_metric
from reliqa.metrics.color import rgb_to_gray_matlab

_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def laplacian_variance(image: torch.Tensor) -> torch.Tensor:
    """Variance of the Laplacian of the luminance of each image.

    Args:
        image: (N, 3, H, W) RGB in [0, 1], H and W at least 3.

    Returns:
        (N,) scores on the 0..255² scale (higher = sharper), differentiable.

    Raises:
        InvalidInputError: not a (N, 3, H, W) tensor, or a side shorter than 3 px.

    Example:
        >>> flat = torch.full((1, 3, 8, 8), 0.5)
        >>> laplacian_variance(flat)
        tensor([0.])
    """
    check_tensor_image(image, "laplacian_var", channels=(3,))
    if image.shape[-1] < 3 or image.shape[-2] < 3:
        raise InvalidInputError(
            f"laplacian_var needs images of at least 3×3 px, got {image.shape[-1]}×{image.shape[-2]}"
        )
    gray = rgb_to_gray_matlab(image, quantize=False) * 255.0
    kernel = torch.tensor(_LAPLACIAN, dtype=image.dtype, device=image.device).view(1, 1, 3, 3)
    response = F.conv2d(gray, kernel).flatten(1)
    return response.var(dim=1, unbiased=False)


laplacian_var = laplacian_variance
"""The catalogue name of :func:`laplacian_variance` (``reliqa.metrics.laplacian_var``): the same
function."""


@register_metric(
    MetricInfo(
        name="laplacian_var",
        kind="NR",
        higher_is_better=True,
        score_range=(0.0, float("inf")),
        differentiable=True,
        description="variance of the 4-neighbour Laplacian of rgb2gray luminance (0..255), "
        "valid region; a sharpness baseline",
        reference="Pech-Pacheco et al., 'Diatom autofocusing in brightfield microscopy', ICPR 2000",
    )
)
class LaplacianVariance(Metric):
    """Module form of :func:`laplacian_variance`: ``forward(test) -> (N,)``; reference ignored."""

    def forward(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        return laplacian_variance(test)
