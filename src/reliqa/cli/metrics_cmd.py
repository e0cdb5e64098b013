"""``reliqa metrics`` / ``reliqa models`` (the scorer catalogue) and ``reliqa metric NAME``
(score one image or pair with any metric or model of the catalogue)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reliqa.cli.app import (
    app,
    checked_device,
    fail,
    print_json,
    print_result,
    usage_error,
    use_threads,
)
from reliqa.cli.options import DeviceOption, JsonOption, ThreadsOption
from reliqa.exceptions import ReliqaError, UnknownNameError

if TYPE_CHECKING:
    from reliqa.metrics import MetricInfo


def _show_infos(title: str, infos: list[MetricInfo], as_json: bool) -> None:
    """Every field of every scorer as JSON, or one line per scorer cut to the terminal's width
    (the table's title says that ``--json`` has every field whole)."""
    import shutil

    if as_json:
        print_json([info.to_dict() for info in infos])
        return
    width = shutil.get_terminal_size((100, 24)).columns
    header = ("name", "kind", "better", "range", "diff.", "min", "description")
    rows = [
        (
            info.name,
            info.kind,
            "higher" if info.higher_is_better else "lower",
            f"[{info.score_range[0]:g}, {info.score_range[1]:g}]",
            "yes" if info.differentiable else "no",
            str(info.extra.get("min_size", "")),
            info.description,
        )
        for info in infos
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(6)]
    typer.echo(_cut(f"{title} (--json: every field in full)", width))
    for row in [header, *rows]:
        cells = "  ".join(cell.ljust(size) for cell, size in zip(row[:6], widths))
        typer.echo(_cut(f"{cells}  {row[6]}".rstrip(), width))


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"


@app.command("metrics")
def metrics_command(
    as_json: JsonOption = False,
) -> None:
    """List the registered metrics with their metadata (kind, direction, range, differentiable)."""
    from reliqa.metrics import list_metrics

    _show_infos("reliqa metrics (models: `reliqa models`)", list_metrics(), as_json)


@app.command("models")
def models_command(
    as_json: JsonOption = False,
) -> None:
    """List reliqa's models with the same metadata as metrics (no weights are loaded)."""
    from reliqa.models import list_models

    _show_infos("reliqa models", [entry.info for entry in list_models()], as_json)


@app.command("metric")
def metric_command(
    name: Annotated[str, typer.Argument(help="Metric or model name (`reliqa metrics`, `reliqa models`).")],
    test: Annotated[Path, typer.Option("--test", help="Image to judge.")],
    ref: Annotated[
        Path | None,
        typer.Option("--ref", "--reference", help="Reference image (full-reference scorers only)."),
    ] = None,
    resize: Annotated[bool, typer.Option(
        "--resize", help="Resize the test image to the reference size (antialiased bilinear) first.")] = False,
    device: DeviceOption = "cpu",
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
) -> None:
    """Score TEST with metric or model NAME (against REF for full-reference ones).

    JSON: {"metric": NAME, "score": float, "higher_is_better": bool}; an infinite score (PSNR
    of identical images) is written as null with a "note".
    """
    from reliqa.catalogue import scorer_info
    from reliqa.evaluation.scorers import evaluate_metric

    try:
        info = scorer_info(name)
    except UnknownNameError as error:
        usage_error(str(error))
    name = info.name  # either spelling in, the catalogue's spelling out
    if info.kind == "FR" and ref is None:
        usage_error(f"{name} is a full-reference scorer: pass --ref REFERENCE")
    if info.kind == "NR" and ref is not None:
        usage_error(f"{name} is a no-reference scorer: it takes no --ref")
    if info.kind == "NR" and resize:
        usage_error("--resize only applies to full-reference scorers")
    device = checked_device(device)
    use_threads(threads)
    try:
        score = float(evaluate_metric(name, test, ref, resize=resize, device=device)[0])
    except ReliqaError as error:
        fail(str(error))
    payload: dict[str, object] = {"metric": name, "score": score, "higher_is_better": info.higher_is_better}
    if math.isinf(score):
        payload["score"] = None
        payload["note"] = f"the score is {'+' if score > 0 else '-'}infinite (e.g. PSNR of identical images)"
    direction = "higher is better" if info.higher_is_better else "lower is better"
    print_result(as_json, payload, f"{name}: {score:.6g} ({direction})")
