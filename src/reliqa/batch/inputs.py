"""Inputs of a batch run: files, folders, globs, pairs → :class:`BatchItem` s, and shards.

Three modes (``reliqa batch`` docs: docs/batch.md):

(a) files, folders or glob patterns of images (no-reference scoring, :func:`items_from_inputs`);
(b) a CSV of (reference, test) pairs (:func:`items_from_pairs_csv`);
(c) test images matched to a reference folder by file stem (:func:`items_from_ref_dir`).

A list of image paths in a CSV or Parquet file (:func:`items_from_path_list`) feeds the Ray
engine (:mod:`reliqa.batch.distributed`) at scales where a folder walk is not practical.

**Shards.** :func:`shard_of` puts an item in shard ``I`` of ``N`` by a hash of its key (the
``reference`` and ``image`` strings the results rows carry), so the partition does not depend
on file-system order, on the other inputs, or on which items a resumed run skips.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reliqa.batch.parquet import pyarrow_parquet
from reliqa.exceptions import DataError, InvalidInputError, UsageError
from reliqa.io import expand_image_paths, list_images

IMAGE_COLUMN = "image"
REFERENCE_COLUMN = "reference"
MAPS_COLUMN = "maps"
ERROR_COLUMN = "error"

_TEST_COLUMNS = ("test", "image", "distorted", "path")


@dataclass(frozen=True)
class BatchItem:
    """One row of a batch run: a test image and, in pair modes, its reference.

    ``problem`` is an error known before decoding (e.g. no reference matched the test image).
    """

    image: str
    reference: str | None = None
    problem: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """(reference or "", image): the identity of a results row (resume, merge, shards)."""
        return (self.reference or "", self.image)


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns → image paths, in input order.

    A pattern that is not an existing path is expanded with :func:`glob.glob` (``**`` recurses);
    a missing plain file is kept so that it becomes an error row rather than vanishing.

    Raises:
        InvalidInputError: a glob pattern or folder matched no image at all.
    """
    paths: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if not path.exists() and glob.has_magic(text):
            matches = sorted(Path(match) for match in glob.glob(text, recursive=True))
            files = [match for match in matches if match.is_file()]
            if not files:
                raise InvalidInputError(f"{text}: the pattern matches no file")
            paths.extend(files)
        elif path.is_dir():
            images = expand_image_paths([path])
            if not images:
                raise InvalidInputError(f"{path}: the folder contains no image files")
            paths.extend(images)
        else:
            paths.append(path)
    return _unique(paths)


def _unique(paths: Sequence[Path]) -> list[Path]:
    seen: set[str] = set()
    kept = []
    for path in paths:
        if str(path) not in seen:
            seen.add(str(path))
            kept.append(path)
    return kept


def _unique_items(items: Sequence[BatchItem]) -> list[BatchItem]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            kept.append(item)
    return kept


def items_from_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[BatchItem]:
    """Mode (a): images alone (no-reference scoring)."""
    return [BatchItem(image=str(path)) for path in expand_inputs(inputs)]


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():  # an option naming nothing is bad usage; a bad file, a failed input
        raise UsageError(f"{path}: no such file (the {what})")
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DataError(f"{path}: cannot read the {what} ({error.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: the {what} is not UTF-8 text") from None


def _cells(row: dict[str | None, str | None]) -> dict[str, str]:
    """A CSV row with its column names folded to lower case and its cells stripped."""
    return {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}


def _items_from_rows(
    rows: Iterable[dict[str, str]], base: Path, test_column: str, empty_cell: Callable[[int], str]
) -> list[BatchItem]:
    """Rows of cells → items, their paths relative to ``base``; a row without a ``reference``
    cell is an image alone. An empty cell is a ``DataError(empty_cell(n))``, n = the row's
    number (1 = the first row after the header)."""
    items = []
    for number, row in enumerate(rows, start=1):
        test, reference = row.get(test_column, ""), row.get(REFERENCE_COLUMN)
        if not test or reference == "":
            raise DataError(empty_cell(number))
        items.append(
            BatchItem(
                image=str(base / test),
                reference=None if reference is None else str(base / reference),
            )
        )
    return items


def items_from_pairs_csv(path: str | os.PathLike[str]) -> list[BatchItem]:
    """Mode (b): a CSV with columns ``reference`` and ``test`` (or ``image``).

    Relative paths are taken relative to the CSV's folder.

    Raises:
        DataError: the file is missing, has no such columns, or a row has an empty cell.
    """
    csv_path = Path(path)
    reader = csv.DictReader(io.StringIO(_read_text(csv_path, "pairs CSV")))
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    test_column = next((name for name in _TEST_COLUMNS[:3] if name in fields), None)
    if REFERENCE_COLUMN not in fields or test_column is None:
        raise DataError(
            f"{csv_path}: a pairs CSV needs the columns 'reference' and 'test' (or 'image'); "
            f"found {fields}"
        )
    items = _items_from_rows(
        map(_cells, reader), csv_path.parent, test_column,
        lambda row: f"{csv_path}, line {row + 1}: empty 'reference' or '{test_column}' cell",
    )
    if not items:
        raise DataError(f"{csv_path}: the pairs CSV has no rows")
    return _unique_items(items)


