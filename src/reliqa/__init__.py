"""reliqa: image quality without human labels.

Public API (thin functions over the classes). Names in ``_LAZY`` are imported on first use,
so ``import reliqa`` stays fast and never loads model weights.

Importing reliqa before torch sets ``OMP_WAIT_POLICY=PASSIVE`` unless you chose a policy
(idle torch threads then sleep instead of spinning, which keeps a busy machine fast), and on
glibc keeps freed memory for reuse unless you chose an allocator setting (image-sized tensors
then stop costing fresh pages at every call); see :mod:`reliqa.runtime`.
"""

from __future__ import annotations

import importlib
from typing import Any

from reliqa import runtime as _runtime

_runtime.configure_openmp()  # before anything imports torch: OpenMP reads it once, at load
_runtime.configure_allocator()

from reliqa import catalogue as _catalogue  # noqa: E402
from reliqa.attributes import ATTRIBUTES  # noqa: E402
from reliqa.exceptions import ReliqaError  # noqa: E402

# The one scorer catalogue (core) is filled by the registries above it: importing these two
# packages registers every metric and model. The catalogue imports them on its first look-up of
# the whole table (not here: ``import reliqa`` stays free of torch).
_catalogue.provided_by("reliqa.metrics", "reliqa.models")

__version__ = "0.1.0"

# The public API, in one table: public name -> module that defines it (``module:attribute``
# where the module's name for it differs). Every function here
# takes images test first, reference second (keywords ``test=``, ``reference=``), options
# keyword-only, ``device=None`` meaning ``reliqa.checks.DEFAULT_DEVICE`` (cpu), and ``model=``
# a registered model name (or, for compare/rank, a loaded model). Loaded on first use, so
# ``import reliqa`` (and ``reliqa --help``) never imports torch.
_LAZY: dict[str, str] = {
    "compare": "reliqa.models.relational_api",
    "rank": "reliqa.models.relational_api",
    "score": "reliqa.models.nr_api",
    "create_metric": "reliqa.catalogue:create_scorer",
    "list_metrics": "reliqa.metrics",
    "create_model": "reliqa.models",
    "list_models": "reliqa.catalogue",
    "list_scorers": "reliqa.catalogue",
    "evaluate_metric": "reliqa.evaluation.scorers",
    "gmc": "reliqa.surfaces.gmc",
    "RelationalLoss": "reliqa.tuning", "relational_loss": "reliqa.tuning",
    "load_image": "reliqa.io",
    "save_image": "reliqa.io",
}

__all__ = ["ATTRIBUTES", "ReliqaError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'reliqa' has no attribute {name!r}")
    module, _, attribute = target.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names too (they are loaded lazily, so not yet in the module dict)."""
    helpers = {"Any", "annotations", "importlib", "_LAZY", "_catalogue", "_runtime", "runtime"}
    return sorted((set(globals()) - helpers) | set(__all__))
