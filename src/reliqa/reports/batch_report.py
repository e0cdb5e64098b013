"""The ``reliqa batch --report DIR`` page: one self-contained HTML file, ``DIR/index.html``.

Nothing is fetched from the network and nothing is linked: CSS and JavaScript are inline (the
sortable-table script is the viewer's ``reliqa/web/static/sortable.js``), and every picture —
thumbnails, map pictures, GMC heatmaps — is a JPEG/PNG data URI. Only the optional interactive
GMC surfaces (``DIR/gmc/*.html``, plotly inlined) are extra files beside it.

It scales with the run: the page's size is bounded by constants, not by the number of pairs.
Thumbnails (:data:`THUMBNAIL_SIDE` px) for the :data:`MAX_THUMBNAILS` worst rows only; map
pictures for the :data:`MAX_MAP_PICTURES` worst pairs only, computed here by the relational model
of the results (or read from a ``maps`` column, ``--maps-dir``) — no map is stored per pair —
and drawn with their dominant attributes only (:func:`reliqa.reports.maps.dominant_attributes`).

"Worst" is by the ranking score (:func:`ranking_column`): the relational score when the results
have one, else the first score column, each in its own direction.

Sections, in order: a summary per score column; the whole results table (worst first, sortable
by any column); with ``mos`` (a dataset folder or a generic ``image,mos[,std]`` CSV, see
:func:`reliqa.evaluation.dataset_layouts.load_dataset`) the correlation table (direction-corrected, as
``reliqa bench`` reports it) and a GMC heatmap per score; the maps of the worst pairs.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reliqa.batch import (
    ERROR_COLUMN,
    IMAGE_COLUMN,
    MAPS_COLUMN,
    REFERENCE_COLUMN,
    read_results,
)
from reliqa.checks import resolve_device
from reliqa.evaluation.datasets import IQADataset, IQAItem
from reliqa.exceptions import DataError, ReliqaError
from reliqa.io import load_image, load_maps, to_uint8_array
from reliqa.reports.html import image_data_uri

REPORT_FILE = "index.html"
THUMBNAIL_SIDE = 64
THUMBNAIL_QUALITY = 75
MAX_THUMBNAILS = 300
"""Rows (the worst first) that get thumbnails; the rest of the table is text only."""
MAX_MAP_PICTURES = 12
"""Pairs whose maps are drawn: the worst ones by :func:`ranking_column`."""
MAP_PICTURE_QUALITY = 80
MAP_PICTURE_WIDTH = 640
"""Map pictures wider than this (three panels) are downscaled before embedding."""

_SORTABLE_JS = Path(__file__).resolve().parents[1] / "web" / "static" / "sortable.js"
_NON_SCORE_COLUMNS = {IMAGE_COLUMN, REFERENCE_COLUMN, MAPS_COLUMN, ERROR_COLUMN}

_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 1400px; color: #1d232a; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .6rem 0; }
th, td { border-bottom: 1px solid #d7dce1; padding: 3px 8px; text-align: left; vertical-align: middle; }
th { background: #f2f4f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort="ascending"]::after { content: " \\25B2"; }
table.sortable th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.failed td { color: #b3261e; } img.thumb { display: block; max-width: 96px; max-height: 96px; }
.row { display: flex; flex-wrap: wrap; gap: 14px; } figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; } figcaption { color: #5b6570; font-size: .85rem; }
p.note { color: #5b6570; }
"""


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(text: str | None) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


def _format(value: float) -> str:
    if not math.isfinite(value):
        return "—" if math.isnan(value) else str(value)
    magnitude = abs(value)
    return f"{value:.3e}" if magnitude and (magnitude >= 1e5 or magnitude < 1e-3) else f"{value:.4f}"


def _thumbnail(path: str) -> str | None:
    """A small JPEG data URI of the image at ``path``, or None if it cannot be read."""
    try:
        image = load_image(path)
    except ReliqaError:
        return None
    picture = Image.fromarray(to_uint8_array(image))
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return image_data_uri(picture, quality=THUMBNAIL_QUALITY)


def ranking_column(scores: Sequence[str]) -> str | None:
    """The score column that says which rows are worst: the first relational score (a
    full-reference model of reliqa's, e.g. ``relational``, ``relational-plus``) when the
    results have one, else the first score column; None without score columns."""
    return next((name for name in scores if _is_relational(name)), scores[0] if scores else None)


def _is_relational(name: str) -> bool:
    """Whether score column ``name`` is a relational score: a full-reference model of reliqa's
    (those produce distortion maps)."""
    from reliqa.models import list_models

    return any(entry.name == name and entry.info.kind == "FR" for entry in list_models())