def items_from_ref_dir(
    inputs: Iterable[str | os.PathLike[str]], ref_dir: str | os.PathLike[str]
) -> list[BatchItem]:
    """Mode (c): test images matched to the reference of the same file stem in ``ref_dir``.

    A test image without a reference (or with two, e.g. ``a.png`` and ``a.jpg``) becomes an
    error row; it does not stop the run.
    """
    if not Path(ref_dir).is_dir():
        raise UsageError(f"--ref-dir {ref_dir}: not a folder")
    references: dict[str, list[Path]] = {}
    for path in list_images(ref_dir):
        references.setdefault(path.stem, []).append(path)
    items = []
    for test in expand_inputs(inputs):
        matches = references.get(test.stem, [])
        if len(matches) == 1:
            items.append(BatchItem(image=str(test), reference=str(matches[0])))
        else:
            problem = (
                f"{test}: no reference named '{test.stem}.*' in {ref_dir}"
                if not matches
                else f"{test}: several references named '{test.stem}.*' in {ref_dir}: "
                + ", ".join(path.name for path in matches)
            )
            items.append(BatchItem(image=str(test), reference="", problem=problem))
    return items


def items_from_path_list(path: str | os.PathLike[str]) -> list[BatchItem]:
    """A CSV or Parquet file listing images (column ``image``, ``test`` or ``path``).

    With a ``reference`` column too it is a list of pairs (as :func:`items_from_pairs_csv`).
    Relative paths are relative to the file's folder.

    Raises:
        DataError: unreadable file, no such column, or an empty cell.
    """
    list_path = Path(path)
    if list_path.suffix.lower() == ".parquet":
        try:
            table = pyarrow_parquet().read_table(list_path)
        except OSError as error:
            raise DataError(f"{list_path}: cannot read the Parquet list of paths ({error})") from None
        columns = {name.strip().lower(): name for name in table.column_names}
        rows: list[dict[str, str]] = [
            {key: str(row[name] or "").strip() for key, name in columns.items()}
            for row in table.to_pylist()
        ]
    else:
        reader = csv.DictReader(io.StringIO(_read_text(list_path, "list of paths")))
        rows = [_cells(row) for row in reader]
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    if REFERENCE_COLUMN in columns:
        test_column = next((name for name in _TEST_COLUMNS if name in columns), None)
    else:
        test_column = next((name for name in ("image", "path", "test") if name in columns), None)
    if test_column is None:
        raise DataError(
            f"{list_path}: a list of images needs a column 'image' (or 'path'), pairs also "
            f"'reference'; found {sorted(columns)}"
        )
    items = _items_from_rows(
        rows, list_path.parent, test_column, lambda row: f"{list_path}, row {row}: an empty path cell"
    )
    if not items:
        raise DataError(f"{list_path}: the list of images is empty")
    return _unique_items(items)


PATH_LIST_SUFFIXES = (".csv", ".parquet")
"""An INPUT file with one of these suffixes is a list of image paths, not an image."""


def items_from_sources(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    pairs: str | os.PathLike[str] | None = None,
    ref_dir: str | os.PathLike[str] | None = None,
) -> list[BatchItem]:
    """The items of a run, as ``reliqa batch`` reads its arguments.

    ``pairs``: a pairs CSV (INPUTs unused); ``ref_dir``: INPUTs are test images matched by stem;
    otherwise INPUTs are images, folders, globs, or ``.csv``/``.parquet`` lists of paths
    (:func:`items_from_path_list`), in the order given.
    """
    if pairs is not None:
        return items_from_pairs_csv(pairs)
    if ref_dir is not None:
        return items_from_ref_dir(inputs, ref_dir)
    items: list[BatchItem] = []
    images: list[str | os.PathLike[str]] = []
    for source in inputs:
        if Path(source).suffix.lower() in PATH_LIST_SUFFIXES and Path(source).is_file():
            items += items_from_inputs(images) if images else []
            images = []
            items += items_from_path_list(source)
        else:
            images.append(source)
    items += items_from_inputs(images) if images else []
    return _unique_items(items)


# ----------------------------------------------------------------------------------- shards

_SHARD_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_SHARD_NAME = re.compile(r"\.shard-(\d+)-of-(\d+)$")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"2/4"`` → (2, 4). Shards are numbered from 1 (SLURM ``$SLURM_ARRAY_TASK_ID`` style).

    Raises:
        InvalidInputError: not ``I/N`` with 1 ≤ I ≤ N.
    """
    match = _SHARD_SPEC.match(spec)
    if match is None:
        raise InvalidInputError(f"--shard {spec!r}: write I/N, e.g. 2/4 (shards 1/4 … 4/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= count:
        raise InvalidInputError(f"--shard {spec}: I must be between 1 and N (here 1..{count})")
    return index, count


def shard_of(item: BatchItem, count: int) -> int:
    """The shard (1..count) of ``item``: a hash of its key, the same on every machine."""
    digest = hashlib.sha1(f"{item.key[0]}\0{item.key[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select_shard(items: Sequence[BatchItem], index: int, count: int) -> list[BatchItem]:
    """The items of shard ``index`` of ``count`` (input order kept)."""
    if count == 1:
        return list(items)
    return [item for item in items if shard_of(item, count) == index]


def shard_output(out: str | os.PathLike[str], index: int, count: int) -> Path:
    """The journal of one shard: ``results.csv`` → ``results.shard-2-of-4.csv``."""
    path = Path(out)
    return path.with_name(f"{path.stem}.shard-{index}-of-{count}{path.suffix}")


def shard_from_name(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(I, N) from a file named by :func:`shard_output`, else None."""
    match = _SHARD_NAME.search(Path(path).stem)
    return (int(match.group(1)), int(match.group(2))) if match else None
