"""Pictures of distortion maps: truth maps from the engine and maps predicted by models.

Convention:
    One panel per attribute channel that shows anything (some pixel farther than
    ``threshold`` from 0.5), the strongest first (:func:`attribute_strengths`). Each panel is a dimmed grey copy of the image under a diverging
    colour map centred at 0.5: red = the test has MORE of the attribute, blue = LESS, and the
    overlay's opacity grows with ``|m − 0.5|``, so unchanged pixels show the image. Every
    panel uses the same fixed colour range, 0 … 1 around 0.5 (:data:`MAP_RANGE`), so colours
    compare across panels and pictures: a +0.003 change over 1 % of the image stays nearly
    invisible instead of being stretched to full saturation (a per-panel range did that);
    each panel's colour bar names the two directions (``ATTRIBUTE_DIRECTIONS``).
    Rendering uses Matplotlib's Agg canvas directly (no pyplot state), so it is safe in scripts,
    tests and servers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, Normalize
from matplotlib.figure import Figure
from PIL import Image

from reliqa.attributes import (
    ACTIVE_THRESHOLD,
    ATTRIBUTE_DIRECTIONS,
    ATTRIBUTE_INDEX,
    ATTRIBUTES,
    NEUTRAL,
    NUM_ATTRIBUTES,
)
from reliqa.exceptions import InvalidInputError

MAP_COLORMAP = "RdBu_r"
"""Diverging colour map: blue at 0 (less), white at 0.5, red at 1 (more)."""

MAP_RANGE = 0.5
"""Half-width of the one colour range of every panel: 0.5 ± 0.5 = the whole 0 … 1."""

MAX_DISPLAY_SIDE = 384
"""Longer side (pixels) each panel is drawn at; larger inputs are downsampled first."""


def active_channels(maps: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> list[int]:
    """Channels of (9, H, W) maps with some pixel farther than ``threshold`` from 0.5."""
    deviation = (maps - NEUTRAL).abs().flatten(1).amax(dim=1)
    return [k for k in range(maps.shape[0]) if float(deviation[k]) > threshold]


DOMINANT_LIMIT = 3
"""At most this many attributes are "dominant" (shown first, switched on in the viewer)."""

DOMINANT_SHARE = 0.5
"""An attribute is dominant when its strength is at least this share of the strongest one."""

DOMINANT_FLOOR = 0.05
"""… and at least this strength (mean intensity): a faint map is never dominant."""


def attribute_strengths(maps: torch.Tensor) -> dict[str, float]:
    """Mean intensity ``2·|m − 0.5|`` of each channel of (9, H, W) or (1, 9, H, W) maps.

    What orders the attributes in pictures and in the viewer: a blurred image's strongest map
    is sharpness (≈ 0.58 on scikit-image's chelsea), ahead of the structure and compression
    maps the model also paints there (≈ 0.39, 0.26).
    """
    maps = _as_single(maps, NUM_ATTRIBUTES, "maps")
    strength = (maps - NEUTRAL).abs().mul(2.0).flatten(1).mean(dim=1)
    return {name: float(strength[k]) for k, name in enumerate(ATTRIBUTES)}


def dominant_attributes(strengths: dict[str, float]) -> list[str]:
    """The attributes that dominate a comparison, strongest first: at most
    :data:`DOMINANT_LIMIT`, each at least :data:`DOMINANT_SHARE` of the strongest and at least
    :data:`DOMINANT_FLOOR` (none when every map is faint)."""
    ordered = sorted(strengths, key=lambda name: -strengths[name])
    if not ordered:
        return []
    bar = max(DOMINANT_FLOOR, DOMINANT_SHARE * strengths[ordered[0]])
    return [name for name in ordered[:DOMINANT_LIMIT] if strengths[name] >= bar]


def _as_single(tensor: torch.Tensor, channels: int, name: str) -> torch.Tensor:
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != channels:
        raise InvalidInputError(
            f"{name}: expected ({channels}, H, W) or (1, {channels}, H, W), "
            f"got {tuple(tensor.shape)}"
        )
    return tensor.detach().float().cpu()


def _display_size(height: int, width: int) -> tuple[int, int]:
    scale = min(1.0, MAX_DISPLAY_SIDE / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _trim_margins(picture: np.ndarray, pad: int = 6) -> np.ndarray:
    """The picture without its blank (white) outer margins, keeping ``pad`` pixels of them."""
    content: np.ndarray = np.asarray(np.asarray(picture).min(axis=2) < 250)
    rows, cols = np.flatnonzero(np.any(content, axis=1)), np.flatnonzero(np.any(content, axis=0))
    if rows.size == 0:
        return picture.copy()
    top, bottom = max(0, rows[0] - pad), min(picture.shape[0], rows[-1] + 1 + pad)
    left, right = max(0, cols[0] - pad), min(picture.shape[1], cols[-1] + 1 + pad)
    return picture[top:bottom, left:right].copy()


def render_maps(
    image: torch.Tensor,
    maps: torch.Tensor,
    path: str | os.PathLike | None = None,
    title: str | None = None,
    *,
    threshold: float = ACTIVE_THRESHOLD,
    columns: int = 3,
    attributes: Sequence[str] | None = None,
) -> np.ndarray:
    """Draw distortion maps over a dimmed copy of an image.

    Arguments:
        image: (3, H, W) or (1, 3, H, W) float in [0, 1], usually the TEST image.
        maps: (9, h, w) or (1, 9, h, w) in [0, 1], channel order ``ATTRIBUTES``; maps of
            another size (e.g. a model's lower-resolution prediction) are resized to the image.
        path: if given, the picture is also saved there (format from the suffix, e.g. .png).
        title: a line above the panels.
        threshold: a channel is drawn when some pixel is farther than this from 0.5; when no
            channel is, one panel says "no change".
        columns: panels per row at most.
        attributes: draw only these attributes, in this order (e.g. :func:`dominant_attributes`
            for a compact picture); None = every channel that shows anything, strongest first.

    Returns:
        The picture as an (height, width, 3) uint8 RGB array.

    Raises:
        InvalidInputError: wrong shapes.
    """
    image = _as_single(image, 3, "image").clamp(0.0, 1.0)
    maps = _as_single(maps, NUM_ATTRIBUTES, "maps").clamp(0.0, 1.0)
    size = _display_size(image.shape[1], image.shape[2])
    image = F.interpolate(image[None], size=size, mode="area")[0]
    maps = F.interpolate(maps[None], size=size, mode="bilinear", align_corners=False)[0]
    channels = _panel_channels(maps, threshold, attributes)

    gray = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).numpy()
    dimmed = np.repeat((0.15 + 0.5 * gray)[..., None], 3, axis=2)
    cmap = colormaps[MAP_COLORMAP]

    panels = max(1, len(channels))
    figure, canvas, axes = _panel_figure(panels, min(columns, panels), size, title)
    for position, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if position >= panels:
            continue
        ax.imshow(dimmed, interpolation="nearest")
        if not channels:
            ax.set_title("no change", fontsize=10)
            continue
        channel = channels[position]
        _draw_overlay(figure, ax, maps[channel].numpy(), ATTRIBUTES[channel], cmap)
    if title:
        figure.suptitle(title, fontsize=11)
    canvas.draw()
    picture = _trim_margins(np.asarray(canvas.buffer_rgba())[..., :3])
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(target)
    return picture


def _panel_channels(
    maps: torch.Tensor, threshold: float, attributes: Sequence[str] | None
) -> list[int]:
    """The channels to draw, in panel order: the active ones, strongest first, or those of
    ``attributes`` that are active, in its order."""
    strengths = attribute_strengths(maps)
    # the strongest attributes first (attribute_strengths), so the main finding leads
    channels = sorted(active_channels(maps, threshold), key=lambda k: -strengths[ATTRIBUTES[k]])
    if attributes is not None:
        unknown = [name for name in attributes if name not in ATTRIBUTE_INDEX]
        if unknown:
            raise InvalidInputError(f"attributes: unknown {', '.join(unknown)}; known: {', '.join(ATTRIBUTES)}")
        channels = [ATTRIBUTE_INDEX[name] for name in attributes if ATTRIBUTE_INDEX[name] in channels]
    return channels


def _panel_figure(
    panels: int, ncols: int, size: tuple[int, int], title: str | None
) -> tuple[Figure, FigureCanvasAgg, np.ndarray]:
    """A figure on an Agg canvas with a grid for ``panels`` panels of the image's aspect,
    ``ncols`` per row; the axes as an (rows, ncols) array."""
    nrows = math.ceil(panels / ncols)
    panel_width = 3.0
    panel_height = panel_width * size[0] / size[1] + 0.6  # room for the title and colour bar
    # "compressed" packs fixed-aspect panels without the tall gaps between rows that
    # "constrained" left; the blank outer margin is trimmed after drawing
    figure = Figure(
        figsize=(panel_width * ncols, panel_height * nrows + (0.3 if title else 0.0)),
        dpi=100,
        layout="compressed",
    )
    canvas = FigureCanvasAgg(figure)  # the Agg canvas (it has buffer_rgba)
    return figure, canvas, figure.subplots(nrows, ncols, squeeze=False)


def _draw_overlay(figure: Figure, ax: Axes, values: np.ndarray, attribute: str, cmap: Colormap) -> None:
    """One attribute's map over the dimmed image in ``ax``: colour for the direction, opacity
    for the intensity, on the fixed range, with a colour bar naming the two directions."""
    reach = MAP_RANGE  # one fixed range for every panel (module docstring)
    norm = Normalize(vmin=NEUTRAL - reach, vmax=NEUTRAL + reach)
    overlay = cmap(norm(values))
    overlay[..., 3] = np.clip(np.abs(values - NEUTRAL) / reach, 0.0, 1.0) * 0.9
    ax.imshow(overlay, interpolation="nearest")
    more, less = ATTRIBUTE_DIRECTIONS[attribute]
    ax.set_title(attribute, fontsize=10)
    bar = figure.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), ax=ax, orientation="horizontal",
        fraction=0.06, pad=0.02, ticks=[NEUTRAL - reach, NEUTRAL, NEUTRAL + reach],
    )
    bar.ax.set_xticklabels(
        [f"{less}\n{NEUTRAL - reach:.1f}", "same\n0.5", f"{more}\n{NEUTRAL + reach:.1f}"],
        fontsize=7,
    )


__all__ = [
    "MAP_COLORMAP",
    "MAP_RANGE",
    "active_channels",
    "attribute_strengths",
    "dominant_attributes",
    "render_maps",
]
