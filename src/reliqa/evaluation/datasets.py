"""Readers for human-rated IQA datasets: one record type, one reader per standard layout.

Every reader returns an :class:`IQADataset`: a list of :class:`IQAItem` (test image, optional
reference, MOS, optional per-image MOS standard deviation) plus the direction of the MOS scale.
Nothing is decoded here; images are read later, once, by the benchmark runner.

Convention (direction):
    ``IQADataset.higher_is_better`` records the scale as the dataset publishes it: False for
    DMOS datasets (LIVE, CSIQ), True otherwise. Values are kept as published;
    :meth:`IQADataset.quality` gives them on a higher-is-better scale (a DMOS d becomes
    min + max − d, a mirror that keeps the range and every std), which is what correlations and
    GMC consume.

Layouts (``load_dataset`` recognises each from its files; give ``layout=`` to force one):

============  ==========================================================================
generic CSV   a ``.csv`` with columns ``image``, ``mos`` and optional ``reference``, ``std``
              (paths relative to the CSV; higher MOS = better unless told otherwise)
LIVE          LIVE IQA release 2: ``dmos.mat`` (``dmos``, ``orgs``), ``refnames_all.mat``,
              folders ``jp2k jpeg wn gblur fastfading`` of ``img<k>.bmp``, ``refimgs/``;
              entries with ``orgs == 1`` (the references themselves) are skipped
CSIQ          ``csiq.DMOS.xlsx`` (needs openpyxl) or a CSV/TSV export of its table
              (``image, dst_idx, dst_type, dst_lev, dmos_std, dmos``), ``src_imgs/``,
              ``dst_imgs/<type>/<image>.<TYPE>.<level>.png``
TID2013       ``mos_with_names.txt``, ``mos_std.txt``, ``distorted_images/``,
              ``reference_images/`` (reference = first three characters of the name)
KADID-10k     ``dmos.csv`` (``dist_img, ref_img, dmos, var``; std = √var), ``images/``
KonIQ-10k     ``koniq10k_scores_and_distributions.csv`` (``image_name, MOS, SD``),
              ``1024x768/``
SPAQ          ``MOS and Image attribute scores.xlsx`` (needs openpyxl) or a CSV export of it
              (``Image name, MOS``), images in ``TestImage/``
PIPAL         ``Train_Label/*.txt`` (``A0001_00_00.bmp,1462.3``: Elo scores), ``Train_Dis/``,
              ``Train_Ref/`` (reference = first five characters of the name)
LIVE Chall.   ``Data/AllMOS_release.mat``, ``Data/AllImages_release.mat``, optional
              ``Data/AllStdDev_release.mat``, ``Images/``; the 7 images in
              ``Images/trainingImages/`` are skipped (the standard 1,162-image set)
BIQ2021       ``<Split> (Images and MOS).csv`` (``Image Name, MOS``), ``Images/``
============  ==========================================================================
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from reliqa.exceptions import DataError, InvalidInputError, UnknownNameError


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


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DataError(f"{path}: cannot read the {what} ({error.strerror})") from None
    except UnicodeDecodeError:
        try:
            return path.read_text(encoding="latin-1")
        except OSError as error:  # pragma: no cover - same file, already readable
            raise DataError(f"{path}: cannot read the {what} ({error})") from None


def _number(text: object, where: str, column: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise DataError(f"{where}: column '{column}' holds {text!r}, not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: column '{column}' is {value} (NaN/inf is not a valid score)")
    return value


def _table(path: Path, what: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (stripped, lower-case) and (line number, row) pairs of a CSV or TSV file."""
    text = _read_text(path, what)
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


def _require_columns(path: Path, header: Sequence[str], needed: Sequence[str]) -> None:
    missing = [name for name in needed if name not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(header)}")


