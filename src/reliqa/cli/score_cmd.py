"""``reliqa score IMAGE... [--model hirqa|hirqa-s] [--json]``: no-reference quality in [0, 1]."""

from __future__ import annotations

from typing import Annotated

import typer

from reliqa.cli.app import (
    EXIT_INPUT_FAILED,
    app,
    checked_device,
    fail_error,
    print_json,
    use_threads,
)
from reliqa.cli.options import BatchSizeOption, DeviceOption, JsonOption, ThreadsOption
from reliqa.exceptions import ReliqaError


@app.command("score")
def score_command(
    images: Annotated[
        list[str],
        typer.Argument(
            metavar="IMAGE...",
            help="Image files or folders (folders expand to their images).",
        ),
    ],
    model: Annotated[
        str,
        typer.Option(
            "--model", "-m",
            help="hirqa (quality first) or hirqa-s (speed first).",
        ),
    ] = "hirqa",
    device: DeviceOption = "cpu",
    batch_size: BatchSizeOption = 16,
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
) -> None:
    """Score images without a reference: higher = better, in [0, 1]. Exit 1 if any image failed.

    Same-size images are scored together, --batch-size at a time.
    """
    device = checked_device(device)
    use_threads(threads)
    from reliqa.models.nr_api import score_files

    # An unknown or not no-reference --model (the model registry decides, no list here) and an
    # empty folder are bad usage (2); weights that fail their check exit 1.
    try:
        records = score_files(images, model=model, device=device, batch_size=batch_size)
    except ReliqaError as error:
        fail_error(error)
    if as_json:
        print_json({"results": records})
    else:
        for record in records:
            if "error" in record:
                typer.echo(f"error: {record['error']}", err=True)
            else:
                typer.echo(f"{record['score']:.4f}  {record['image']}")
    if any("error" in record for record in records):
        raise typer.Exit(EXIT_INPUT_FAILED)
