"""Classical metrics with one registry: :func:`create_metric`, :func:`list_metrics`.

One name, one computation: every catalogue name has a functional form here with the same name
and the same numbers as its module — ``reliqa.metrics.ssim(test, reference)`` ==
``create_metric("ssim")(test, reference)`` (MATLAB grey, 8-bit rounded), ``ssim_rgb`` the
per-channel variant, and so on for :func:`psnr`, :func:`psnr_y`, :func:`ssim_downsampled`,
:func:`ssim_skimage`, :func:`ms_ssim`, :func:`ms_ssim_rgb`, :func:`gmsd`, :func:`gmsd_rgb`,
:func:`vifp`, :func:`fsim` (FSIMc), :func:`fsim_luminance`, :func:`haarpsi`, :func:`mdsi`,
:func:`vsi`, :func:`vsi_piq`, :func:`srsim`, :func:`dss`, and the no-reference :func:`niqe`
and :func:`laplacian_var`. The channel-generic kernels they call live in the submodules
(``reliqa.metrics.ssim.ssim_per_channel``, …). Names are looked up in either spelling
(``ms_ssim`` = ``ms-ssim``). Models are scored by name too: :func:`reliqa.create_metric`.
"""

from reliqa.metrics import niqe as _niqe  # noqa: F401  (registers niqe)
from reliqa.metrics import registry as _registry
from reliqa.metrics import sharpness as _sharpness  # noqa: F401  (registers laplacian_var)
from reliqa.metrics.base import (
    Metric,
    MetricInfo,
    create_metric,
    list_metrics,
    metric_name,
    register_metric,
)
from reliqa.metrics.niqe import niqe
from reliqa.metrics.sharpness import laplacian_var

# The functional form of each full-reference catalogue name (the same function its module calls).
psnr = _registry.functional("psnr")
psnr_y = _registry.functional("psnr_y")
ssim = _registry.functional("ssim")
ssim_rgb = _registry.functional("ssim_rgb")
ssim_downsampled = _registry.functional("ssim_downsampled")
ssim_skimage = _registry.functional("ssim_skimage")
ms_ssim = _registry.functional("ms_ssim")
ms_ssim_rgb = _registry.functional("ms_ssim_rgb")
gmsd = _registry.functional("gmsd")
gmsd_rgb = _registry.functional("gmsd_rgb")
vifp = _registry.functional("vifp")
fsim = _registry.functional("fsim")
fsim_luminance = _registry.functional("fsim_luminance")
haarpsi = _registry.functional("haarpsi")
mdsi = _registry.functional("mdsi")
vsi = _registry.functional("vsi")
vsi_piq = _registry.functional("vsi_piq")
srsim = _registry.functional("srsim")
dss = _registry.functional("dss")

__all__ = [
    "Metric",
    "MetricInfo",
    "create_metric",
    "dss",
    "fsim",
    "fsim_luminance",
    "gmsd",
    "gmsd_rgb",
    "haarpsi",
    "laplacian_var",
    "list_metrics",
    "mdsi",
    "metric_name",
    "ms_ssim",
    "ms_ssim_rgb",
    "niqe",
    "psnr",
    "psnr_y",
    "register_metric",
    "srsim",
    "ssim",
    "ssim_downsampled",
    "ssim_rgb",
    "ssim_skimage",
    "vifp",
    "vsi",
    "vsi_piq",
]