def _xlsx_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and rows of the first sheet of an .xlsx file (needs the optional openpyxl)."""
    try:
        import openpyxl
    except ImportError:
        raise DataError(
            f"{path}: reading .xlsx needs openpyxl (pip install openpyxl), or export the sheet "
            "as CSV next to it"
        ) from None
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types
        raise DataError(f"{path}: cannot read the spreadsheet ({error})") from None
    sheet = workbook.worksheets[0]
    values = list(sheet.iter_rows(values_only=True))
    workbook.close()
    if not values:
        raise DataError(f"{path}: the spreadsheet is empty")
    header = [str(cell).strip().lower() if cell is not None else "" for cell in values[0]]
    rows = []
    for line, cells in enumerate(values[1:], start=2):
        if all(cell is None for cell in cells):
            continue
        rows.append((line, {name: "" if cell is None else str(cell).strip() for name, cell in zip(header, cells)}))
    return header, rows


def _loadmat(path: Path) -> dict[str, np.ndarray]:
    """A MATLAB .mat file (v5; scipy reads it without unpickling)."""
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    try:
        return loadmat(str(path))
    except Exception as error:  # scipy raises ValueError/TypeError/MatReadError
        raise DataError(f"{path}: not a readable MATLAB v5 .mat file ({error})") from None


def _mat_vector(path: Path, key: str) -> np.ndarray:
    data = _loadmat(path)
    if key not in data:
        keys = sorted(k for k in data if not k.startswith("__"))
        raise DataError(f"{path}: no variable '{key}' (has {keys})")
    return np.asarray(data[key]).reshape(-1)


def _mat_strings(path: Path, key: str) -> list[str]:
    """A cell array of strings → Python strings."""
    return [str(np.asarray(cell).reshape(-1)[0]) for cell in _mat_vector(path, key)]


def _case_insensitive_index(folder: Path) -> dict[str, Path]:
    """File name (lower case) → path, for every file under ``folder`` (recursive)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: folder does not exist")
    return {path.name.lower(): path for path in folder.rglob("*") if path.is_file()}


def _non_empty(dataset: IQADataset) -> IQADataset:
    if not dataset.items:
        raise DataError(f"{dataset.root}: the {dataset.name} dataset has no rated images")
    return dataset


# ----------------------------------------------------------------------------------- readers


def read_csv_dataset(path: str | os.PathLike, *, higher_is_better: bool = True, name: str = "csv") -> IQADataset:
    """Generic CSV: ``image[,reference],mos[,std]`` (header required, paths relative to the CSV).

    Raises:
        DataError: unreadable file, missing ``image``/``mos`` columns, empty cells, or
            non-numeric / NaN / inf scores (the message gives the line number).
    """
    path = Path(path)
    header, rows = _table(path, "dataset CSV")
    _require_columns(path, header, ["image", "mos"])
    base = path.parent
    items = []
    for line, row in rows:
        where = f"{path}, line {line}"
        if not row["image"]:
            raise DataError(f"{where}: empty 'image' cell")
        reference = row.get("reference") or None
        std = _number(row["std"], where, "std") if row.get("std") else None
        if std is not None and std < 0:
            raise DataError(f"{where}: column 'std' is negative ({std})")
        items.append(
            IQAItem(
                image=base / row["image"],
                mos=_number(row["mos"], where, "mos"),
                reference=base / reference if reference else None,
                std=std,
            )
        )
    return _non_empty(IQADataset(name, path, items, higher_is_better))


_LIVE_FOLDERS = ("jp2k", "jpeg", "wn", "gblur", "fastfading")


def read_live(root: str | os.PathLike) -> IQADataset:
    """LIVE IQA release 2 (DMOS, lower = better); see the module table."""
    root = Path(root)
    dmos = _mat_vector(root / "dmos.mat", "dmos")
    originals = _mat_vector(root / "dmos.mat", "orgs")
    references = _mat_strings(root / "refnames_all.mat", "refnames_all")
    images = []
    for folder in _LIVE_FOLDERS:
        files = [p for p in (root / folder).glob("img*.bmp") if re.fullmatch(r"img\d+\.bmp", p.name)]
        images += sorted(files, key=lambda p: int(p.stem[3:]))
    if not (len(images) == len(dmos) == len(originals) == len(references)):
        raise DataError(
            f"{root}: LIVE layout mismatch: {len(images)} images in {', '.join(_LIVE_FOLDERS)} "
            f"but {len(dmos)} DMOS, {len(originals)} orgs, {len(references)} reference names"
        )
    items = [
        IQAItem(image=image, mos=float(score), reference=root / "refimgs" / reference)
        for image, score, original, reference in zip(images, dmos, originals, references)
        if not original
    ]
    return _non_empty(IQADataset("live", root, items, higher_is_better=False))


# CSIQ's dst_idx → (folder, token in the file name); file names are matched case-insensitively.
_CSIQ_TYPES = {1: "awgn", 2: "jpeg", 3: "jpeg2000", 4: "fnoise", 5: "blur", 6: "contrast"}


