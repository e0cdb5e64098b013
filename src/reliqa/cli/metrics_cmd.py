"""``reliqa metrics`` (the registry) and ``reliqa metric NAME`` (score one image or pair)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from reliqa.cli.app import app, fail, print_json, usage_error
from reliqa.exceptions import ReliqaError, UnknownNameError
from reliqa.metrics import create_metric, list_metrics
from reliqa.metrics.api import evaluate_metric


@app.command("metrics")
def metrics_command(
    json_output: Annotated[bool, typer.Option("--json", help="Print the registry as JSON.")] = False,
) -> None:
    """List the registered metrics with their metadata (kind, direction, range, differentiable)."""
    infos = list_metrics()
    if json_output:
        print_json([info.to_dict() for info in infos])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="reliqa metrics")
    for column in ("name", "kind", "better", "range", "diff.", "description"):
        table.add_column(column, overflow="fold")
    for info in infos:
        low, high = info.score_range
        table.add_row(info.name, info.kind, "higher" if info.higher_is_better else "lower",
                      f"[{low:g}, {high:g}]", "yes" if info.differentiable else "no", info.description)
    Console().print(table)


@app.command("metric")
def metric_command(
    name: Annotated[str, typer.Argument(help="Metric name (see `reliqa metrics`).")],
    test: Annotated[Path, typer.Option("--test", help="Image to judge.")],
    ref: Annotated[Path | None, typer.Option("--ref", help="Reference image (FR metrics only).")] = None,
    resize: Annotated[bool, typer.Option(
        "--resize", help="Resize the test image to the reference size (antialiased bilinear) first.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score TEST with metric NAME (against REF for full-reference metrics).

    JSON: {"metric": NAME, "score": float, "higher_is_better": bool}; an infinite score (PSNR
    of identical images) is written as null with a "note".
    """
    try:
        info = create_metric(name).info
    except UnknownNameError as error:
        usage_error(str(error))
    if info.kind == "FR" and ref is None:
        usage_error(f"{name} is a full-reference metric: pass --ref REFERENCE")
    if info.kind == "NR" and ref is not None:
        usage_error(f"{name} is a no-reference metric: it takes no --ref")
    if info.kind == "NR" and resize:
        usage_error("--resize only applies to full-reference metrics")
    try:
        score = float(evaluate_metric(name, test, ref, resize=resize)[0])
    except ReliqaError as error:
        fail(str(error))
    payload: dict[str, object] = {"metric": name, "score": score, "higher_is_better": info.higher_is_better}
    if math.isinf(score):
        payload["score"] = None
        payload["note"] = f"the score is {'+' if score > 0 else '-'}infinite (e.g. PSNR of identical images)"
    if json_output:
        print_json(payload)
    else:
        direction = "higher is better" if info.higher_is_better else "lower is better"
        typer.echo(f"{name}: {score:.6g} ({direction})")
