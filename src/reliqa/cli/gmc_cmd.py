"""``reliqa gmc``: Granularity-Modulated Correlation of one prediction column against MOS.

The logic lives in :mod:`reliqa.surfaces.gmc`; this command reads the columns, calls
:func:`reliqa.surfaces.gmc.gmc`, prints and draws.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from reliqa.cli.app import (
    DEVICE_HELP,
    OverwriteOption,
    ThreadsOption,
    app,
    checked_device,
    checked_input_file,
    checked_output_file,
    fail,
    print_json,
    usage_error,
    use_threads,
)
from reliqa.exceptions import ReliqaError

if TYPE_CHECKING:
    from reliqa.surfaces.gmc import GMCResult


@app.command("gmc")
def gmc_command(
    csv_file: Path = typer.Argument(
        ..., metavar="CSV", help="CSV with a header row: predictions, MOS and optionally MOS std."
    ),
    pred_col: str = typer.Option(
        ...,
        "--pred-col",
        help="Column of predicted quality. A column named after a lower-is-better scorer "
        "(niqe, gmsd, …) is negated first, as in bench, batch report and viewer.",
    ),
    mos_col: str = typer.Option(
        ..., "--mos-col", help="Column of mean opinion scores (higher = better)."
    ),
    std_col: str | None = typer.Option(None, "--std-col", help="Column of per-image MOS std."),
    std_file: Path | None = typer.Option(
        None,
        "--std-file",
        help="Per-image MOS std in CSV row order: one number per line, or a CSV with a 'std' column.",
    ),
    weights_file: Path | None = typer.Option(
        None,
        "--weights-file",
        help="Distribution-Regulator weights, one per line (default: computed from MOS and std).",
    ),
    points_file: Path | None = typer.Option(
        None, "--points", help="CSV of query points with columns Qs, Qd."
    ),
    samples: int | None = typer.Option(
        None, "--samples", help="Latin-hypercube query points (default 100)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the Latin-hypercube points (default 0)."
    ),
    bandwidth_multiplier: float = typer.Option(
        1.0, "--bandwidth-multiplier", help="Scale of every per-image bandwidth σ."
    ),
    score_range: str | None = typer.Option(
        None,
        "--score-range",
        help="MOS scale as LOW,HIGH, e.g. 1,5 (default: the MOS min and max).",
    ),
    phi: float = typer.Option(
        4.0, "--phi", help="Beta precision used to estimate std when none is given."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write the surfaces as a heatmap PNG here."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Write an interactive 3-D HTML of the surfaces here."
    ),
    device: str = typer.Option("cpu", "--device", help=DEVICE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """GMC surfaces (PLCC, SRCC, KRCC over quality scale × quality difference) of one predictor.

    Prints the global correlations and each surface's average height; --json prints every
    query point. A correlation undefined at a point (no weighted pair, or all tied) is null there.
    """
    if std_col is not None and std_file is not None:
        usage_error("give --std-col or --std-file, not both")
    if points_file is not None and (samples is not None or seed is not None):
        usage_error("--points replaces --samples/--seed; give one or the other")
    if samples is not None and samples < 5:
        usage_error(f"--samples must be at least 5 (a surface needs 5 points), got {samples}")
    if not (bandwidth_multiplier > 0):
        usage_error(f"--bandwidth-multiplier must be positive, got {bandwidth_multiplier}")
    scale = _parse_range(score_range) if score_range is not None else None
    # Inputs and outputs first: a missing CSV or a refused --plot costs no import (≈ 13 s).
    checked_input_file(csv_file)
    for option, path in (("--std-file", std_file), ("--weights-file", weights_file), ("--points", points_file)):
        if path is not None:
            checked_input_file(path, option)
    if plot is not None:
        checked_output_file(plot, "--plot", overwrite, (".png",))
    if html is not None:
        checked_output_file(html, "--html", overwrite, (".html", ".htm"))
    device = checked_device(device)
    use_threads(threads)
    from reliqa.evaluation.correlation import read_score_columns, read_value_list
    from reliqa.evaluation.scorers import column_higher_is_better
    from reliqa.surfaces.gmc import gmc, plot_heatmap, plot_surface_html, read_points

    # the one direction rule (scorer catalogue): same CSV, same sign in CLI, viewer, report
    negated = not column_higher_is_better(pred_col)
    try:
        columns = read_score_columns(csv_file, [pred_col, mos_col] + ([std_col] if std_col else []))
        size = columns[mos_col].size
        std = (
            columns[std_col]
            if std_col
            else (read_value_list(std_file, size, column="std") if std_file else None)
        )
        weights = read_value_list(weights_file, size) if weights_file else None
        result = gmc(
            -columns[pred_col] if negated else columns[pred_col],
            columns[mos_col],
            std,
            weights=weights,
            points=read_points(points_file) if points_file else None,
            samples=100 if samples is None else samples,
            seed=0 if seed is None else seed,
            bandwidth_multiplier=bandwidth_multiplier,
            phi=phi,
            score_range=scale,
            device=device,
        )
        written = {}
        if plot is not None:
            written["heatmap"] = str(
                plot_heatmap(result, plot, title=f"{csv_file.name}: {pred_col}")
            )
        if html is not None:
            written["html"] = str(
                plot_surface_html(result, html, title=f"{csv_file.name}: {pred_col}")
            )
    except ReliqaError as error:
        fail(str(error))
    if negated:
        result.notes.insert(0, f"{pred_col} is lower-is-better: negated before GMC")
    if as_json:
        print_json(
            {**result.to_dict(), "negated": negated, "notes": result.notes, "files": written}
        )
        return
    _print_summary(result, written)


def _parse_range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        usage_error(f"--score-range: expected LOW,HIGH such as 1,5, got {text!r}")
    return low, high


def _print_summary(result: GMCResult, written: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"GMC over {result.qs.size} query points")
    for column in ("correlation", "global", "GMC average height", "undefined points"):
        table.add_column(column)
    for name in result.values:
        height = result.average_height[name]
        table.add_row(
            name,
            f"{result.global_[name]:.4f}",
            "—" if math.isnan(height) else f"{height:.4f}",
            str(int(result.degenerate[name].sum())),
        )
    console = Console()
    console.print(table)
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    for kind, path in written.items():
        console.print(f"{kind}: {path}")