def read_csiq(root: str | os.PathLike) -> IQADataset:
    """CSIQ (DMOS in [0, 1], lower = better, with per-image std); see the module table."""
    root = Path(root)
    table = _csiq_table(root)
    header, rows = _xlsx_rows(table) if table.suffix.lower() == ".xlsx" else _table(table, "CSIQ table")
    _require_columns(table, header, ["image", "dst_idx", "dst_lev", "dmos"])
    distorted = _case_insensitive_index(root / "dst_imgs")
    sources = _case_insensitive_index(root / "src_imgs")
    items = []
    for line, row in rows:
        where = f"{table}, line {line}"
        kind = _CSIQ_TYPES.get(int(_number(row["dst_idx"], where, "dst_idx")))
        if kind is None:
            raise DataError(f"{where}: dst_idx {row['dst_idx']} is not one of 1..6")
        image = row["image"].removesuffix(".0")  # spreadsheets turn the name "1600" into 1600.0
        level = int(_number(row["dst_lev"], where, "dst_lev"))
        token = "awgn" if kind == "awgn" else kind
        name = f"{image}.{token}.{level}.png".lower()
        if name not in distorted:
            raise DataError(f"{where}: no distorted image {name} under {root / 'dst_imgs'}")
        std = _number(row["dmos_std"], where, "dmos_std") if row.get("dmos_std") else None
        items.append(
            IQAItem(
                image=distorted[name],
                mos=_number(row["dmos"], where, "dmos"),
                reference=sources.get(f"{image}.png".lower(), root / "src_imgs" / f"{image}.png"),
                std=std,
            )
        )
    return _non_empty(IQADataset("csiq", root, items, higher_is_better=False))


def _csiq_table(root: Path) -> Path:
    for candidate in ("csiq.DMOS.xlsx", "csiq_dmos.csv", "csiq_dmos.txt", "csiq.DMOS.csv"):
        if (root / candidate).is_file():
            return root / candidate
    raise DataError(f"{root}: no CSIQ score table (csiq.DMOS.xlsx or a csiq_dmos.csv export)")


def read_tid2013(root: str | os.PathLike) -> IQADataset:
    """TID2013 (MOS 0..9, higher = better, with std); see the module table."""
    root = Path(root)
    listing = root / "mos_with_names.txt"
    lines = [line.split() for line in _read_text(listing, "MOS list").splitlines() if line.strip()]
    std_path = root / "mos_std.txt"
    stds = (
        [_number(text, f"{std_path}, line {n}", "std") for n, text in
         enumerate((t for t in _read_text(std_path, "std list").split()), start=1)]
        if std_path.is_file()
        else None
    )
    if stds is not None and len(stds) != len(lines):
        raise DataError(f"{std_path}: {len(stds)} values but {listing.name} has {len(lines)} lines")
    distorted = _case_insensitive_index(root / "distorted_images")
    references = _case_insensitive_index(root / "reference_images")
    items = []
    for number, cells in enumerate(lines, start=1):
        where = f"{listing}, line {number}"
        if len(cells) != 2:
            raise DataError(f"{where}: expected 'MOS name', got {' '.join(cells)!r}")
        mos, name = _number(cells[0], where, "mos"), cells[1]
        reference_name = f"{name[:3]}.bmp".lower()
        items.append(
            IQAItem(
                image=distorted.get(name.lower(), root / "distorted_images" / name),
                mos=mos,
                reference=references.get(reference_name, root / "reference_images" / reference_name),
                std=stds[number - 1] if stds is not None else None,
            )
        )
    return _non_empty(IQADataset("tid2013", root, items, higher_is_better=True))


def read_kadid10k(root: str | os.PathLike) -> IQADataset:
    """KADID-10k (MOS 1..5 in the column ``dmos``, higher = better; std = √var)."""
    root = Path(root)
    table = root / "dmos.csv"
    header, rows = _table(table, "KADID-10k table")
    _require_columns(table, header, ["dist_img", "ref_img", "dmos"])
    items = []
    for line, row in rows:
        where = f"{table}, line {line}"
        variance = _number(row["var"], where, "var") if row.get("var") else None
        if variance is not None and variance < 0:
            raise DataError(f"{where}: column 'var' is negative ({variance})")
        items.append(
            IQAItem(
                image=root / "images" / row["dist_img"],
                mos=_number(row["dmos"], where, "dmos"),
                reference=root / "images" / row["ref_img"],
                std=math.sqrt(variance) if variance is not None else None,
            )
        )
    return _non_empty(IQADataset("kadid10k", root, items, higher_is_better=True))


