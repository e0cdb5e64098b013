"""The optional pyarrow dependency of batch scoring (``pip install 'reliqa[parquet]'``).

Kept apart so that inputs (Parquet lists of paths), results files, merging and the Ray engine
all reach pyarrow the same way, with the same error when it is missing.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from reliqa.exceptions import InvalidInputError


def pyarrow_parquet() -> ModuleType:
    """``pyarrow.parquet``, or a clear error naming the extra to install."""
    try:
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise InvalidInputError(
            "Parquet needs pyarrow: pip install 'reliqa[parquet]' (or write a .csv)"
        ) from None
    return parquet


def parquet_parts(folder: Path) -> list[Path]:
    """The finished part files of a Parquet dataset folder (hidden temporary files excluded)."""
    return sorted(
        path for path in folder.glob("*.parquet") if path.is_file() and not path.name.startswith(".")
    )
