"""The `reliqa` Typer application and the helpers every command shares.

Commands live in their own modules (``reliqa.cli.<area>``) and register on :data:`app`; they stay
thin: parse options, call the Python API, print. Conventions (DESIGN.md): ``--json`` prints
machine-readable output on stdout; errors go to stderr without a traceback; exit code 0 on
success, 1 when an input failed, 2 on bad usage.
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

from reliqa.exceptions import ReliqaError

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2

app = typer.Typer(
    name="reliqa",
    help="Image quality without human labels: distortion engine, relational maps, "
    "no-reference scores, calibrated metrics and GMC surfaces.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: flags show as flags (rich help printed "--json <bool>"), and
    # `reliqa --help` does not import rich.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from reliqa import __version__

        typer.echo(f"reliqa {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        callback=_print_version,
        help="Print the version and exit.",
    ),
) -> None:
    """reliqa: image quality without human labels.

    Images are judged test first, reference second (--test, --ref), as pyiqa, piq and
    torchmetrics do. Every command takes --json; exit 0 on success, 1 when an input failed,
    2 on bad usage.
    """


DEVICE_HELP = "torch device: cpu (default) or cuda, cuda:N."


def checked_device(device: str | None) -> str:
    """The ``--device`` value, checked to exist on this machine; bad usage (exit 2) if not.

    Checked before any work starts, so ``--device cuda`` without a GPU is one line on stderr,
    not a traceback (or, for ``serve``, a server that answers every request with a 500).
    """
    from reliqa.checks import resolve_device
    from reliqa.exceptions import DeviceError

    try:
        return str(resolve_device(device))
    except DeviceError as error:
        usage_error(str(error))


def print_json(payload: Any) -> None:
    """Write one JSON document to stdout (NaN is not valid JSON: it becomes null)."""
    typer.echo(json.dumps(_nan_to_none(payload), indent=2, allow_nan=False))


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(item) for item in value]
    return value


def fail(message: str, code: int = EXIT_INPUT_FAILED) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def usage_error(message: str) -> NoReturn:
    """Bad usage (wrong option combination, unknown name): exit code 2."""
    fail(message, EXIT_USAGE)


def run() -> None:
    """Run the app, turning any :class:`ReliqaError` into a one-line message (exit 1)."""
    from reliqa.exceptions import DeviceError

    try:
        app()
    except DeviceError as error:  # a device this machine lacks is bad usage
        typer.echo(f"error: {error}", err=True)
        sys.exit(EXIT_USAGE)
    except ReliqaError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(EXIT_INPUT_FAILED)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
