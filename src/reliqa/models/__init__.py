"""Networks: relational map network and scorer, no-reference models; one registry."""

from reliqa.models.registry import ModelEntry, create_model, list_models, register_model

from reliqa.models import nr as _nr  # noqa: E402,F401  (registers hirqa, hirqa-s)
from reliqa.models import relational as _relational  # noqa: E402,F401  (registers relational)

__all__ = ["ModelEntry", "create_model", "list_models", "register_model"]