def worst_first(rows: Sequence[dict[str, str]], column: str | None) -> list[int]:
    """Row indices ordered worst first by ``column`` in its own direction (rows without a
    value last, in file order); file order when ``column`` is None."""
    if column is None:
        return list(range(len(rows)))
    sign = 1.0 if _higher_is_better(column) else -1.0

    def key(index: int) -> tuple[bool, float]:
        value = _number(rows[index].get(column))
        return (not math.isfinite(value), sign * value if math.isfinite(value) else 0.0)

    return sorted(range(len(rows)), key=key)


def _higher_is_better(name: str) -> bool:
    """Direction of a score column: the one rule of the scorer catalogue
    (:func:`reliqa.catalogue.column_higher_is_better`), as in bench, viewer and gmc."""
    from reliqa.catalogue import column_higher_is_better

    return column_higher_is_better(name)


def check_report_dir(out_dir: str | os.PathLike) -> Path:
    """The report folder ``out_dir``, created if missing.

    Raises:
        DataError: it exists and is not a folder (e.g. ``--report`` names an existing file),
            or it cannot be created — one clear message instead of a traceback.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder (the report is a folder: index.html, gmc/)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{out}: cannot create the report folder ({error.strerror or error})") from None
    return out


def _summary_section(rows: Sequence[dict[str, str]], scores: Sequence[str]) -> list[str]:
    parts = ["<h2>Summary</h2>", "<table><thead><tr><th>score</th><th>direction</th><th>scored</th>"
             "<th>mean</th><th>median</th><th>min</th><th>max</th></tr></thead><tbody>"]
    for name in scores:
        values = np.array([_number(row.get(name)) for row in rows])
        finite = values[np.isfinite(values)]
        stats = [finite.mean(), np.median(finite), finite.min(), finite.max()] if finite.size else [math.nan] * 4
        direction = "higher = better" if _higher_is_better(name) else "lower = better"
        cells = "".join(f'<td class="num">{_format(float(v))}</td>' for v in stats)
        parts.append(f"<tr><td>{_escape(name)}</td><td>{direction}</td><td class=\"num\">{finite.size}</td>{cells}</tr>")
    parts.append("</tbody></table>")
    return parts


def _match_mos(rows: Sequence[dict[str, str]], mos: str | os.PathLike) -> tuple[list[int], IQADataset]:
    """Row indices with a human score and the matching dataset (same order)."""
    from dataclasses import replace

    from reliqa.evaluation.dataset_layouts import load_dataset

    dataset = load_dataset(mos)
    by_path = {os.path.realpath(item.image): item for item in dataset}
    by_name: dict[str, list[IQAItem]] = {}
    for entry in dataset:
        by_name.setdefault(Path(entry.image).name, []).append(entry)
    indices: list[int] = []
    items: list[IQAItem] = []
    for index, row in enumerate(rows):
        match = by_path.get(os.path.realpath(row[IMAGE_COLUMN]))
        if match is None:
            candidates = by_name.get(Path(row[IMAGE_COLUMN]).name, [])
            match = candidates[0] if len(candidates) == 1 else None
        if match is not None:
            indices.append(index)
            items.append(match)
    if len(indices) < 3:
        raise DataError(
            f"{mos}: only {len(indices)} result rows match an image of the MOS data "
            "(matched by path, then by unique file name); correlations need at least 3"
        )
    return indices, replace(dataset, items=items)


def _mos_section(
    rows: Sequence[dict[str, str]], scores: Sequence[str], mos: str | os.PathLike, out_dir: Path
) -> list[str]:
    from reliqa.evaluation.correlation import correlation_report
    from reliqa.surfaces.gmc import gmc, plot_heatmap, plot_surface_html

    indices, dataset = _match_mos(rows, mos)
    quality = dataset.quality()
    std_all = dataset.std()
    parts = [
        "<h2>Agreement with human scores</h2>",
        f'<p class="note">{len(indices)} of {len(rows)} rows matched {_escape(mos)}. Correlations '
        "are direction-corrected (a lower-is-better score is negated), so higher = agrees with "
        "the humans; [95% bootstrap interval].</p>",
        "<table><thead><tr><th>score</th><th>n</th><th>SRCC</th><th>KRCC</th><th>PLCC</th>"
        "<th>PLCC (logistic)</th><th>GMC average height (SRCC)</th></tr></thead><tbody>",
    ]
    pictures = []
    (out_dir / "gmc").mkdir(parents=True, exist_ok=True)
    for name in scores:
        values = np.array([_number(rows[i].get(name)) for i in indices])
        valid = np.isfinite(values)
        prediction = values[valid] if _higher_is_better(name) else -values[valid]
        try:
            report = correlation_report(prediction, quality[valid], n_boot=200, seed=0)
            std = std_all[valid] if std_all is not None else None
            surface = gmc(prediction, quality[valid], std=std, seed=0)
        except ReliqaError as error:
            parts.append(f'<tr><td>{_escape(name)}</td><td colspan="6">{_escape(error)}</td></tr>')
            continue
        cells = []
        for key in ("SRCC", "KRCC", "PLCC", "PLCC_logistic"):
            value, interval = report[key]["value"], report[key]["ci"]
            ci = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
            cells.append(f'<td class="num">{value:.3f}{ci}</td>')
        height = surface.average_height.get("SRCC", math.nan)
        parts.append(
            f'<tr><td>{_escape(name)}</td><td class="num">{report["n"]}</td>{"".join(cells)}'
            f'<td class="num">{_format(float(height))}</td></tr>'
        )
        picture = out_dir / "gmc" / f"{_safe_name(name)}.png"
        interactive = picture.with_suffix(".html")
        plot_heatmap(surface, picture)
        plot_surface_html(surface, interactive)  # plotly.js inlined: offline too
        with Image.open(picture) as heatmap:  # embedded: the page needs no file beside it
            uri = image_data_uri(heatmap.convert("RGB"), image_format="PNG")
        picture.unlink()
        pictures.append(
            f'<figure><img src="{uri}" alt="GMC heatmap of {_escape(name)}">'
            f'<figcaption>GMC of {_escape(name)} (optional extra file: <a href="gmc/'
            f'{_escape(interactive.name)}">interactive 3-D surface</a>)</figcaption></figure>'
        )
    parts.append("</tbody></table>")
    parts.append(f'<div class="row">{"".join(pictures)}</div>')
    return parts


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _maps_section(
    rows: Sequence[dict[str, str]],
    scores: Sequence[str],
    order: Sequence[int],
    ranking: str | None,
    device: str | None,
) -> list[str]:
    """Map pictures of the :data:`MAX_MAP_PICTURES` worst pairs, embedded, dominant attributes
    only. Maps come from the ``maps`` column when there is one, else from the relational model
    named by ``ranking`` (computed here for these pairs only)."""
    from reliqa.reports.maps import attribute_strengths, dominant_attributes, render_maps

    has_column = any(row.get(MAPS_COLUMN) for row in rows)
    model_name = ranking if ranking is not None and _is_relational(ranking) else None
    if not has_column and model_name is None:
        return []
    chosen = [
        index for index in order
        if rows[index].get(REFERENCE_COLUMN) and (
            rows[index].get(MAPS_COLUMN) if has_column
            else math.isfinite(_number(rows[index].get(model_name or "")))
        )
    ][:MAX_MAP_PICTURES]
    if not chosen:
        return []
    parts = [
        "<h2>Distortion maps of the worst pairs</h2>",
        f'<p class="note">The {len(chosen)} worst pairs'
        + (f" by {_escape(ranking)}" if ranking else "")
        + ", each with its strongest attributes only (all nine: <code>reliqa compare "
        "--maps-out</code> or the viewer). Red = the test has more of the attribute than the "
        "reference, blue = less.</p>",
        '<div class="row">',
    ]
    scorer = None
    target = resolve_device(device)
    for index in chosen:
        row = rows[index]
        try:
            test = load_image(row[IMAGE_COLUMN])
            if has_column:
                maps = load_maps(row[MAPS_COLUMN])
            else:
                if scorer is None:
                    from reliqa.evaluation.scorers import resolve_scorer

                    scorer = resolve_scorer(model_name or "", device=device)
                if scorer.maps is None:
                    return []
                reference = load_image(row[REFERENCE_COLUMN])
                with torch.inference_mode():
                    maps = scorer.maps(test.to(target), reference.to(target))
        except ReliqaError as error:
            parts.append(f'<p class="note">{_escape(error)}</p>')
            continue
        strongest = dominant_attributes(attribute_strengths(maps))
        picture = render_maps(test, maps.cpu(), attributes=strongest, title=Path(row[IMAGE_COLUMN]).name)
        if picture.shape[1] > MAP_PICTURE_WIDTH:  # three panels: shown at most this wide
            scale = MAP_PICTURE_WIDTH / picture.shape[1]
            picture = np.asarray(Image.fromarray(picture).resize(
                (MAP_PICTURE_WIDTH, round(picture.shape[0] * scale)), Image.Resampling.LANCZOS))
        caption = " · ".join(f"{name} {_format(_number(row.get(name)))}" for name in scores)
        parts.append(
            f'<figure><img src="{image_data_uri(picture, quality=MAP_PICTURE_QUALITY)}" '
            f'alt="maps of {_escape(row[IMAGE_COLUMN])}" title="{_escape(row[IMAGE_COLUMN])}">'
            f"<figcaption>{_escape(caption)}</figcaption></figure>"
        )
    parts.append("</div>")
    return parts


def _results_section(
    rows: Sequence[dict[str, str]],
    scores: Sequence[str],
    pairs: bool,
    order: Sequence[int],
    ranking: str | None,
) -> list[str]:
    header = ["#", "test"] + (["reference"] if pairs else []) + ["image"] + list(scores) + ["error"]
    by = f"worst first by {_escape(ranking)}; " if ranking else ""
    parts = [
        "<h2>Results</h2>",
        f'<p class="note">{by}# = line in the results file. Click a column header to sort. '
        f"Thumbnails for the first {MAX_THUMBNAILS} rows.</p>",
        '<table class="sortable" id="results"><thead><tr>'
        + "".join(f'<th scope="col">{_escape(h)}</th>' for h in header)
        + "</tr></thead><tbody>",
    ]
    for position, index in enumerate(order):
        row, number = rows[index], index + 1
        thumbs = [row[IMAGE_COLUMN]] + ([row.get(REFERENCE_COLUMN, "")] if pairs else [])
        cells = [f'<td class="num" data-value="{number}">{number}</td>']
        for path in thumbs:
            uri = _thumbnail(path) if path and position < MAX_THUMBNAILS else None
            cells.append(f'<td><img class="thumb" src="{uri}" alt=""></td>' if uri else "<td></td>")
        cells.append(f'<td data-value="{_escape(row[IMAGE_COLUMN])}">{_escape(row[IMAGE_COLUMN])}</td>')
        for name in scores:
            value = _number(row.get(name))
            data = repr(value) if math.isfinite(value) else ""
            cells.append(f'<td class="num" data-value="{data}">{_format(value)}</td>')
        error = row.get(ERROR_COLUMN, "")
        cells.append(f'<td data-value="{_escape(error)}">{_escape(error)}</td>')
        css = ' class="failed"' if error else ""
        parts.append(f"<tr{css}>{''.join(cells)}</tr>")
    parts.append("</tbody></table>")
    return parts


def write_batch_report(
    results: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    mos: str | os.PathLike | None = None,
    title: str = "reliqa batch report",
    device: str | None = None,
) -> Path:
    """Write ``out_dir/index.html`` for a results file (module docstring: what it holds and
    why its size does not grow with the number of pairs).

    Args:
        results: a ``reliqa batch`` output (.csv or .parquet).
        out_dir: the report folder (created; :func:`check_report_dir`).
        mos: human scores to correlate with (dataset folder or ``image,mos[,std]`` CSV).
        title: the page title.
        device: where the relational model computes the worst pairs' maps (None: cpu).

    Returns:
        The path of ``index.html``.

    Raises:
        DataError: unreadable results, MOS data that matches fewer than 3 rows, or an
            ``out_dir`` that is an existing file or cannot be created.
    """
    rows = read_results(results)
    if not rows:
        raise DataError(f"{results}: no result rows to report")
    columns = list(rows[0])
    if IMAGE_COLUMN not in columns:
        raise DataError(f"{results}: not a reliqa batch results file (no 'image' column)")
    scores = [name for name in columns if name not in _NON_SCORE_COLUMNS]
    pairs = REFERENCE_COLUMN in columns
    out = check_report_dir(out_dir)
    failed = sum(1 for row in rows if row.get(ERROR_COLUMN))
    body = [
        f"<h1>{_escape(title)}</h1>",
        f'<p class="note">{_escape(results)}: {len(rows)} rows, {failed} with errors; scores: '
        f"{_escape(', '.join(scores) or 'none')}.</p>",
    ]
    ranking = ranking_column(scores)
    order = worst_first(rows, ranking)
    body += _summary_section(rows, scores)
    body += _results_section(rows, scores, pairs, order, ranking)
    if mos is not None:
        body += _mos_section(rows, scores, mos, out)
    body += _maps_section(rows, scores, order, ranking, device)
    script = _SORTABLE_JS.read_text(encoding="utf-8")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + f'\n<script>{script}\ndocument.querySelectorAll("table.sortable").forEach(makeSortable);</script>'
        + "\n</body></html>\n"
    )
    path = out / REPORT_FILE
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, path)
    return path
