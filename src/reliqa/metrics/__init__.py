"""Classical metrics with one registry: :func:`create_metric`, :func:`list_metrics`.

Functional core: :func:`psnr`, :func:`ssim`, :func:`ms_ssim`, :func:`gmsd`, :func:`vif` (and
:func:`fsim`); importing this package registers their official definitions and variants.
"""

from reliqa.metrics import niqe as _niqe  # noqa: F401  (registers niqe)
from reliqa.metrics import registry as _registry  # noqa: F401  (registers the metrics)
from reliqa.metrics import sharpness as _sharpness  # noqa: F401  (registers laplacian_var)
from reliqa.metrics.base import Metric, MetricInfo, create_metric, list_metrics, register_metric
from reliqa.metrics.fsim import fsim
from reliqa.metrics.gmsd import gmsd
from reliqa.metrics.psnr import psnr
from reliqa.metrics.ssim import ms_ssim, ssim, ssim_downsampled
from reliqa.metrics.vif import vif

__all__ = [
    "Metric",
    "MetricInfo",
    "create_metric",
    "fsim",
    "gmsd",
    "list_metrics",
    "ms_ssim",
    "psnr",
    "register_metric",
    "ssim",
    "ssim_downsampled",
    "vif",
]
