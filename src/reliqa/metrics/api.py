"""Score one test image (and its reference) with a registered metric, from any image source."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reliqa.exceptions import InvalidInputError, ShapeMismatchError
from reliqa.io import ImageSource, describe_source, load_image
from reliqa.metrics.base import create_metric


def resize_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of (N, 3, H, W) to (N, 3, *size), clipped to [0, 1]."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    resized = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp(0.0, 1.0)


def evaluate_metric(
    name: str,
    test: ImageSource,
    reference: ImageSource | None = None,
    *,
    resize: bool = False,
) -> torch.Tensor:
    """Score ``test`` (against ``reference`` for a full-reference metric).

    Arguments:
        name: a registered metric (see :func:`reliqa.list_metrics`).
        test: the image to judge (path, PIL image, array or (N, 3, H, W) tensor).
        reference: the undistorted image; required for FR metrics, refused for NR ones.
        resize: resize the test to the reference size (antialiased bilinear) first.

    Returns:
        (N,) scores (N = 1 for a single image).

    Raises:
        UnknownNameError: no such metric.
        InvalidInputError: a reference missing for an FR metric, or given to an NR one.
        ShapeMismatchError: sizes differ and ``resize`` is False.
    """
    metric = create_metric(name)
    if metric.info.kind == "FR" and reference is None:
        raise InvalidInputError(f"{name} is a full-reference metric: a reference image is required")
    if metric.info.kind == "NR" and reference is not None:
        raise InvalidInputError(f"{name} is a no-reference metric: it takes no reference image")
    test_image = load_image(test)
    with torch.no_grad():
        if reference is None:
            return metric(test_image)
        reference_image = load_image(reference)
        if resize:
            test_image = resize_to(test_image, tuple(reference_image.shape[-2:]))
        elif test_image.shape[-2:] != reference_image.shape[-2:]:
            raise ShapeMismatchError(
                f"test {describe_source(test)} is {test_image.shape[-1]}x{test_image.shape[-2]} but "
                f"reference {describe_source(reference)} is {reference_image.shape[-1]}x"
                f"{reference_image.shape[-2]} (W x H); pass --resize (resize=True) to resize the "
                "test to the reference size"
            )
        return metric(test_image, reference_image)
