"""Results files of batch runs: the resumable CSV journal, Parquet output, and shard merging.

**The journal** (:class:`ResultsJournal`) is the output CSV itself: the header is written and
fsynced first, then each finished item is one complete CSV line written with a single ``write``
and flushed; ``fsync`` runs every :data:`FSYNC_EVERY` rows. ``kill -9`` leaves at most a torn
last line, which the next run cuts off before appending — **but only after it has checked that
the file is a results CSV with this run's header**: a command never modifies a file it then
refuses (``--out victim.png`` leaves ``victim.png`` byte for byte as it was).

**Merging** (:func:`merge_results`) joins the outputs of ``reliqa batch --shard I/N`` (or any
results files with the same columns) into one CSV or Parquet file; it refuses different column
sets, duplicate rows, an incomplete set of shards and rows that belong to another shard.
"""

from __future__ import annotations

import csv
import importlib
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Self

from reliqa.evaluation.batch_inputs import (
    ERROR_COLUMN,
    IMAGE_COLUMN,
    MAPS_COLUMN,
    REFERENCE_COLUMN,
    BatchItem,
    shard_from_name,
    shard_of,
)
from reliqa.exceptions import DataError, InvalidInputError, OutputExistsError

FSYNC_EVERY: int = 32
"""Rows between two ``fsync`` calls. A flush after every row already survives ``kill -9``;
fsync only adds safety against power loss, so it is amortised."""

TEXT_COLUMNS = (IMAGE_COLUMN, REFERENCE_COLUMN, MAPS_COLUMN, ERROR_COLUMN)
"""Columns that hold text; every other column of a results file is a score (float64)."""


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) folded to one space."""
    return " ".join(text.split())


def format_value(value: object) -> str:
    """A results cell: ``repr`` of a float (exact round trip), "" for None/NaN, one-line text."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return one_line(str(value))


def check_output_path(out: str | os.PathLike[str], *, option: str = "--out") -> Path:
    """Refuse, before any work, an output that is a folder or cannot be created.

    Raises:
        InvalidInputError: ``out`` is an existing folder, or its folder cannot be created.
    """
    path = Path(out)
    if path.is_dir():
        raise InvalidInputError(
            f"{option} {path}: is a folder; give a file name ending in .csv or .parquet"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInputError(
            f"{option} {path}: cannot create its folder {path.parent} ({error.strerror})"
        ) from None
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{option} {path}: the folder {path.parent} is not writable")
    return path


class ResultsJournal:
    """Append-only CSV of results that a later run can resume.

    Each row is written with one ``write`` of a complete line and flushed, so a killed process
    leaves at most a torn last line (no trailing newline), which :meth:`open` removes once it
    has checked the header.

    Args:
        path: the CSV file (created with a header when missing or empty).
        columns: the header; an existing file must have exactly this header.

    Raises:
        OutputExistsError: the existing file is not a results CSV or has another header (other
            metrics, other mode): it is not this run's, so it is left untouched (CLI exit 2).
        DataError: the file cannot be read or written.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.rows: list[dict[str, str]] = []
        self._handle: io.BufferedWriter | None = None
        self._unsynced = 0

    def _header_bytes(self) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(self.columns)
        return buffer.getvalue().encode("utf-8")

    def _not_results(self, why: str = "") -> OutputExistsError:
        return OutputExistsError(
            f"{self.path}: exists but is not a reliqa results CSV{why}; give another --out "
            "(this file was left as it is)"
        )

    def open(self) -> Self:
        """Check an existing file (read only), then cut a torn last line and open for append."""
        if self.path.is_dir():
            raise DataError(f"{self.path}: is a folder, not a results CSV")
        try:
            existing = self.path.read_bytes() if self.path.exists() else b""
        except OSError as error:
            raise DataError(f"{self.path}: cannot read it ({error.strerror})") from None
        # 1. Decide, reading only, whether this file is ours. Nothing is written before this.
        first_newline = existing.find(b"\n")
        if existing and first_newline < 0:
            # No complete line. Only a header torn by a killed start is ours (rewritten below).
            if not self._header_bytes().startswith(existing):
                raise self._not_results(" (no complete line)")
            existing = b""
        complete = existing[: existing.rfind(b"\n") + 1]
        if complete:
            self.rows = self._parse(complete)
        # 2. Only now modify: cut a torn last line, or start the file with its header.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if complete:
                if len(complete) != len(existing):
                    with open(self.path, "r+b") as handle:
                        handle.truncate(len(complete))
                self._handle = open(self.path, "ab")
            else:
                self._handle = open(self.path, "wb")
                self._append_line(self.columns)
                self._sync()
        except OSError as error:
            raise DataError(f"{self.path}: cannot write it ({error.strerror})") from None
        return self

    def _parse(self, data: bytes) -> list[dict[str, str]]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise self._not_results(" (not UTF-8 text)") from None
        reader = csv.reader(io.StringIO(text))
        try:
            header = next(reader, [])
        except csv.Error:
            raise self._not_results() from None
        if header != self.columns:
            if IMAGE_COLUMN not in header or ERROR_COLUMN not in header:
                raise self._not_results()
            raise OutputExistsError(
                f"{self.path}: exists with the columns {header}, but this run writes "
                f"{self.columns}; give another --out (or delete the file) to start afresh"
            )
        try:
            return [dict(zip(header, row)) for row in reader if len(row) == len(header)]
        except csv.Error as error:
            raise DataError(f"{self.path}: a damaged results CSV ({error})") from None

    @property
    def done(self) -> set[tuple[str, str]]:
        """Keys (reference or "", image) of every row already in the file."""
        return {(row.get(REFERENCE_COLUMN, ""), row[IMAGE_COLUMN]) for row in self.rows}

    def _append_line(self, cells: Sequence[str]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        if self._handle is None:
            raise RuntimeError(f"{self.path}: the journal is not open")
        self._handle.write(buffer.getvalue().encode("utf-8"))
        self._handle.flush()

    def write(self, row: dict[str, object]) -> None:
        """Append one row (missing columns are empty cells) as one flushed line."""
        cells = [format_value(row.get(column)) for column in self.columns]
        self._append_line(cells)
        self.rows.append(dict(zip(self.columns, cells)))
        self._unsynced += 1
        if self._unsynced >= FSYNC_EVERY:
            self._sync()

    def _sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        self._unsynced = 0

    def close(self) -> None:
        if self._handle is not None:
            self._sync()
            self._handle.close()
            self._handle = None

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------- Parquet


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
    parquet = pyarrow_parquet()
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        parquet.write_table(arrow_table(rows, columns), temporary)
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


# ----------------------------------------------------------------------------------- merging


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
            missing, from different N, or holding a row of another shard; ``out`` exists.
        InvalidInputError: no sources, or ``out`` cannot be written.
    """
    paths = [Path(source) for source in sources]
    if not paths:
        raise InvalidInputError("--merge: give the results files (shards) to merge")
    out = Path(out)
    if out.exists():
        raise DataError(f"{out}: exists; merge writes a new file (delete it or give another --out)")
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
    temporary = out.with_name(f".{out.name}.tmp")
    try:
        parquet.write_table(merged, temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, out)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise DataError(f"{out}: cannot write it ({error.strerror or error})") from None
    errors = merged.column(ERROR_COLUMN)
    failed = int(compute.sum(compute.not_equal(compute.fill_null(errors, ""), "")).as_py() or 0)
    return MergeSummary(out=out, rows=merged.num_rows, failed=failed, sources=list(paths), columns=columns)
