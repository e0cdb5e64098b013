"""Results files of batch runs: reading CSV/Parquet results, writing them whole (atomically).

A results file has the text columns ``image``, [``reference``], [``maps``], ``error`` and one
float64 score column per metric/model; in a CSV every cell is text (:func:`format_value`), in
Parquet scores are float64 with null for a missing score.
"""

from __future__ import annotations

import csv
import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reliqa.batch.inputs import ERROR_COLUMN, IMAGE_COLUMN, MAPS_COLUMN, REFERENCE_COLUMN
from reliqa.batch.journal import format_value
from reliqa.batch.parquet import parquet_parts, pyarrow_parquet
from reliqa.exceptions import DataError

TEXT_COLUMNS = (IMAGE_COLUMN, REFERENCE_COLUMN, MAPS_COLUMN, ERROR_COLUMN)
"""Columns that hold text; every other column of a results file is a score (float64)."""


def _read_parquet_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    parquet = pyarrow_parquet()
    files = parquet_parts(path) if path.is_dir() else [path]
    columns: list[str] = []
    rows: list[dict[str, str]] = []
    for file in files:
        try:
            table = parquet.read_table(file)
        except Exception as error:
            raise DataError(f"{file}: not a readable Parquet file ({error})") from None
        if columns and table.column_names != columns:
            raise DataError(f"{file}: has the columns {table.column_names}, {files[0]} {columns}")
        columns = table.column_names
        rows.extend(
            {key: format_value(value) for key, value in row.items()} for row in table.to_pylist()
        )
    return columns, rows


def read_results(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a results file as strings: a CSV, a Parquet file, or a folder of Parquet parts
    (the Ray engine's output; needs pyarrow)."""
    return read_results_with_columns(path)[1]


def read_results_with_columns(path: str | os.PathLike[str]) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of a results file; see :func:`read_results`.

    Raises:
        DataError: missing or unreadable file.
    """
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".parquet":
        if not path.exists():
            raise DataError(f"{path}: no such results file")
        return _read_parquet_rows(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except OSError as error:
        raise DataError(f"{path}: cannot read the results ({error.strerror})") from None
    except (UnicodeDecodeError, csv.Error):
        raise DataError(f"{path}: not a results CSV") from None


def score_columns(columns: Sequence[str]) -> list[str]:
    """The score columns among ``columns`` (everything but image, reference, maps, error)."""
    return [column for column in columns if column not in TEXT_COLUMNS]


def arrow_table(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> Any:
    """Rows of strings → a ``pyarrow.Table``: scores float64 (missing = null), text as strings."""
    pyarrow_parquet()
    pa = importlib.import_module("pyarrow")

    scores = set(score_columns(columns))
    data = {}
    for column in columns:
        values = [row.get(column, "") for row in rows]
        if column in scores:
            data[column] = pa.array([float(v) if v else None for v in values], pa.float64())
        else:
            data[column] = pa.array(values, pa.string())
    return pa.table(data)


def write_parquet(rows: Sequence[dict[str, str]], columns: Sequence[str], path: Path) -> None:
    """Write rows as one Parquet file: to a temporary name, fsynced, then renamed (atomic)."""
    write_parquet_table(arrow_table(rows, columns), path)


def write_parquet_table(table: Any, path: Path) -> None:
    """Write a ``pyarrow.Table`` as one Parquet file: to a temporary name, fsynced, then renamed
    (atomic)."""
    parquet = pyarrow_parquet()
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        parquet.write_table(table, temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot write it ({error.strerror or error})") from None


def write_csv(rows: Sequence[dict[str, str]], columns: Sequence[str], path: Path) -> None:
    """Write rows as one CSV file: to a temporary name, fsynced, then renamed (atomic)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([[row.get(column, "") for column in columns] for row in rows])
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot write it ({error.strerror})") from None

