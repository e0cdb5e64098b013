"""``reliqa compare`` and ``reliqa rank``: the relational full-reference model on image files.

    reliqa compare --test TEST --ref REF [--maps-out PNG [--overwrite]] [--json] [--align resize]
                   [--model relational|relational-plus] [--threads N]
    reliqa rank CANDIDATE... --ref REF [--json] [--model …] [--threads N]

Test first, reference second (``--reference`` is a synonym of ``--ref``), as everywhere.

JSON contracts (stdout):
    compare → {"score": float, "attributes": {"<attribute>": {"mean_signed": float,
               "area": float}}, "maps": path-or-null}
    rank    → {"ranking": [{"image": path, "score": float}], "errors": [{"image": path,
               "error": message}]}, best first; an unreadable candidate is listed in
               "errors" and the others are still ranked (exit 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reliqa.cli.app import (
    EXIT_INPUT_FAILED,
    app,
    checked_device,
    checked_output_file,
    fail,
    fail_error,
    print_json,
    usage_error,
    use_threads,
)
from reliqa.cli.options import DeviceOption, JsonOption, OverwriteOption, ThreadsOption
from reliqa.exceptions import ReliqaError

MAPS_SUFFIXES = (".png",)

# Options of compare and rank only (those of several modules are in reliqa.cli.options).
_ReferenceOption = Annotated[str, typer.Option("--ref", "--reference", help="Reference image.")]
_AlignOption = Annotated[
    str,
    typer.Option(
        "--align",
        help="none: sizes must match (default); resize: resize the test image to the reference's size.",
    ),
]
_RelationalModelOption = Annotated[
    str, typer.Option("--model", help="relational (fast) or relational-plus (deep features).")
]


def _check_options(align: str, model: str, device: str, threads: int | None) -> str:
    """The options compare and rank share, checked before any work; returns the device."""
    if align not in ("none", "resize"):
        usage_error(f"--align must be 'none' or 'resize', got {align!r}")
    device = checked_device(device)
    from reliqa.models.relational_api import check_relational_name

    try:
        check_relational_name(model)
    except ReliqaError as error:
        fail_error(error)
    use_threads(threads)
    return device


@app.command("compare")
def compare_command(
    test: Annotated[str, typer.Option("--test", help="Test image, judged against the reference.")],
    ref: _ReferenceOption,
    maps_out: Annotated[
        Path | None,
        typer.Option(
            "--maps-out",
            help="Write the maps picture here (PNG).",
        ),
    ] = None,
    align: _AlignOption = "none",
    device: DeviceOption = "cpu",
    model: _RelationalModelOption = "relational",
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Where and how TEST differs from REF (9 attribute maps) and a relational score.

    Score: higher = test better; 0 = no difference; negative = worse than the reference.
    mean_signed: mean of 2·(m − 0.5) (−1 … 1, > 0 = more of the attribute); area: share of
    pixels with |m − 0.5| > 0.05.
    """
    if maps_out is not None:  # before the work: a refused --maps-out costs nothing
        checked_output_file(maps_out, "--maps-out", overwrite, MAPS_SUFFIXES)
    device = _check_options(align, model, device, threads)
    from reliqa.models import relational_api

    try:
        result = relational_api.compare(test, ref, align=align, model=model, device=device)  # type: ignore[arg-type]
        maps_path = _write_maps(result, maps_out, ref, test) if maps_out else None
    except ReliqaError as error:
        fail_error(error)
    payload = {**result.to_dict(), "maps": maps_path}
    if as_json:
        print_json(payload)
        return
    typer.echo(f"score {result.score:+.4f}  (0 = no difference, higher = test better)")
    for name, summary in result.attributes.items():
        if summary.area > 0:
            typer.echo(
                f"  {name:12s} mean_signed {summary.mean_signed:+.3f}  area {summary.area:6.1%}"
            )
    if maps_path:
        typer.echo(f"maps: {maps_path}")


def _write_maps(result: object, path: Path, ref: str, test: str) -> str:
    from reliqa.reports.maps import render_maps

    title = f"{Path(test).name} vs {Path(ref).name}   score {result.score:+.3f}"  # type: ignore[attr-defined]
    try:
        render_maps(result.test, result.maps, path, title=title)  # type: ignore[attr-defined]
    except OSError as error:
        fail(f"--maps-out {path}: cannot write ({error.strerror or error})")
    return str(path)


@app.command("rank")
def rank_command(
    candidates: Annotated[
        list[str],
        typer.Argument(
            metavar="CANDIDATE...",
            help="Versions of the reference to rank.",
        ),
    ],
    ref: _ReferenceOption,
    align: _AlignOption = "none",
    device: DeviceOption = "cpu",
    model: _RelationalModelOption = "relational",
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
) -> None:
    """Rank candidate versions of one reference by relational score, best first.

    An unreadable candidate is reported (stderr, or "errors" in JSON) and the others are still
    ranked; the exit code is then 1.
    """
    device = _check_options(align, model, device, threads)
    from reliqa.models.relational_api import rank

    try:
        entries = rank(
            candidates, ref, align=align, model=model, device=device, errors="keep"  # type: ignore[arg-type]
        )
    except ReliqaError as error:
        fail_error(error)
    ranking = [entry for entry in entries if entry.error is None]
    failed = [entry for entry in entries if entry.error is not None]
    if as_json:
        print_json(
            {
                "ranking": [{"image": str(entry.image), "score": entry.score} for entry in ranking],
                "errors": [{"image": str(entry.image), "error": entry.error} for entry in failed],
            }
        )
    else:
        for position, entry in enumerate(ranking, start=1):
            typer.echo(f"{position:3d}. {entry.score:+.4f}  {entry.image}")
        for entry in failed:
            typer.echo(f"error: {entry.error}", err=True)
    if failed:
        raise typer.Exit(EXIT_INPUT_FAILED)
