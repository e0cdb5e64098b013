"""Classical metrics with one registry: :func:`create_metric`, :func:`list_metrics`.

Functional core: :func:`psnr`, :func:`ssim`, :func:`ms_ssim`, :func:`gmsd`, :func:`vif` (and
:func:`fsim`, :func:`haarpsi`, :func:`mdsi`, :func:`vsi`, :func:`srsim`, :func:`dss`); importing
this package registers their official definitions and variants.
"""

from reliqa.metrics import niqe as _niqe  # noqa: F401  (registers niqe)
from reliqa.metrics import registry as _registry  # noqa: F401  (registers the metrics)
from reliqa.metrics import sharpness as _sharpness  # noqa: F401  (registers laplacian_var)
from reliqa.metrics.base import Metric, MetricInfo, create_metric, list_metrics, register_metric
from reliqa.metrics.dss import dss
from reliqa.metrics.fsim import fsim
from reliqa.metrics.gmsd import gmsd
from reliqa.metrics.haarpsi import haarpsi
from reliqa.metrics.mdsi import mdsi
from reliqa.metrics.psnr import psnr
from reliqa.metrics.srsim import srsim
from reliqa.metrics.ssim import ms_ssim, ssim, ssim_downsampled
from reliqa.metrics.vif import vif
from reliqa.metrics.vsi import vsi

__all__ = [
    "Metric",
    "MetricInfo",
    "create_metric",
    "dss",
    "fsim",
    "gmsd",
    "haarpsi",
    "list_metrics",
    "mdsi",
    "ms_ssim",
    "psnr",
    "register_metric",
    "srsim",
    "ssim",
    "ssim_downsampled",
    "vif",
    "vsi",
]
