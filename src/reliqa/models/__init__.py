"""Networks: relational map network and scorer, no-reference models; one registry."""

from reliqa.models import hirqa as _hirqa  # noqa: F401  (registers hirqa, hirqa-s)
from reliqa.models import relational as _relational  # noqa: F401  (registers relational)
from reliqa.models.registry import ModelEntry, create_model, list_models, register_model

__all__ = ["ModelEntry", "create_model", "list_models", "register_model"]
