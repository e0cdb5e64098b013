"""A small differentiable image-processing pipeline with named parameters (torch).

Convention:
    - Images are float32 (N, 3, H, W) RGB in [0, 1]; the output is clamped to [0, 1].
    - Stages, in camera order: denoise → white balance → exposure (then highlights clip) →
      tone curve (gamma) → saturation → unsharp mask → clamp.
    - Every parameter has an identity value at which its stage does nothing, so
      ``process(x, IDENTITY) == x`` (up to float rounding) and tuning can start from "no change".
    - A parameter value is a Python float, a 0-d tensor, or a (N,) tensor (one value per sample,
      kornia style). Values outside a parameter's range are clamped to it.

=========== ======== ============== ======================================================
name        identity range          what it does
=========== ======== ============== ======================================================
exposure    0        [−2, 2] EV     ``x · 2^exposure``, then clip at 1
gamma       1        [0.4, 2.5]     ``x^(1/gamma)``: > 1 lifts the mid-tones
saturation  1        [0, 2.5]       ``luma + s·(x − luma)`` (Rec. 601 luma)
temperature 0        [−0.5, 0.5]    gains R·e^t, B·e^−t: > 0 warmer
tint        0        [−0.5, 0.5]    gains G·e^−t, R and B·e^(t/2): > 0 magenta, < 0 green
denoise     0        [0, 1]         blend towards a Gaussian blur (σ = 1.2 px)
sharpen     0        [0, 3]         unsharp mask ``x + a·(x − blur_σ=1(x))``
=========== ======== ============== ======================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from reliqa.exceptions import InvalidInputError

ParameterValue = float | torch.Tensor


@dataclass(frozen=True)
class ParameterSpec:
    """One named pipeline parameter: identity value, range, and the scale tuning steps in."""

    name: str
    identity: float
    low: float
    high: float
    scale: float
    description: str


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec("exposure", 0.0, -2.0, 2.0, 1.0, "exposure in EV: x·2^ev"),
    ParameterSpec("gamma", 1.0, 0.4, 2.5, 0.5, "tone curve x^(1/gamma); > 1 lifts mid-tones"),
    ParameterSpec("saturation", 1.0, 0.0, 2.5, 0.5, "saturation factor around Rec. 601 luma"),
    ParameterSpec("temperature", 0.0, -0.5, 0.5, 0.2, "white balance R·e^t, B·e^-t; > 0 warmer"),
    ParameterSpec("tint", 0.0, -0.5, 0.5, 0.2, "white balance G·e^-t; > 0 magenta"),
    ParameterSpec("denoise", 0.0, 0.0, 1.0, 0.5, "blend towards a Gaussian blur (sigma 1.2)"),
    ParameterSpec("sharpen", 0.0, 0.0, 3.0, 1.0, "unsharp-mask amount (sigma 1)"),
)
"""The pipeline's parameters, in stage order."""

PARAMETER_NAMES: tuple[str, ...] = tuple(spec.name for spec in PARAMETERS)
SPECS: dict[str, ParameterSpec] = {spec.name: spec for spec in PARAMETERS}
IDENTITY: dict[str, float] = {spec.name: spec.identity for spec in PARAMETERS}
"""Parameter values at which :func:`process` returns its input."""

