"""Tuning image pipelines with the relational maps (docs/tuning.md).

- :func:`relational_loss` / :class:`RelationalLoss`: a differentiable objective built on the
  anti-symmetric distortion maps (test first, reference second; lower is better; 0 for x vs x).
- :mod:`reliqa.tuning.pipeline`: a small differentiable pipeline with named parameters
  (exposure, gamma, saturation, white balance, denoise, unsharp mask).
- :func:`tune_gradient` (gradient descent) and :func:`coordinate_search` (derivative-free, for
  black boxes such as Pillow's JPEG encoder).
- :mod:`reliqa.tuning.example` (and :mod:`reliqa.reports.tuning_report`): the worked example behind
  ``reliqa tune``.
"""

from reliqa.tuning.loss import RelationalLoss, RelationalTerms, relational_loss
from reliqa.tuning.optimize import (
    GradientResult,
    SearchDimension,
    SearchResult,
    coordinate_search,
    make_loss,
    tune_gradient,
)
from reliqa.tuning.pipeline import IDENTITY, PARAMETERS, Pipeline, process

__all__ = [
    "IDENTITY",
    "PARAMETERS",
    "GradientResult",
    "Pipeline",
    "RelationalLoss",
    "RelationalTerms",
    "SearchDimension",
    "SearchResult",
    "coordinate_search",
    "make_loss",
    "process",
    "relational_loss",
    "tune_gradient",
]