def read_koniq10k(root: str | os.PathLike) -> IQADataset:
    """KonIQ-10k (MOS 1..5, higher = better, with SD); images in ``1024x768/``."""
    root = Path(root)
    table = root / "koniq10k_scores_and_distributions.csv"
    header, rows = _table(table, "KonIQ-10k table")
    _require_columns(table, header, ["image_name", "mos"])
    items = [
        IQAItem(
            image=root / "1024x768" / row["image_name"],
            mos=_number(row["mos"], f"{table}, line {line}", "MOS"),
            std=_number(row["sd"], f"{table}, line {line}", "SD") if row.get("sd") else None,
        )
        for line, row in rows
    ]
    return _non_empty(IQADataset("koniq10k", root, items, higher_is_better=True))


_SPAQ_TABLE = "MOS and Image attribute scores"


def read_spaq(root: str | os.PathLike) -> IQADataset:
    """SPAQ (MOS 0..100, higher = better); the score sheet as .xlsx (openpyxl) or a CSV export."""
    root = Path(root)
    tables = sorted(root.rglob(f"{_SPAQ_TABLE}.csv")) or sorted(root.rglob(f"{_SPAQ_TABLE}.xlsx"))
    if not tables:
        raise DataError(f"{root}: no '{_SPAQ_TABLE}.xlsx' (or .csv export) found")
    table = tables[0]
    header, rows = _xlsx_rows(table) if table.suffix.lower() == ".xlsx" else _table(table, "SPAQ table")
    _require_columns(table, header, ["image name", "mos"])
    folder = next((p for p in root.rglob("TestImage") if p.is_dir()), root / "TestImage")
    items = [
        IQAItem(image=folder / row["image name"], mos=_number(row["mos"], f"{table}, line {line}", "MOS"))
        for line, row in rows
    ]
    return _non_empty(IQADataset("spaq", root, items, higher_is_better=True))


def read_pipal(root: str | os.PathLike) -> IQADataset:
    """PIPAL training set (Elo scores, higher = better); see the module table."""
    root = Path(root)
    labels = sorted((root / "Train_Label").glob("*.txt"))
    if not labels:
        raise DataError(f"{root}: no label files in Train_Label/")
    references = _case_insensitive_index(root / "Train_Ref")
    items = []
    for label in labels:
        for number, line in enumerate(_read_text(label, "PIPAL labels").splitlines(), start=1):
            if not line.strip():
                continue
            cells = [cell.strip() for cell in line.split(",")]
            where = f"{label}, line {number}"
            if len(cells) != 2:
                raise DataError(f"{where}: expected 'image,score', got {line!r}")
            name, score = cells
            suffix = Path(name).suffix.lower()
            reference = references.get(f"{name[:5]}{suffix}".lower(), root / "Train_Ref" / f"{name[:5]}{suffix}")
            items.append(
                IQAItem(image=root / "Train_Dis" / name, mos=_number(score, where, "score"), reference=reference)
            )
    return _non_empty(IQADataset("pipal", root, items, higher_is_better=True))


def read_live_challenge(root: str | os.PathLike) -> IQADataset:
    """LIVE In the Wild Challenge (MOS 0..100, higher = better); see the module table."""
    root = Path(root)
    data = root / "Data"
    mos = _mat_vector(data / "AllMOS_release.mat", "AllMOS_release")
    names = _mat_strings(data / "AllImages_release.mat", "AllImages_release")
    std_file = data / "AllStdDev_release.mat"
    stds = _mat_vector(std_file, "AllStdDev_release") if std_file.is_file() else None
    if len(mos) != len(names) or (stds is not None and len(stds) != len(names)):
        raise DataError(f"{data}: the .mat files disagree on the number of images")
    training = root / "Images" / "trainingImages"
    items = [
        IQAItem(
            image=root / "Images" / name,
            mos=_number(score, f"{data / 'AllMOS_release.mat'}, entry {n}", "AllMOS_release"),
            std=float(stds[n - 1]) if stds is not None else None,
        )
        for n, (name, score) in enumerate(zip(names, mos), start=1)
        if not (training / name).is_file()
    ]
    return _non_empty(IQADataset("live_challenge", root, items, higher_is_better=True))


