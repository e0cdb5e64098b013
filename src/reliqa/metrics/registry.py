"""The catalogue's full-reference metrics: one functional form and one :class:`Metric` module
per name, computing the same thing.

Each name fixes a colour handling, a kernel (``reliqa.metrics.ssim.ssim_per_channel``, …) and
its options. :func:`functional` gives the name's function (exported as ``reliqa.metrics.<name>``:
``reliqa.metrics.ssim(test, reference)``); ``create_metric(name)`` gives a module whose
``forward`` calls that same function — so ``reliqa.metrics.ssim(t, r)`` and
``create_metric("ssim")(t, r)`` are the same numbers. The name without a suffix is the official
definition (it reproduces the authors' code on ../shared/data/tid2013_calib); suffixed names are
common variants, each described exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal

import torch

from reliqa.checks import check_data_range, check_tensor_pair
from reliqa.exceptions import InvalidInputError, UnknownNameError
from reliqa.metrics._validate import Reduction, check_window_options, reduce
from reliqa.metrics.base import Metric, MetricInfo, register_metric
from reliqa.metrics.color import rgb_to_gray_matlab, rgb_to_luma_bt601
from reliqa.metrics.dss import DSS_MIN_SIZE, dss
from reliqa.metrics.fsim import fsim
from reliqa.metrics.gmsd import gmsd_per_channel
from reliqa.metrics.haarpsi import HAARPSI_MIN_SIZE, haarpsi
from reliqa.metrics.mdsi import MDSI_MIN_SIZE, mdsi
from reliqa.metrics.psnr import psnr
from reliqa.metrics.srsim import SRSIM_MIN_SIZE, srsim
from reliqa.metrics.ssim import ms_ssim_per_channel, ssim_downsampled_per_channel, ssim_per_channel
from reliqa.metrics.vif import vifp_per_channel
from reliqa.metrics.vsi import VSI_MIN_SIZE, vsi

ColorMode = Literal["gray_matlab", "rgb", "luma_bt601"]
FunctionalMetric = Callable[..., torch.Tensor]
"""``f(test, reference, data_range=1.0, *, reduction="none", **options) -> (N,)`` scores."""

# (image, data_range) -> image on the same scale: the 8-bit grey rounding must know what
# white is, or a 0..255 image is clipped to a flat 255 (SSIM 1.0 for unrelated images).
_COLOR_TRANSFORMS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "gray_matlab": lambda image, data_range: rgb_to_gray_matlab(image, data_range),
    "rgb": lambda image, data_range: image,
    "luma_bt601": lambda image, data_range: rgb_to_luma_bt601(image, data_range),
}

_WINDOW_OPTIONS = {"window_size": 11, "sigma": 1.5, "k1": 0.01, "k2": 0.03}

_INF = float("inf")

_FUNCTIONALS: dict[str, FunctionalMetric] = {}


def _make_functional(info: MetricInfo, kernel: FunctionalMetric, color: ColorMode,
                     fixed: dict[str, Any]) -> FunctionalMetric:
    to_color = _COLOR_TRANSFORMS[color]

    def metric(test: torch.Tensor, reference: torch.Tensor, data_range: float = 1.0, *,
               reduction: Reduction = "none", **options: Any) -> torch.Tensor:
        check_data_range(data_range)
        check_tensor_pair(test, reference, name=info.name, channels=(3,), data_range=data_range)
        scores = kernel(to_color(test, data_range), to_color(reference, data_range), data_range,
                        **{**fixed, **options})
        return reduce(scores, reduction)

    metric.__name__ = metric.__qualname__ = info.name
    metric.__doc__ = (
        f"{info.name}: {info.description}.\n\n"
        f"Definition: {info.reference}. Test first, reference second: (N, 3, H, W) RGB in "
        f"[0, data_range] → (N,) scores ({'higher' if info.higher_is_better else 'lower'} is "
        f"better); the same numbers as ``reliqa.create_metric({info.name!r})``. Options "
        f"(``window_size``, …) go to the kernel ``{kernel.__module__}.{kernel.__name__}``."
    )
    return metric


def functional(name: str) -> FunctionalMetric:
    """The functional form of full-reference metric ``name`` (``reliqa.metrics.<name>``).

    Raises:
        UnknownNameError: ``name`` is not a full-reference metric of this module.
    """
    try:
        return _FUNCTIONALS[name]
    except KeyError:
        raise UnknownNameError(f"no functional form named {name!r}; known: {', '.join(_FUNCTIONALS)}") from None


class FullReferenceMetric(Metric):
    """The module form of a catalogue name: ``forward`` calls :func:`functional` (name).

    ``forward(test, reference)``: both (N, 3, H, W) RGB in [0, 1] (see
    :func:`reliqa.io.load_image`) → (N,) scores, direction given by ``info.higher_is_better``.
    """

    def __init__(self, function: FunctionalMetric, **options: Any) -> None:
        super().__init__()
        # Options are checked here, at create_metric time, not on the first image.
        self.data_range = check_data_range(options.pop("data_range", 1.0))
        if self.function_takes_window(options):
            check_window_options(
                **{key: options.get(key, default) for key, default in _WINDOW_OPTIONS.items()}
            )
        self.function = function
        self.options = options

    @staticmethod
    def function_takes_window(options: dict[str, Any]) -> bool:
        """Whether ``options`` set any SSIM-family window option."""
        return any(key in options for key in _WINDOW_OPTIONS)

    def forward(self, test: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        if reference is None:
            raise InvalidInputError(f"{self.info.name} is a full-reference metric: pass a reference image")
        return self.function(test, reference, self.data_range, **self.options)


def _register(
    name: str,
    higher_is_better: bool,
    score_range: tuple[float, float],
    description: str,
    reference: str,
    *,
    min_size: int,
    kernel: FunctionalMetric,
    color: ColorMode,
    **fixed: Any,
) -> None:
    """Register full-reference name ``name``: ``kernel`` on ``color`` with the options ``fixed``.

    Every name of this module is full-reference ("FR") and differentiable (the kernels are
    torch all the way), so those two fields of its :class:`MetricInfo` are set here once;
    ``min_size`` (px) goes to ``info.extra["min_size"]``.
    """
    info = MetricInfo(name, "FR", higher_is_better, score_range, True, description, reference,
                      extra={"min_size": min_size})
    function = _make_functional(info, kernel, color, fixed)
    _FUNCTIONALS[info.name] = function
    register_metric(info)(functools.partial(FullReferenceMetric, function))


_GRAY = "MATLAB rgb2gray luminance (0.2989 R + 0.5870 G + 0.1140 B) rounded to 8 bits"

_register(
    "psnr", True, (0.0, _INF),
    "PSNR in dB over the three RGB channels together (one MSE), peak 1.0; inf for identical images",
    "MATLAB psnr(A, ref) on the RGB image",
    min_size=1, kernel=psnr, color="rgb",
)
_register(
    "psnr_y", True, (0.0, _INF),
    "PSNR in dB on the BT.601 studio-swing luma (MATLAB rgb2ycbcr Y, 16..235), not rounded, "
    "peak 1.0 — the super-resolution convention",
    "super-resolution benchmarks (e.g. Set5/Set14 evaluation scripts)",
    min_size=1, kernel=psnr, color="luma_bt601",
)
_register(
    "ssim", True, (-1.0, 1.0),
    f"SSIM on the {_GRAY}; 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, valid "
    "positions only, NO automatic downsampling",
    "Wang et al. 2004, ssim_index.m (ssim.m without its downsampling)",
    min_size=11, kernel=ssim_per_channel, color="gray_matlab",
)
_register(
    "ssim_rgb", True, (-1.0, 1.0),
    "SSIM computed on R, G and B separately and averaged; 11x11 Gaussian window, sigma 1.5, "
    "valid positions, no downsampling (what pytorch-msssim and piq(downsample=False) compute)",
    "Wang et al. 2004 applied per channel",
    min_size=11, kernel=ssim_per_channel, color="rgb",
)
_register(
    "ssim_downsampled", True, (-1.0, 1.0),
    f"SSIM on the {_GRAY} after Wang's automatic downsampling: F x F block average "
    "(symmetric boundary) and every F-th pixel, F = max(1, round(min(H, W) / 256))",
    "Wang's ssim.m (2009) and MATLAB's ssim",
    min_size=11, kernel=ssim_downsampled_per_channel, color="gray_matlab",
)
_register(
    "ssim_skimage", True, (-1.0, 1.0),
    "scikit-image structural_similarity defaults on RGB (channel_axis, data_range 1): 7x7 "
    "uniform window, sample covariance, valid positions, channels averaged",
    "skimage.metrics.structural_similarity",
    min_size=7, kernel=ssim_per_channel, color="rgb", window="uniform", window_size=7, sample_covariance=True,
)
_register(
    "ms_ssim", True, (0.0, 1.0),
    f"MS-SSIM on the {_GRAY}; 5 scales, weights 0.0448/0.2856/0.3001/0.2363/0.1333, 2x2 "
    "average downsampling (symmetric boundary), 11x11 Gaussian sigma 1.5; needs >= 161 px",
    "Wang, Simoncelli & Bovik 2003, msssim.m",
    min_size=161, kernel=ms_ssim_per_channel, color="gray_matlab",
)
_register(
    "ms_ssim_rgb", True, (0.0, 1.0),
    "MS-SSIM (as ms_ssim) computed on R, G and B separately and averaged; needs >= 161 px",
    "Wang, Simoncelli & Bovik 2003 applied per channel (pytorch-msssim's convention)",
    min_size=161, kernel=ms_ssim_per_channel, color="rgb",
)
_register(
    "gmsd", False, (0.0, 1.0),
    f"GMSD on the {_GRAY}; 2x2 average + every 2nd pixel, Prewitt [1 0 -1]/3 gradients, "
    "T = 170/255^2, sample std of the similarity map; LOWER is better",
    "Xue et al. 2014, GMSD.m",
    min_size=4, kernel=gmsd_per_channel, color="gray_matlab",
)
_register(
    "gmsd_rgb", False, (0.0, 1.0),
    "GMSD (as gmsd) computed on R, G and B separately and averaged; LOWER is better",
    "Xue et al. 2014 applied per channel",
    min_size=4, kernel=gmsd_per_channel, color="rgb",
)
_register(
    "vifp", True, (0.0, _INF),
    f"pixel-domain VIF on the {_GRAY}; 4 scales, Gaussian windows 17/9/5/3 (sigma N/5), "
    "sigma_n^2 = 2/255^2 — NOT the wavelet-domain VIF of TID2013 tables",
    "Sheikh & Bovik 2006, vifp_mscale.m",
    min_size=41, kernel=vifp_per_channel, color="gray_matlab",
)
_register(
    "fsim", True, (0.0, 1.0),
    "FSIMc (the chromatic FSIM that FeatureSIM.m returns second and that published tables "
    "list as FSIM): phase congruency + Scharr gradient on YIQ Y, times Re[(S_I S_Q)^0.03], "
    "after F x F average downsampling, F = max(1, round(min(H, W) / 256))",
    "Zhang et al. 2011, FeatureSIM.m (second output, FSIMc)",
    min_size=8, kernel=fsim, color="rgb", chromatic=True,
)
_register(
    "fsim_luminance", True, (0.0, 1.0),
    "FSIM without the chromatic term: phase congruency + Scharr gradient on YIQ Y (not "
    "rounded), after F x F average downsampling, F = max(1, round(min(H, W) / 256))",
    "Zhang et al. 2011, FeatureSIM.m (first output, FSIM)",
    min_size=8, kernel=fsim, color="rgb", chromatic=False,
)

# The weight-free set of piq beyond FSIM/GMSD (issue 17): each computes its own colour space
# from RGB, so the modules pass RGB through.
_register(
    "haarpsi", True, (0.0, 1.0),
    "HaarPSI on YIQ (authors' matrix): 2x2 average + every 2nd pixel, Haar wavelets of 3 "
    "scales in 2 orientations on Y, chroma |I|, |Q|; C = 30, alpha = 4.2",
    "Reisenhofer, Bosse, Kutyniok & Wiegand 2018, haarpsi.py / HaarPSI.m",
    min_size=HAARPSI_MIN_SIZE, kernel=haarpsi, color="rgb",
)
_register(
    "mdsi", False, (0.0, _INF),
    "MDSI on LHM: F x F average downsampling, Prewitt gradient similarity with the fused "
    "image (C1 140, C2 55), chroma similarity (C3 550), 0.6/0.4 sum, deviation pooling with "
    "powers 1/4; LOWER is better, 0 for identical images, in practice below 1",
    "Ziaei Nafchi et al. 2016, MDSI.m ('sum' combination)",
    min_size=MDSI_MIN_SIZE, kernel=mdsi, color="rgb",
)
_register(
    "vsi", True, (0.0, 1.0),
    "VSI: SDSP saliency (256x256 MATLAB bilinear imresize, Lab D50, log-Gabor, centre and "
    "colour priors), LMN colours, F x F average downsampling (zero boundary), Scharr "
    "gradient; S_VS * S_G^0.4 * Re[(S_M S_N)^0.02] weighted by max saliency",
    "Zhang, Shen & Li 2014, VSI.m (does NOT reproduce the vsi row of official_values.csv: "
    "see docs/metrics.md)",
    min_size=VSI_MIN_SIZE, kernel=vsi, color="rgb",
)
_register(
    "vsi_piq", True, (0.0, 1.0),
    "VSI as piq 0.8 computes it: as vsi but F.interpolate bilinear resizes (no antialiasing, "
    "align_corners on the way back) and replicate-padded downsampling one pixel earlier",
    "piq.vsi (photosynthesis-team), after Zhang, Shen & Li 2014",
    min_size=VSI_MIN_SIZE, kernel=vsi, color="rgb", variant="piq",
)
_register(
    "srsim", True, (0.0, 1.0),
    "SR-SIM on YIQ Y: F x F average downsampling, spectral residual saliency at 1/4 size "
    "(MATLAB bicubic imresize, per-image normalisation), Scharr gradient; C1 0.40, C2 225, "
    "gradient term ^0.5, weighted by max saliency",
    "Zhang & Li 2012, SR_SIM.m",
    min_size=SRSIM_MIN_SIZE, kernel=srsim, color="rgb",
)
_register(
    "dss", True, (0.0, 1.0),
    "DSS on YIQ Y: 8x8 block DCT, per-subband local-variance similarity (3x3 Gaussian, "
    "sigma 1.5; C 1000 DC / 300 AC) pooled over its lowest 5 %, Gaussian subband weights "
    "(sigma 1.55, weights < 0.01 dropped)",
    "Balanov, Schwartz, Moshe & Peleg 2015, DSS.m",
    min_size=DSS_MIN_SIZE, kernel=dss, color="rgb",
)
