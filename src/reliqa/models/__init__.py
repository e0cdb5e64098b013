"""Networks: relational map network and scorer, no-reference models; one registry."""

from reliqa.models.registry import ModelEntry, create_model, list_models, register_model

__all__ = ["ModelEntry", "create_model", "list_models", "register_model"]