def read_biq2021(root: str | os.PathLike, *, split: str = "Test") -> IQADataset:
    """BIQ2021 (MOS 0..1, higher = better): ``<split> (Images and MOS).csv`` + ``Images/``."""
    root = Path(root)
    table = root / f"{split} (Images and MOS).csv"
    if not table.is_file():
        found = sorted(p.name for p in root.glob("* (Images and MOS).csv"))
        raise DataError(f"{root}: no '{table.name}' (found {found or 'no BIQ2021 table'})")
    header, rows = _table(table, "BIQ2021 table")
    _require_columns(table, header, ["image name", "mos"])
    items = [
        IQAItem(image=root / "Images" / row["image name"], mos=_number(row["mos"], f"{table}, line {line}", "MOS"))
        for line, row in rows
    ]
    return _non_empty(IQADataset("biq2021", root, items, higher_is_better=True))


# ----------------------------------------------------------------------------------- detection

_READERS: dict[str, Callable[[Path], IQADataset]] = {
    "csv": read_csv_dataset,
    "live": read_live,
    "csiq": read_csiq,
    "tid2013": read_tid2013,
    "kadid10k": read_kadid10k,
    "koniq10k": read_koniq10k,
    "spaq": read_spaq,
    "pipal": read_pipal,
    "live_challenge": read_live_challenge,
    "biq2021": read_biq2021,
}

LAYOUTS: tuple[str, ...] = tuple(_READERS)
"""Layout names accepted by :func:`load_dataset`."""


def detect_layout(path: str | os.PathLike) -> str:
    """The layout of a dataset folder (or ``"csv"`` for a CSV file), from its signature files.

    Raises:
        DataError: the path does not exist or matches no known layout.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in (".csv", ".tsv", ".txt"):
            return "biq2021" if path.name.endswith(" (Images and MOS).csv") else "csv"
        raise DataError(f"{path}: a dataset file must be a CSV")
    if not path.is_dir():
        raise DataError(f"{path}: no such dataset folder or CSV file")
    signatures = (
        ("live", lambda p: (p / "dmos.mat").is_file() and (p / "refnames_all.mat").is_file()),
        ("live_challenge", lambda p: (p / "Data" / "AllMOS_release.mat").is_file()),
        ("tid2013", lambda p: (p / "mos_with_names.txt").is_file()),
        ("kadid10k", lambda p: (p / "dmos.csv").is_file()),
        ("koniq10k", lambda p: (p / "koniq10k_scores_and_distributions.csv").is_file()),
        ("pipal", lambda p: (p / "Train_Label").is_dir()),
        ("csiq", lambda p: (p / "dst_imgs").is_dir() and (p / "src_imgs").is_dir()),
        ("biq2021", lambda p: any(p.glob("* (Images and MOS).csv"))),
        ("spaq", lambda p: any(p.rglob(f"{_SPAQ_TABLE}.*"))),
    )
    for name, matches in signatures:
        if matches(path):
            return name
    tables = sorted(path.glob("*.csv"))
    if len(tables) == 1:
        return "csv"
    raise DataError(
        f"{path}: not a known dataset layout ({', '.join(LAYOUTS)}); give a CSV with columns "
        "image[,reference],mos[,std] instead"
    )


def load_dataset(path: str | os.PathLike, *, layout: str | None = None) -> IQADataset:
    """Read a dataset folder (layout auto-detected, or forced with ``layout``) or a CSV.

    Raises:
        UnknownNameError: ``layout`` is not one of :data:`LAYOUTS`.
        DataError: the files are missing, malformed, or hold non-finite scores.
    """
    path = Path(path)
    layout = layout or detect_layout(path)
    reader = _READERS.get(layout)
    if reader is None:
        raise UnknownNameError(f"unknown dataset layout {layout!r}; known: {', '.join(LAYOUTS)}")
    if layout == "csv" and path.is_dir():
        path = sorted(path.glob("*.csv"))[0] if any(path.glob("*.csv")) else path / "missing.csv"
    if layout == "biq2021" and path.is_file():
        return read_biq2021(path.parent, split=path.name.removesuffix(" (Images and MOS).csv"))
    return reader(path)