DENOISE_SIGMA = 1.2
SHARPEN_SIGMA = 1.0
_LUMA = (0.299, 0.587, 0.114)


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), reflect padding, radius ⌈3σ⌉ (clipped to size)."""
    radius = max(1, math.ceil(3.0 * sigma))
    radius = min(radius, image.shape[-1] - 1, image.shape[-2] - 1)
    if radius < 1:
        return image
    offsets = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = image.shape[1]
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    padded = F.pad(image, (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(F.conv2d(padded, horizontal, groups=channels), vertical, groups=channels)


def _value(params: Mapping[str, ParameterValue], name: str, like: torch.Tensor) -> torch.Tensor:
    """Parameter ``name`` as a (N|1, 1, 1, 1) tensor, clamped to its range."""
    spec = SPECS[name]
    value = params.get(name, spec.identity)
    tensor = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if tensor.ndim > 1 or (tensor.ndim == 1 and tensor.shape[0] not in (1, like.shape[0])):
        raise InvalidInputError(
            f"pipeline parameter {name}: expected a number or a (N,) tensor with "
            f"N = {like.shape[0]}, got shape {tuple(tensor.shape)}"
        )
    return tensor.reshape(-1, 1, 1, 1).clamp(spec.low, spec.high)


def process(image: torch.Tensor, params: Mapping[str, ParameterValue]) -> torch.Tensor:
    """Run the pipeline on ``image`` with ``params`` (missing names take their identity value).

    Arguments:
        image: (N, 3, H, W) float in [0, 1].
        params: {name: value}; a value is a float, a 0-d tensor or a (N,) tensor. Names are those
            of :data:`PARAMETERS`; gradients flow to tensor values (except where a value is
            clamped to its range or a pixel clips).

    Returns:
        (N, 3, H, W) in [0, 1].

    Raises:
        InvalidInputError: an unknown parameter name or a badly shaped value.

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> bool(torch.allclose(process(x, IDENTITY), x, atol=1e-6))
        True
    """
    unknown = sorted(set(params) - set(SPECS))
    if unknown:
        raise InvalidInputError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(PARAMETER_NAMES)}"
        )
    if image.ndim != 4 or image.shape[1] != 3:
        raise InvalidInputError(
            f"pipeline: expected a (N, 3, H, W) image, got {tuple(image.shape)}"
        )
    x = image
    denoise = _value(params, "denoise", x)
    x = x + denoise * (gaussian_blur(x, DENOISE_SIGMA) - x)
    temperature, tint = _value(params, "temperature", x), _value(params, "tint", x)
    gains = torch.cat(
        [
            torch.exp(temperature + 0.5 * tint),
            torch.exp(-tint).expand_as(temperature),
            torch.exp(-temperature + 0.5 * tint),
        ],
        dim=1,
    )
    x = x * gains * torch.exp2(_value(params, "exposure", x))
    x = x.clamp(1e-4, 1.0)  # highlights clip; a floor keeps the gamma's gradient finite
    x = x.pow(1.0 / _value(params, "gamma", x))
    luma = (x * x.new_tensor(_LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    x = luma + _value(params, "saturation", x) * (x - luma)
    sharpen = _value(params, "sharpen", x)
    x = x + sharpen * (x - gaussian_blur(x, SHARPEN_SIGMA))
    return x.clamp(0.0, 1.0)


class Pipeline(nn.Module):
    """The pipeline as a module whose tunable parameters are ``nn.Parameter``\\ s.

    Internally each tuned parameter is stored normalised, ``z = (value − identity) / scale``
    (``ParameterSpec.scale``), so one learning rate suits all of them; :meth:`values` gives the
    real values. Parameters not in ``tune`` stay at ``fixed`` (or their identity).

    Arguments:
        tune: names of the parameters to tune (default: all).
        initial: starting values (default: identity).
        fixed: values of parameters that are not tuned.

    Shapes:
        forward: (N, 3, H, W) in [0, 1] → (N, 3, H, W) in [0, 1].
    """

    def __init__(
        self,
        tune: Sequence[str] | None = None,
        initial: Mapping[str, float] | None = None,
        fixed: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        names = tuple(PARAMETER_NAMES if tune is None else tune)
        unknown = sorted(n for n in {*names, *(initial or {}), *(fixed or {})} if n not in SPECS)
        if unknown or not names:
            raise InvalidInputError(
                f"pipeline: unknown or no parameters to tune ({', '.join(unknown) or 'none'}); "
                f"known: {', '.join(PARAMETER_NAMES)}"
            )
        self.names = tuple(name for name in PARAMETER_NAMES if name in names)
        self.fixed = {name: float(value) for name, value in (fixed or {}).items()}
        start = {**IDENTITY, **(initial or {})}
        z = [(start[n] - SPECS[n].identity) / SPECS[n].scale for n in self.names]
        self.z = nn.Parameter(torch.tensor(z, dtype=torch.float32))

    def values(self) -> dict[str, torch.Tensor]:
        """Current values of the tuned parameters, clamped to their ranges, as 0-d tensors."""
        return {
            name: (SPECS[name].identity + SPECS[name].scale * self.z[i]).clamp(
                SPECS[name].low, SPECS[name].high
            )
            for i, name in enumerate(self.names)
        }

    def as_dict(self) -> dict[str, float]:
        """Current values of the tuned parameters as floats."""
        return {name: float(value.detach()) for name, value in self.values().items()}

    @torch.no_grad()
    def project(self) -> None:
        """Clamp the stored parameters to their ranges (after an optimiser step)."""
        for i, name in enumerate(self.names):
            spec = SPECS[name]
            low, high = (
                (spec.low - spec.identity) / spec.scale,
                (spec.high - spec.identity) / spec.scale,
            )
            self.z[i].clamp_(low, high)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return process(image, {**self.fixed, **self.values()})


__all__ = [
    "IDENTITY",
    "PARAMETERS",
    "PARAMETER_NAMES",
    "ParameterSpec",
    "Pipeline",
    "gaussian_blur",
    "process",
]
