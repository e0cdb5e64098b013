"""Readers of the published IQA dataset layouts, layout detection and :func:`load_dataset`.

Every reader returns a :class:`~reliqa.evaluation.datasets.IQADataset` (records, direction of
the MOS scale: :mod:`reliqa.evaluation.datasets`).

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

import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from reliqa.evaluation.datasets import (
    IQADataset,
    IQAItem,
    non_empty,
    number_cell,
    read_csv_dataset,
    read_table,
    read_text,
    require_columns,
)
from reliqa.exceptions import DataError, UnknownNameError

# ----------------------------------------------------------------------------------- helpers


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


# ----------------------------------------------------------------------------------- readers


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
    return non_empty(IQADataset("live", root, items, higher_is_better=False))


# CSIQ's dst_idx → (folder, token in the file name); file names are matched case-insensitively.
_CSIQ_TYPES = {1: "awgn", 2: "jpeg", 3: "jpeg2000", 4: "fnoise", 5: "blur", 6: "contrast"}


def read_csiq(root: str | os.PathLike) -> IQADataset:
    """CSIQ (DMOS in [0, 1], lower = better, with per-image std); see the module table."""
    root = Path(root)
    table = _csiq_table(root)
    header, rows = _xlsx_rows(table) if table.suffix.lower() == ".xlsx" else read_table(table, "CSIQ table")
    require_columns(table, header, ["image", "dst_idx", "dst_lev", "dmos"])
    distorted = _case_insensitive_index(root / "dst_imgs")
    sources = _case_insensitive_index(root / "src_imgs")
    items = []
    for line, row in rows:
        where = f"{table}, line {line}"
        kind = _CSIQ_TYPES.get(int(number_cell(row["dst_idx"], where, "dst_idx")))
        if kind is None:
            raise DataError(f"{where}: dst_idx {row['dst_idx']} is not one of 1..6")
        image = row["image"].removesuffix(".0")  # spreadsheets turn the name "1600" into 1600.0
        level = int(number_cell(row["dst_lev"], where, "dst_lev"))
        token = "awgn" if kind == "awgn" else kind
        name = f"{image}.{token}.{level}.png".lower()
        if name not in distorted:
            raise DataError(f"{where}: no distorted image {name} under {root / 'dst_imgs'}")
        std = number_cell(row["dmos_std"], where, "dmos_std") if row.get("dmos_std") else None
        items.append(
            IQAItem(
                image=distorted[name],
                mos=number_cell(row["dmos"], where, "dmos"),
                reference=sources.get(f"{image}.png".lower(), root / "src_imgs" / f"{image}.png"),
                std=std,
            )
        )
    return non_empty(IQADataset("csiq", root, items, higher_is_better=False))


def _csiq_table(root: Path) -> Path:
    for candidate in ("csiq.DMOS.xlsx", "csiq_dmos.csv", "csiq_dmos.txt", "csiq.DMOS.csv"):
        if (root / candidate).is_file():
            return root / candidate
    raise DataError(f"{root}: no CSIQ score table (csiq.DMOS.xlsx or a csiq_dmos.csv export)")


def read_tid2013(root: str | os.PathLike) -> IQADataset:
    """TID2013 (MOS 0..9, higher = better, with std); see the module table."""
    root = Path(root)
    listing = root / "mos_with_names.txt"
    lines = [line.split() for line in read_text(listing, "MOS list").splitlines() if line.strip()]
    std_path = root / "mos_std.txt"
    stds = (
        [number_cell(text, f"{std_path}, line {n}", "std") for n, text in
         enumerate((t for t in read_text(std_path, "std list").split()), start=1)]
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
        mos, name = number_cell(cells[0], where, "mos"), cells[1]
        reference_name = f"{name[:3]}.bmp".lower()
        items.append(
            IQAItem(
                image=distorted.get(name.lower(), root / "distorted_images" / name),
                mos=mos,
                reference=references.get(reference_name, root / "reference_images" / reference_name),
                std=stds[number - 1] if stds is not None else None,
            )
        )
    return non_empty(IQADataset("tid2013", root, items, higher_is_better=True))


def read_kadid10k(root: str | os.PathLike) -> IQADataset:
    """KADID-10k (MOS 1..5 in the column ``dmos``, higher = better; std = √var)."""
    root = Path(root)
    table = root / "dmos.csv"
    header, rows = read_table(table, "KADID-10k table")
    require_columns(table, header, ["dist_img", "ref_img", "dmos"])
    items = []
    for line, row in rows:
        where = f"{table}, line {line}"
        variance = number_cell(row["var"], where, "var") if row.get("var") else None
        if variance is not None and variance < 0:
            raise DataError(f"{where}: column 'var' is negative ({variance})")
        items.append(
            IQAItem(
                image=root / "images" / row["dist_img"],
                mos=number_cell(row["dmos"], where, "dmos"),
                reference=root / "images" / row["ref_img"],
                std=math.sqrt(variance) if variance is not None else None,
            )
        )
    return non_empty(IQADataset("kadid10k", root, items, higher_is_better=True))


def read_koniq10k(root: str | os.PathLike) -> IQADataset:
    """KonIQ-10k (MOS 1..5, higher = better, with SD); images in ``1024x768/``."""
    root = Path(root)
    table = root / "koniq10k_scores_and_distributions.csv"
    header, rows = read_table(table, "KonIQ-10k table")
    require_columns(table, header, ["image_name", "mos"])
    items = [
        IQAItem(
            image=root / "1024x768" / row["image_name"],
            mos=number_cell(row["mos"], f"{table}, line {line}", "MOS"),
            std=number_cell(row["sd"], f"{table}, line {line}", "SD") if row.get("sd") else None,
        )
        for line, row in rows
    ]
    return non_empty(IQADataset("koniq10k", root, items, higher_is_better=True))


_SPAQ_TABLE = "MOS and Image attribute scores"


def read_spaq(root: str | os.PathLike) -> IQADataset:
    """SPAQ (MOS 0..100, higher = better); the score sheet as .xlsx (openpyxl) or a CSV export."""
    root = Path(root)
    tables = sorted(root.rglob(f"{_SPAQ_TABLE}.csv")) or sorted(root.rglob(f"{_SPAQ_TABLE}.xlsx"))
    if not tables:
        raise DataError(f"{root}: no '{_SPAQ_TABLE}.xlsx' (or .csv export) found")
    table = tables[0]
    header, rows = _xlsx_rows(table) if table.suffix.lower() == ".xlsx" else read_table(table, "SPAQ table")
    require_columns(table, header, ["image name", "mos"])
    folder = next((p for p in root.rglob("TestImage") if p.is_dir()), root / "TestImage")
    items = [
        IQAItem(image=folder / row["image name"], mos=number_cell(row["mos"], f"{table}, line {line}", "MOS"))
        for line, row in rows
    ]
    return non_empty(IQADataset("spaq", root, items, higher_is_better=True))


def read_pipal(root: str | os.PathLike) -> IQADataset:
    """PIPAL training set (Elo scores, higher = better); see the module table."""
    root = Path(root)
    labels = sorted((root / "Train_Label").glob("*.txt"))
    if not labels:
        raise DataError(f"{root}: no label files in Train_Label/")
    references = _case_insensitive_index(root / "Train_Ref")
    items = []
    for label in labels:
        for number, line in enumerate(read_text(label, "PIPAL labels").splitlines(), start=1):
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
                IQAItem(image=root / "Train_Dis" / name, mos=number_cell(score, where, "score"), reference=reference)
            )
    return non_empty(IQADataset("pipal", root, items, higher_is_better=True))


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
            mos=number_cell(score, f"{data / 'AllMOS_release.mat'}, entry {n}", "AllMOS_release"),
            std=float(stds[n - 1]) if stds is not None else None,
        )
        for n, (name, score) in enumerate(zip(names, mos), start=1)
        if not (training / name).is_file()
    ]
    return non_empty(IQADataset("live_challenge", root, items, higher_is_better=True))


def read_biq2021(root: str | os.PathLike, *, split: str = "Test") -> IQADataset:
    """BIQ2021 (MOS 0..1, higher = better): ``<split> (Images and MOS).csv`` + ``Images/``."""
    root = Path(root)
    table = root / f"{split} (Images and MOS).csv"
    if not table.is_file():
        found = sorted(p.name for p in root.glob("* (Images and MOS).csv"))
        raise DataError(f"{root}: no '{table.name}' (found {found or 'no BIQ2021 table'})")
    header, rows = read_table(table, "BIQ2021 table")
    require_columns(table, header, ["image name", "mos"])
    items = [
        IQAItem(image=root / "Images" / row["image name"], mos=number_cell(row["mos"], f"{table}, line {line}", "MOS"))
        for line, row in rows
    ]
    return non_empty(IQADataset("biq2021", root, items, higher_is_better=True))


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
