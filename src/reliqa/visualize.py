"""Compatibility name: map pictures live in :mod:`reliqa.reports.maps` (interfaces layer)."""

from __future__ import annotations

from reliqa.reports.maps import MAP_COLORMAP, MAP_RANGE, active_channels, render_maps

__all__ = ["MAP_COLORMAP", "MAP_RANGE", "active_channels", "render_maps"]
