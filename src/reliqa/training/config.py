"""Training configs: one base with the fields every loop shares, one loader, one alias table.

Every training loop's config is a dataclass deriving from :class:`TrainConfig` (the fields
``seed``, ``steps``, ``lr``, ``weight_decay``, ``val_every``, each under one name); fields that
only some loops have keep one spelling across them too (``data_root``, ``num_workers``,
``warmup_steps``, ``crop_size``, ``max_minutes``, ``threads``, ``checkpoint_every``,
``log_every``). The recipes of the caches (:class:`~reliqa.training.scorer_cache.ScorerCacheConfig`,
:class:`~reliqa.training.nr_photos.PhotoCorpusConfig`) use the same names.

:func:`load_config` reads a JSON file or a mapping (a ``config.json`` or ``summary.json`` a run
wrote, a checkpoint's metadata) into one of them. Older spellings (:data:`ALIASES`) are still
read, so the committed configs, the run folders and checkpoints written before the names were
unified, and the documented commands keep working; a key that is neither a field nor an old
spelling of one is an error that names the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from reliqa.exceptions import DataError, ReliqaError

ConfigT = TypeVar("ConfigT")

ALIASES: dict[str, str] = {
    "warmup": "warmup_steps",
    "workers": "num_workers",
    "data": "data_root",
    "crop": "crop_size",
    "map_steps": "steps",
    "map_minutes": "max_minutes",
}
"""Old spelling → the one name, for every config (the relational map training said
``map_steps``/``map_minutes``, the no-reference trainings ``warmup``/``workers``/``data``, the
scorer cache ``crop``)."""


@dataclass
class TrainConfig:
    """The fields every training loop has (each config sets its own defaults).

    Attributes:
        seed: base seed of the run (weights, data draws).
        steps: optimiser steps of the whole run.
        lr: peak learning rate.
        weight_decay: AdamW/Adam weight decay.
        val_every: steps between validations (and after the last step).
    """

    seed: int = 0
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_every: int = 100


def canonical_keys(data: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """``data`` with old spellings (:data:`ALIASES`) renamed and ``_comment``-style keys dropped.

    Raises:
        DataError: a key and its old spelling are both given.
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key.startswith("_"):
            continue
        name = ALIASES.get(key, key)
        if name in out:
            raise DataError(f"{where}: {name!r} is given twice (old spelling {key!r} too)")
        out[name] = value
    return out


def load_config(
    config_class: type[ConfigT],
    source: str | os.PathLike[str] | Mapping[str, Any],
    **overrides: Any,
) -> ConfigT:
    """A config dataclass from a JSON file or a mapping; old spellings are accepted.

    Args:
        config_class: the dataclass, e.g.
            :class:`~reliqa.training.relational.RelationalTrainConfig`.
        source: a JSON file holding one object, or the object itself.
        overrides: values (e.g. from CLI options, under a field's name or an old spelling) that
            replace the source's when they are not None.

    Raises:
        DataError: the file is missing or not a JSON object, a key is unknown (named, with the
            file), or a value is invalid.
    """
    if isinstance(source, Mapping):
        where, data = f"{config_class.__name__} settings", dict(source)
    else:
        where, data = str(source), _read_json_object(Path(source))
    data = canonical_keys(data, where)
    known = {field.name for field in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise DataError(
            f"{where}: unknown config key{'s' if len(unknown) > 1 else ''} {unknown} for "
            f"{config_class.__name__}; known: {sorted(known)}"
        )
    given = canonical_keys({k: v for k, v in overrides.items() if v is not None}, "overrides")
    data.update(given)
    try:
        return config_class(**data)
    except ReliqaError as error:  # a check of the config's own: same kind, naming the file
        raise type(error)(f"{where}: {error}") from None
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: invalid config ({error})") from None


def _read_json_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: config file does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a plain JSON-able dict."""
    return dataclasses.asdict(config)


def write_run_config(run_dir: str | os.PathLike[str], config: Any) -> None:
    """Write the resolved ``config.json`` of a run folder (created if missing)."""
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_to_dict(config), indent=2) + "\n")
