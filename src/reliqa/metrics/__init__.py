"""Classical metrics with one registry: :func:`create_metric`, :func:`list_metrics`."""

from reliqa.metrics.base import Metric, MetricInfo, create_metric, list_metrics, register_metric
from reliqa.metrics import niqe, sharpness  # noqa: E402,F401 -- registers niqe, laplacian_var

__all__ = ["Metric", "MetricInfo", "create_metric", "list_metrics", "register_metric"]
