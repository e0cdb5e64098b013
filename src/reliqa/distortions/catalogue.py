"""The catalogue of distortion types: what each one changes, in which direction, and how.

Convention:
    A distortion type acts on the whole frame: ``apply(images, intensity, generator)`` with
    images float32 (N, 3, H, W) in [0, 1] and intensity float32 (N,) in [0, 1] (one strength
    per sample) returns float32 (N, 3, H, W) in [0, 1]. The composer localises it with a mask:
    ``out = x · (1 − m) + apply(x) · m``.

    - Intensity 0 returns the input unchanged; a stronger intensity moves the image further
      from the input. 0.2 is about as strong as KADID-10k's mildest level and 1.0 as its
      strongest (docs/distortions.md has each parameter mapping and its reasoning).
    - Each type changes one attribute channel of ``reliqa.attributes.ATTRIBUTES`` with a fixed
      ``sign``: +1 when the test image has more of the attribute than the reference (brighter,
      noisier, …), −1 when it has less. Opposite directions are separate types.
    - Randomness comes only from ``generator`` (on the images' device; None → global RNG):
      a fixed seed gives the same result on CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import torch
from torch import Tensor

from reliqa.attributes import ATTRIBUTES
from reliqa.checks import check_tensor_image
from reliqa.distortions import ops_blur, ops_codec, ops_colour, ops_noise, ops_structure, ops_tone
from reliqa.exceptions import InvalidInputError, UnknownNameError

DistortionFunction = Callable[[Tensor, Tensor, "torch.Generator | None"], Tensor]
"""(images (N, 3, H, W), intensity (N,), generator) → (N, 3, H, W)."""


@dataclass(frozen=True)
class DistortionType:
    """One entry of the catalogue.

    Attributes:
        name: registry name, e.g. ``"gaussian_blur"``.
        attribute: the channel it changes, one of ``reliqa.attributes.ATTRIBUTES``.
        sign: +1 or −1, the direction of the change in that channel (test relative to reference).
        apply: ``(images (N, 3, H, W) in [0, 1], intensity (N,) in [0, 1], generator) →
            (N, 3, H, W) in [0, 1]``; intensity 0 returns the input.
        parameter: the parameter the intensity drives and its range, e.g. ``"sigma 0.5 → 5 px"``.
        description: one line saying what it does.
    """

    name: str
    attribute: str
    sign: int
    apply: DistortionFunction
    parameter: str
    description: str


def _whole_frame(operation: DistortionFunction) -> DistortionFunction:
    """Wrap an ``ops_*`` operation: identity at intensity 0, output clipped to [0, 1]."""

    @functools.wraps(operation)
    def apply(
        images: Tensor, intensity: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        active = intensity > 0
        if not bool(active.any()):
            return images.clone()
        distorted = operation(images, intensity, generator).to(torch.float32).clamp(0.0, 1.0)
        return torch.where(active.view(-1, 1, 1, 1), distorted, images).contiguous()

    return apply


def _entry(
    operation: DistortionFunction, attribute: str, sign: int, parameter: str
) -> DistortionType:
    if attribute not in ATTRIBUTES or sign not in (1, -1):
        raise ValueError(f"bad catalogue entry {operation.__name__}: {attribute!r}, sign {sign}")
    summary = (operation.__doc__ or "").strip().splitlines()[0]
    return DistortionType(
        operation.__name__, attribute, sign, _whole_frame(operation), parameter, summary
    )


_ENTRIES: Final[tuple[DistortionType, ...]] = (
    _entry(ops_tone.brighten, "brightness", +1, "mid-grey lift 0.1 → 1.1 (0.5 → 0.5 + a/2)"),
    _entry(ops_tone.darken, "brightness", -1, "mid-grey drop 0.05 → 0.8 (0.5 → 0.5 − a/2)"),
    _entry(ops_tone.gamma_brighten, "brightness", +1, "gamma 1 → 1/2.2 (log)"),
    _entry(ops_tone.gamma_darken, "brightness", -1, "gamma 1 → 2.2 (log)"),
    _entry(ops_tone.exposure_up, "brightness", +1, "exposure +0.3 → +1.5 EV, linear light"),
    _entry(ops_tone.exposure_down, "brightness", -1, "exposure −0.3 → −1.5 EV, linear light"),
    _entry(ops_tone.linear_contrast_up, "contrast", +1, "luma gain about the mean 1.15 → 1.8"),
    _entry(ops_tone.linear_contrast_down, "contrast", -1, "luma factor about the mean 0.8 → 0.1"),
    _entry(ops_tone.nonlinear_contrast_up, "contrast", +1, "S-curve steepness k 0.6 → 1.9"),
    _entry(
        ops_tone.nonlinear_contrast_down,
        "contrast",
        -1,
        "roll-off k 0.25 → 9 (luma range 0.8 → 0.1)",
    ),
    _entry(ops_colour.saturation_up, "saturation", +1, "a*, b* factor 1.5 → 9"),
    _entry(ops_colour.saturation_down, "saturation", -1, "a*, b* factor 0.4 → 0"),
    _entry(ops_colour.warm, "temperature", +1, "red/blue gain ratio 1 → 2.8 (log, linear light)"),
    _entry(ops_colour.cool, "temperature", -1, "blue/red gain ratio 1 → 2.8 (log, linear light)"),
    _entry(
        ops_colour.magenta_tint, "tint", +1, "red+blue/green gain ratio 1 → 2 (log, linear light)"
    ),
    _entry(
        ops_colour.green_tint, "tint", -1, "green/red+blue gain ratio 1 → 2 (log, linear light)"
    ),
    _entry(ops_blur.gaussian_blur, "sharpness", -1, "sigma 0.5 → 5 px (log)"),
    _entry(ops_blur.lens_blur, "sharpness", -1, "disk radius 1 → 8 px"),
    _entry(ops_blur.motion_blur, "sharpness", -1, "streak length 2 → 10 px (log), random angle"),
    _entry(
        ops_blur.denoise_smoothing,
        "sharpness",
        -1,
        "guided-filter eps 1e-4 → 0.1 (log), radius 4 px",
    ),
    _entry(ops_blur.unsharp_mask, "sharpness", +1, "amount 0.5 → 4 (log), sigma 1 px, RGB"),
    _entry(ops_blur.high_boost_sharpen, "sharpness", +1, "amount 1 → 12, sigma 3 px, on L*"),
    _entry(ops_noise.gaussian_noise, "noise", +1, "variance 0.001 → 0.01"),
    _entry(ops_noise.chroma_noise, "noise", +1, "Cb/Cr variance 0.00015 → 0.0045"),
    _entry(ops_noise.shot_noise, "noise", +1, "photons at full scale 333 → 33 (linear light)"),
    _entry(ops_noise.impulse_noise, "noise", +1, "density 0.001 → 0.03"),
    _entry(ops_noise.speckle_noise, "noise", +1, "variance 0.001 → 0.05"),
    _entry(ops_codec.jpeg, "compression", +1, "JPEG quality 43 → 4"),
    _entry(ops_codec.jpeg2000, "compression", +1, "JPEG 2000 ratio 10 → 300 (log)"),
    _entry(ops_codec.webp, "compression", +1, "WebP quality 40 → 0"),
    _entry(
        ops_codec.colour_quantisation, "compression", +1, "palette 40 → 8 colours (log), dithered"
    ),
    _entry(ops_codec.banding, "compression", +1, "levels per channel 12 → 5 (log)"),
    _entry(ops_structure.pixelation, "structure", +1, "cell size 1.6 → 6 px"),
    _entry(ops_structure.jitter, "structure", +1, "displacement std 0.25 → 2.4 px"),
    _entry(
        ops_structure.lost_blocks, "structure", +1, "blocks lost 1 % → 5.2 %, side min(H, W)/12"
    ),
)

DISTORTIONS: Final[dict[str, DistortionType]] = {entry.name: entry for entry in _ENTRIES}
"""The catalogue by name, in channel order of ``ATTRIBUTES``."""


def list_distortions() -> list[DistortionType]:
    """All distortion types, in catalogue order (grouped by attribute channel)."""
    return list(DISTORTIONS.values())


def get_distortion(name: str) -> DistortionType:
    """The distortion type called ``name``.

    Raises:
        UnknownNameError: no such type; the message lists the known names.
    """
    try:
        return DISTORTIONS[name]
    except KeyError:
        known = ", ".join(DISTORTIONS)
        raise UnknownNameError(f"unknown distortion type {name!r}; known types: {known}") from None


def _check_images(images: object) -> Tensor:
    checked = check_tensor_image(images, "images", channels=(3,))
    # The check allows a float overshoot of RANGE_TOLERANCE; operations such as a gamma curve
    # need [0, 1] exactly (a negative base would give NaN).
    return checked.to(torch.float32).clamp(0.0, 1.0)


def _check_intensity(intensity: float | Tensor, images: Tensor) -> Tensor:
    count = images.shape[0]
    values = torch.as_tensor(intensity, dtype=torch.float32, device=images.device)
    if values.ndim == 0:
        values = values.expand(count)
    if values.shape != (count,):
        raise InvalidInputError(
            f"intensity: expected a number or a ({count},) tensor for {count} images, "
            f"got shape {tuple(values.shape)}"
        )
    if not bool(((values >= 0.0) & (values <= 1.0)).all()):
        raise InvalidInputError(f"intensity: values must lie in [0, 1], got {values.tolist()}")
    return values


def apply_distortion(
    name: str,
    images: Tensor,
    intensity: float | Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply distortion type ``name`` to the whole frame of every image.

    Args:
        name: a catalogue name (see :func:`list_distortions`).
        images: (N, 3, H, W) float in [0, 1], CPU or GPU.
        intensity: one number for all images or an (N,) tensor, each in [0, 1].
        generator: random source on the images' device; None uses the global RNG.

    Returns:
        (N, 3, H, W) float32 in [0, 1] on the images' device.

    Raises:
        UnknownNameError: ``name`` is not in the catalogue.
        InvalidInputError: bad images, intensity or generator.

    Example:
        >>> images = torch.full((2, 3, 8, 8), 0.5)
        >>> out = apply_distortion("brighten", images, torch.tensor([0.0, 1.0]))
        >>> [round(v, 3) for v in out.mean(dim=(1, 2, 3)).tolist()]
        [0.5, 1.0]
    """
    distortion = get_distortion(name)
    images = _check_images(images)
    values = _check_intensity(intensity, images)
    if generator is not None and generator.device.type != images.device.type:
        raise InvalidInputError(
            f"generator: is on {generator.device.type} but the images are on {images.device.type}; "
            "create it with torch.Generator(device=images.device)"
        )
    return distortion.apply(images, values, generator)
