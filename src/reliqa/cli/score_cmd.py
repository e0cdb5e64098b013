"""``reliqa score IMAGE... [--model hirqa|hirqa-s] [--json]``: no-reference quality in [0, 1]."""

from __future__ import annotations

import typer

from reliqa.cli.app import EXIT_INPUT_FAILED, app, print_json, usage_error


@app.command("score")
def score_command(
    images: list[str] = typer.Argument(
        ..., metavar="IMAGE...", help="Image files or folders (folders expand to their images)."
    ),
    model: str = typer.Option(
        "hirqa", "--model", "-m", help="hirqa (quality first) or hirqa-s (speed first)."
    ),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda."),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"results": [{"image", "score" | "error"}]}.'
    ),
) -> None:
    """Score images without a reference: higher = better, in [0, 1]. Exit 1 if any image failed."""
    from reliqa.models.nr_api import NR_MODELS, score_files

    if model not in NR_MODELS:
        usage_error(f"--model must be one of {', '.join(NR_MODELS)}, got {model!r}")
    records = score_files(images, model=model, device=device)
    if as_json:
        print_json({"results": records})
    else:
        for record in records:
            if "error" in record:
                typer.echo(f"error: {record['error']}", err=True)
            else:
                typer.echo(f"{record['score']:.4f}  {record['image']}")
    if not records:
        typer.echo("error: no images found in the given folders", err=True)
        raise typer.Exit(EXIT_INPUT_FAILED)
    if any("error" in record for record in records):
        raise typer.Exit(EXIT_INPUT_FAILED)
