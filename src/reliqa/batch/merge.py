"""Merging the results of ``reliqa batch --shard I/N`` runs into one CSV or Parquet file.

:func:`merge_results` joins results files with the same columns; it refuses different column
sets, duplicate rows, an incomplete set of shards and rows that belong to another shard.
Nothing is written unless every check passes.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reliqa.batch.inputs import (
    ERROR_COLUMN,
    IMAGE_COLUMN,
    REFERENCE_COLUMN,
    BatchItem,
    shard_from_name,
    shard_of,
)
from reliqa.batch.journal import check_output_path
from reliqa.batch.parquet import parquet_parts, pyarrow_parquet
from reliqa.batch.results import (
    read_results_with_columns,
    write_csv,
    write_parquet,
    write_parquet_table,
)
from reliqa.exceptions import DataError, InvalidInputError, OutputExistsError


@dataclass
class MergeSummary:
    """What :func:`merge_results` wrote."""

    out: Path
    rows: int
    failed: int
    sources: list[Path]
    columns: list[str]

    @property
    def ok(self) -> bool:
        return self.failed == 0


def _check_shard_set(sources: Sequence[Path]) -> None:
    named = [(source, shard_from_name(source)) for source in sources]
    shards = [(source, spec) for source, spec in named if spec is not None]
    if not shards:
        return
    counts = {spec[1] for _, spec in shards}
    if len(counts) > 1:
        raise DataError(
            "the files come from different shardings ("
            + ", ".join(f"{source.name}: of {spec[1]}" for source, spec in shards)
            + "); merge the shards of one run"
        )
    count = counts.pop()
    missing = sorted(set(range(1, count + 1)) - {spec[0] for _, spec in shards})
    if missing:
        raise DataError(
            "missing shard(s) " + ", ".join(f"{index}/{count}" for index in missing)
            + ": run them (same command with --shard I/N) before merging"
        )


def merge_results(
    sources: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]
) -> MergeSummary:
    """Join results files (shards of one run) into ``out`` (``.csv`` or ``.parquet``).

    Rows are sorted by (image, reference), so the merged file does not depend on the order in
    which shards finished. Nothing is written unless every check passes.

    Raises:
        DataError: an unreadable or unfinished source; sources with different columns (metric
            sets, modes); a row (image, reference) present twice; shards ``…shard-I-of-N…``
            missing, from different N, or holding a row of another shard.
        OutputExistsError: ``out`` exists (merge never overwrites).
        InvalidInputError: no sources, or ``out`` cannot be written.
    """
    paths = [Path(source) for source in sources]
    if not paths:
        raise InvalidInputError("--merge: give the results files (shards) to merge")
    out = Path(out)
    if out.exists():
        raise OutputExistsError(
            f"{out}: exists; merge writes a new file (delete it or give another --out)"
        )
    check_output_path(out)
    for path in paths:
        if path.name.endswith(".partial.csv"):
            raise DataError(f"{path}: an unfinished run's journal; finish it (rerun its command)")
    _check_shard_set(paths)
    if out.suffix.lower() == ".parquet" and all(
        path.is_dir() or path.suffix.lower() == ".parquet" for path in paths
    ):
        return _merge_parquet(paths, out)
    columns: list[str] | None = None
    first: Path | None = None
    rows: list[dict[str, str]] = []
    seen: dict[tuple[str, str], Path] = {}
    for path in paths:
        these_columns, these_rows = read_results_with_columns(path)
        if path.is_dir() and not these_columns:
            continue  # an empty shard of the Ray engine: a folder without parts
        columns, first = _check_columns(path, these_columns, columns, first)
        spec = shard_from_name(path)
        for row in these_rows:
            key = (row.get(REFERENCE_COLUMN, ""), row[IMAGE_COLUMN])
            if key in seen:
                where = "twice in it" if seen[key] == path else f"also in {seen[key]}"
                name = key[1] if not key[0] else f"({key[1]}, reference {key[0]})"
                raise DataError(f"{path}: the row of {name} is {where}; refusing duplicate rows")
            seen[key] = path
            _check_row_shard(path, spec, key)
        rows.extend(these_rows)
    if columns is None:  # every source was an empty folder
        raise InvalidInputError("--merge: nothing to merge")
    rows.sort(key=lambda row: (row[IMAGE_COLUMN], row.get(REFERENCE_COLUMN, "")))
    if out.suffix.lower() == ".parquet":
        write_parquet(rows, columns, out)
    else:
        write_csv(rows, columns, out)
    return MergeSummary(
        out=out,
        rows=len(rows),
        failed=sum(1 for row in rows if row.get(ERROR_COLUMN)),
        sources=paths,
        columns=columns,
    )


def _check_columns(
    source: Path, names: list[str], columns: list[str] | None, first: Path | None
) -> tuple[list[str], Path | None]:
    """The merge's columns and their first source, after checking ``source``'s ``names``
    against them (the first source sets them)."""
    if columns is None:
        columns, first = names, source
    elif names != columns:
        raise DataError(
            f"{source} has the columns {names} but {first} has {columns}: results of "
            "different metric sets or modes cannot be merged"
        )
    if IMAGE_COLUMN not in names or ERROR_COLUMN not in names:
        raise DataError(f"{source}: not a reliqa results file (columns {names})")
    return columns, first


def _check_row_shard(path: Path, spec: tuple[int, int] | None, key: tuple[str, str]) -> None:
    if spec is not None and shard_of(BatchItem(key[1], key[0] or None), spec[1]) != spec[0]:
        raise DataError(
            f"{path}: the row of {key[1]} belongs to another shard of {spec[1]}; were the "
            "shards run with the same inputs, spelled the same way?"
        )


def _merge_parquet(paths: Sequence[Path], out: Path) -> MergeSummary:
    """:func:`merge_results` for Parquet in and out, in Arrow: the rows never become Python
    strings (10⁷ rows stay a few GB), only the keys do, one file at a time, for the shard check."""
    parquet = pyarrow_parquet()
    pa = importlib.import_module("pyarrow")
    compute = importlib.import_module("pyarrow.compute")
    columns: list[str] | None = None
    first: Path | None = None
    tables = []
    for path in paths:
        spec = shard_from_name(path)
        for file in parquet_parts(path) if path.is_dir() else [path]:
            try:
                table = parquet.read_table(file)
            except Exception as error:  # pyarrow raises several types for bad files
                raise DataError(f"{file}: not a readable Parquet file ({error})") from None
            names = list(table.column_names)
            columns, first = _check_columns(file, names, columns, first)
            if spec is not None:
                images = table.column(IMAGE_COLUMN).to_pylist()
                references = (
                    table.column(REFERENCE_COLUMN).to_pylist()
                    if REFERENCE_COLUMN in names
                    else [""] * len(images)
                )
                for reference, image in zip(references, images):
                    _check_row_shard(path, spec, (reference or "", image))
            tables.append(table)
    if columns is None:
        raise InvalidInputError("--merge: nothing to merge")
    merged = pa.concat_tables(tables)
    keys = [IMAGE_COLUMN] + ([REFERENCE_COLUMN] if REFERENCE_COLUMN in columns else [])
    counts = merged.select(keys).group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(compute.greater(counts.column("count_all"), 1))
    if repeated.num_rows:
        row = repeated.slice(0, 1).to_pylist()[0]
        name = row[IMAGE_COLUMN] + (
            f", reference {row[REFERENCE_COLUMN]}" if row.get(REFERENCE_COLUMN) else ""
        )
        raise DataError(
            f"the row of {name} is in the sources {row['count_all']} times (and "
            f"{repeated.num_rows} such keys in all); refusing duplicate rows"
        )
    merged = merged.sort_by([(key, "ascending") for key in keys])
    write_parquet_table(merged, out)
    errors = merged.column(ERROR_COLUMN)
    failed = int(compute.sum(compute.not_equal(compute.fill_null(errors, ""), "")).as_py() or 0)
    return MergeSummary(out=out, rows=merged.num_rows, failed=failed, sources=list(paths), columns=columns)