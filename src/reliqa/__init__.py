"""reliqa: image quality without human labels.

Public API (thin functions over the classes). Names in ``_LAZY`` are imported on first use,
so ``import reliqa`` stays fast and never loads model weights.
"""

from __future__ import annotations

import importlib
from typing import Any

from reliqa.attributes import ATTRIBUTES
from reliqa.exceptions import ReliqaError
from reliqa.io import load_image, save_image

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "compare": "reliqa.models.relational_api",
    "rank": "reliqa.models.relational_api",
    "create_metric": "reliqa.metrics",
    "list_metrics": "reliqa.metrics",
    "gmc": "reliqa.evaluation.gmc",
    "score": "reliqa.models.nr_api",
    "RelationalLoss": "reliqa.tuning", "relational_loss": "reliqa.tuning",
}

__all__ = ["ATTRIBUTES", "ReliqaError", "__version__", "load_image", "save_image", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reliqa' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
