"""Metric-side helpers. Scoring one image (pair) by name is
:func:`reliqa.evaluation.scorers.evaluate_metric` (metrics and models alike)."""

from __future__ import annotations

from reliqa.io import resize_to

__all__ = ["resize_to"]
