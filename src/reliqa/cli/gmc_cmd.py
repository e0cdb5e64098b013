"""``reliqa gmc``: Granularity-Modulated Correlation of one prediction column against MOS.

The logic lives in :mod:`reliqa.surfaces.gmc`; this command reads the columns, calls
:func:`reliqa.surfaces.gmc.gmc`, prints and draws.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reliqa.cli.app import (
    app,
    checked_device,
    checked_input_file,
    checked_output_file,
    fail,
    print_json,
    usage_error,
    use_threads,
)
from reliqa.cli.options import DeviceOption, JsonOption, OverwriteOption, ThreadsOption
from reliqa.exceptions import ReliqaError

if TYPE_CHECKING:
    from reliqa.surfaces.gmc import GMCResult


# `gmc_command`'s own options (the shared ones come from reliqa.cli.options).
_CsvFileArgument = Annotated[
    Path,
    typer.Argument(
        metavar="CSV",
        help="CSV with a header row: predictions, MOS and optionally MOS std.",
    ),
]
_PredColOption = Annotated[
    str,
    typer.Option(
        "--pred-col",
        help="Column of predicted quality. A column named after a lower-is-better scorer "
             "(niqe, gmsd, …) is negated first, as in bench, batch report and viewer.",
    ),
]
_MosColOption = Annotated[
    str, typer.Option("--mos-col", help="Column of mean opinion scores (higher = better).")
]
_StdColOption = Annotated[
    str | None, typer.Option("--std-col", help="Column of per-image MOS std.")
]
_StdFileOption = Annotated[
    Path | None,
    typer.Option(
        "--std-file",
        help="Per-image MOS std in CSV row order: one number per line, or a CSV with a 'std' "
             "column.",
    ),
]
_WeightsFileOption = Annotated[
    Path | None,
    typer.Option(
        "--weights-file",
        help="Distribution-Regulator weights, one per line (default: computed from MOS and "
             "std).",
    ),
]
_PointsFileOption = Annotated[
    Path | None, typer.Option("--points", help="CSV of query points with columns Qs, Qd.")
]
_SamplesOption = Annotated[
    int | None, typer.Option("--samples", help="Latin-hypercube query points (default 100).")
]
_SeedOption = Annotated[
    int | None, typer.Option("--seed", help="Seed of the Latin-hypercube points (default 0).")
]
_BandwidthMultiplierOption = Annotated[
    float, typer.Option("--bandwidth-multiplier", help="Scale of every per-image bandwidth σ.")
]
_ScoreRangeOption = Annotated[
    str | None,
    typer.Option(
        "--score-range",
        help="MOS scale as LOW,HIGH, e.g. 1,5 (default: the MOS min and max).",
    ),
]
_PhiOption = Annotated[
    float, typer.Option("--phi", help="Beta precision used to estimate std when none is given.")
]
_PlotOption = Annotated[
    Path | None, typer.Option("--plot", help="Write the surfaces as a heatmap PNG here.")
]
_HtmlOption = Annotated[
    Path | None, typer.Option("--html", help="Write an interactive 3-D HTML of the surfaces here.")
]


@app.command("gmc")
def gmc_command(
    csv_file: _CsvFileArgument,
    pred_col: _PredColOption,
    mos_col: _MosColOption,
    std_col: _StdColOption = None,
    std_file: _StdFileOption = None,
    weights_file: _WeightsFileOption = None,
    points_file: _PointsFileOption = None,
    samples: _SamplesOption = None,
    seed: _SeedOption = None,
    bandwidth_multiplier: _BandwidthMultiplierOption = 1.0,
    score_range: _ScoreRangeOption = None,
    phi: _PhiOption = 4.0,
    plot: _PlotOption = None,
    html: _HtmlOption = None,
    device: DeviceOption = "cpu",
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """GMC surfaces (PLCC, SRCC, KRCC over quality scale × quality difference) of one predictor.

    Prints the global correlations and each surface's average height; --json prints every
    query point. A correlation undefined at a point (no weighted pair, or all tied) is null there.
    """
    _check_usage(std_col, std_file, points_file, samples, seed, bandwidth_multiplier)
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
    from reliqa.catalogue import column_higher_is_better

    # the one direction rule (scorer catalogue): same CSV, same sign in CLI, viewer, report
    negated = not column_higher_is_better(pred_col)
    try:
        result = _compute(
            csv_file, pred_col, mos_col, std_col, std_file, weights_file, points_file,
            negated=negated,
            samples=100 if samples is None else samples,
            seed=0 if seed is None else seed,
            bandwidth_multiplier=bandwidth_multiplier,
            phi=phi,
            score_range=scale,
            device=device,
        )
        written = _write_plots(result, plot, html, title=f"{csv_file.name}: {pred_col}")
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


def _check_usage(
    std_col: str | None,
    std_file: Path | None,
    points_file: Path | None,
    samples: int | None,
    seed: int | None,
    bandwidth_multiplier: float,
) -> None:
    """Option combinations and values that are bad usage (exit 2), before any work."""
    if std_col is not None and std_file is not None:
        usage_error("give --std-col or --std-file, not both")
    if points_file is not None and (samples is not None or seed is not None):
        usage_error("--points replaces --samples/--seed; give one or the other")
    if samples is not None and samples < 5:
        usage_error(f"--samples must be at least 5 (a surface needs 5 points), got {samples}")
    if not (bandwidth_multiplier > 0):
        usage_error(f"--bandwidth-multiplier must be positive, got {bandwidth_multiplier}")


def _compute(
    csv_file: Path,
    pred_col: str,
    mos_col: str,
    std_col: str | None,
    std_file: Path | None,
    weights_file: Path | None,
    points_file: Path | None,
    *,
    negated: bool,
    **options: Any,
) -> GMCResult:
    """Read the columns (and the optional std, weights and points files) and run GMC on them;
    ``options`` are :func:`reliqa.surfaces.gmc.gmc`'s keywords."""
    from reliqa.evaluation.correlation import read_score_columns, read_value_list
    from reliqa.surfaces.gmc import gmc, read_points

    columns = read_score_columns(csv_file, [pred_col, mos_col] + ([std_col] if std_col else []))
    size = columns[mos_col].size
    std = (
        columns[std_col]
        if std_col
        else (read_value_list(std_file, size, column="std") if std_file else None)
    )
    return gmc(
        -columns[pred_col] if negated else columns[pred_col],
        columns[mos_col],
        std,
        weights=read_value_list(weights_file, size) if weights_file else None,
        points=read_points(points_file) if points_file else None,
        **options,
    )


def _write_plots(
    result: GMCResult, plot: Path | None, html: Path | None, title: str
) -> dict[str, str]:
    """``--plot`` and ``--html``: the files written, by kind."""
    from reliqa.surfaces.gmc import plot_heatmap, plot_surface_html

    written = {}
    if plot is not None:
        written["heatmap"] = str(plot_heatmap(result, plot, title=title))
    if html is not None:
        written["html"] = str(plot_surface_html(result, html, title=title))
    return written


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
