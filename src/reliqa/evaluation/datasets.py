"""Human-rated IQA datasets: the record types, the generic CSV reader and the table helpers.

Every reader returns an :class:`IQADataset`: a list of :class:`IQAItem` (test image, optional
reference, MOS, optional per-image MOS standard deviation) plus the direction of the MOS scale.
Nothing is decoded here; images are read later, once, by the benchmark runner. The readers of
the published layouts (LIVE, CSIQ, TID2013, …), layout detection and :func:`load_dataset
<reliqa.evaluation.dataset_layouts.load_dataset>` are :mod:`reliqa.evaluation.dataset_layouts`.

Convention (direction):
    ``IQADataset.higher_is_better`` records the scale as the dataset publishes it: False for
    DMOS datasets (LIVE, CSIQ), True otherwise. Values are kept as published;
    :meth:`IQADataset.quality` gives them on a higher-is-better scale (a DMOS d becomes
    min + max − d, a mirror that keeps the range and every std), which is what correlations and
    GMC consume.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from reliqa.exceptions import DataError, InvalidInputError


@dataclass(frozen=True)
class IQAItem:
    """One rated image. Paths are absolute or relative to the working directory."""

    image: Path
    mos: float
    reference: Path | None = None
    std: float | None = None


@dataclass
class IQADataset:
    """A human-rated dataset.

    Attributes:
        name: layout name (``"tid2013"``, ``"biq2021"``, ``"csv"``, …).
        root: the folder (or CSV file) it was read from.
        items: the rated images, in the dataset's published order.
        higher_is_better: direction of the published MOS scale (False for DMOS).
    """

    name: str
    root: Path
    items: list[IQAItem] = field(default_factory=list)
    higher_is_better: bool = True

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[IQAItem]:
        return iter(self.items)

    def __getitem__(self, index: int) -> IQAItem:
        return self.items[index]

    @property
    def full_reference(self) -> bool:
        """True when every item has a reference image."""
        return bool(self.items) and all(item.reference is not None for item in self.items)

    def head(self, count: int) -> IQADataset:
        """The first ``count`` items (``--limit``), same metadata."""
        if count < 1:
            raise InvalidInputError(f"--limit must be at least 1, got {count}")
        return replace(self, items=self.items[:count])

    def mos(self) -> np.ndarray:
        """(N,) float64 scores as published."""
        return np.array([item.mos for item in self.items], dtype=np.float64)

    def quality(self) -> np.ndarray:
        """(N,) float64 scores on a higher-is-better scale (DMOS mirrored as min + max − d)."""
        values = self.mos()
        if self.higher_is_better or values.size == 0:
            return values
        return values.min() + values.max() - values

    def std(self) -> np.ndarray | None:
        """(N,) float64 per-image MOS standard deviations, or None if any item lacks one."""
        if not self.items or any(item.std is None for item in self.items):
            return None
        return np.array([item.std for item in self.items], dtype=np.float64)


# ----------------------------------------------------------------------------------- helpers


def read_text(path: Path, what: str) -> str:
    """A text file (UTF-8, BOM allowed, else Latin-1); ``what`` names it in the error."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DataError(f"{path}: cannot read the {what} ({error.strerror})") from None
    except UnicodeDecodeError:
        try:
            return path.read_text(encoding="latin-1")
        except OSError as error:  # pragma: no cover - same file, already readable
            raise DataError(f"{path}: cannot read the {what} ({error})") from None


def number_cell(text: object, where: str, column: str) -> float:
    """A finite number from a table cell; the error names ``where`` and the column."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise DataError(f"{where}: column '{column}' holds {text!r}, not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: column '{column}' is {value} (NaN/inf is not a valid score)")
    return value


def read_table(path: Path, what: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (stripped, lower-case) and (line number, row) pairs of a CSV or TSV file."""
    text = read_text(path, what)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [cell.strip().lower() for cell in next(reader, [])]
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not any(cell.strip() for cell in cells):
            continue
        rows.append((line, {name: cells[i].strip() if i < len(cells) else "" for i, name in enumerate(header)}))
    return header, rows


def require_columns(path: Path, header: Sequence[str], needed: Sequence[str]) -> None:
    """Raise a :class:`DataError` naming the missing columns of ``path``."""
    missing = [name for name in needed if name not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(header)}")


def non_empty(dataset: IQADataset) -> IQADataset:
    """``dataset``, or a :class:`DataError` when it has no rated images."""
    if not dataset.items:
        raise DataError(f"{dataset.root}: the {dataset.name} dataset has no rated images")
    return dataset


# ----------------------------------------------------------------------------------- the generic CSV


def read_csv_dataset(path: str | os.PathLike, *, higher_is_better: bool = True, name: str = "csv") -> IQADataset:
    """Generic CSV: ``image[,reference],mos[,std]`` (header required, paths relative to the CSV).

    Raises:
        DataError: unreadable file, missing ``image``/``mos`` columns, empty cells, or
            non-numeric / NaN / inf scores (the message gives the line number).
    """
    path = Path(path)
    header, rows = read_table(path, "dataset CSV")
    require_columns(path, header, ["image", "mos"])
    base = path.parent
    items = []
    for line, row in rows:
        where = f"{path}, line {line}"
        if not row["image"]:
            raise DataError(f"{where}: empty 'image' cell")
        reference = row.get("reference") or None
        std = number_cell(row["std"], where, "std") if row.get("std") else None
        if std is not None and std < 0:
            raise DataError(f"{where}: column 'std' is negative ({std})")
        items.append(
            IQAItem(
                image=base / row["image"],
                mos=number_cell(row["mos"], where, "mos"),
                reference=base / reference if reference else None,
                std=std,
            )
        )
    return non_empty(IQADataset(name, path, items, higher_is_better))
