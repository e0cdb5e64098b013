"""The resumable CSV journal of a batch run.

**The journal** (:class:`ResultsJournal`) is the output CSV itself: the header is written and
fsynced first, then each finished item is one complete CSV line written with a single ``write``
and flushed; ``fsync`` runs every :data:`FSYNC_EVERY` rows. ``kill -9`` leaves at most a torn
last line, which the next run cuts off before appending — **but only after it has checked that
the file is a results CSV with this run's header**: a command never modifies a file it then
refuses (``--out victim.png`` leaves ``victim.png`` byte for byte as it was).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from reliqa.batch.inputs import ERROR_COLUMN, IMAGE_COLUMN, REFERENCE_COLUMN
from reliqa.exceptions import DataError, InvalidInputError, OutputExistsError

FSYNC_EVERY: int = 32
"""Rows between two ``fsync`` calls. A flush after every row already survives ``kill -9``;
fsync only adds safety against power loss, so it is amortised."""


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

