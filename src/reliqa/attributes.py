"""The nine attribute channels of a distortion map (the conventions of docs/design.md).

Channel k of a map says, per pixel, how the TEST image differs from the REFERENCE in that
attribute: 0.5 = no difference, > 0.5 = the test has more of it, < 0.5 = less of it.
Intensity is ``2 * |m - 0.5|`` and direction is the sign of ``m - 0.5``.
"""

from __future__ import annotations

from typing import Final

ATTRIBUTES: Final[tuple[str, ...]] = (
    "brightness",
    "contrast",
    "saturation",
    "temperature",
    "tint",
    "sharpness",
    "noise",
    "compression",
    "structure",
)
"""Channel order of every distortion map, shape (N, 9, H, W)."""

NUM_ATTRIBUTES: Final[int] = len(ATTRIBUTES)

ATTRIBUTE_INDEX: Final[dict[str, int]] = {name: k for k, name in enumerate(ATTRIBUTES)}

# What "more" and "less" mean for each channel, for legends and reports.
ATTRIBUTE_DIRECTIONS: Final[dict[str, tuple[str, str]]] = {
    "brightness": ("brighter", "darker"),
    "contrast": ("more contrast", "less contrast"),
    "saturation": ("more saturated", "less saturated"),
    "temperature": ("warmer", "cooler"),
    "tint": ("magenta shift", "green shift"),
    "sharpness": ("sharper", "blurrier"),
    "noise": ("noisier", "cleaner"),
    "compression": ("more coding artifacts", "fewer coding artifacts"),
    "structure": ("more structural damage", "less structural damage"),
}

# One colour per attribute for pictures that show several maps at once (the viewer): hue =
# which attribute, so nine maps stay distinguishable; the direction is drawn by a pattern.
# Sharpness is blue and compression red, the two most often confused findings.
ATTRIBUTE_COLOURS: Final[dict[str, str]] = {
    "brightness": "#e6b800",
    "contrast": "#8c564b",
    "saturation": "#e377c2",
    "temperature": "#ff7f0e",
    "tint": "#17becf",
    "sharpness": "#1f5fd6",
    "noise": "#2ca02c",
    "compression": "#d62728",
    "structure": "#9467bd",
}

NEUTRAL: Final[float] = 0.5
"""Map value meaning "no difference"."""

ACTIVE_THRESHOLD: Final[float] = 0.05
"""A pixel counts as changed in a channel when ``|m - 0.5| > ACTIVE_THRESHOLD``."""
