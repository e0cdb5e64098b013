"""The `reliqa` Typer application and the helpers every command shares.

Commands live in their own modules (``reliqa.cli.<area>``) and register on :data:`app`; they stay
thin: parse options, call the Python API, print. Conventions (DESIGN.md): ``--json`` prints
machine-readable output on stdout; errors go to stderr without a traceback; exit code 0 on
success, 1 when an input failed, 2 on bad usage.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from reliqa.exceptions import DeviceError, ReliqaError, UnknownNameError, UsageError

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
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """reliqa: image quality without human labels.

    Images are judged test first, reference second (--test, --ref), as pyiqa, piq and
    torchmetrics do. Every command takes --json; exit 0 on success, 1 when an input failed,
    2 on bad usage.
    """


USAGE_ERRORS: tuple[type[Exception], ...] = (UsageError, UnknownNameError, DeviceError)
"""Errors that are bad usage (exit 2); every other ReliqaError is a failed input (exit 1)."""


def exit_code(error: ReliqaError, usage: tuple[type[Exception], ...] = USAGE_ERRORS) -> int:
    """The exit code of a library error: 2 for bad usage (``usage``), else 1."""
    return EXIT_USAGE if isinstance(error, usage) else EXIT_INPUT_FAILED


def fail_error(error: ReliqaError, usage: tuple[type[Exception], ...] = USAGE_ERRORS) -> NoReturn:
    """Print a library error on one line and exit with :func:`exit_code`."""
    fail(str(error), exit_code(error, usage))


def use_threads(threads: int | None) -> None:
    """Apply ``--threads`` (None: keep the default, and import nothing) before any work starts."""
    if threads is None:
        return
    from reliqa.runtime import set_threads

    try:
        set_threads(threads)
    except ReliqaError as error:
        fail_error(error)


def checked_input_file(path: Path, option: str = "") -> Path:
    """An input file that must exist, checked before the heavy imports: else exit 1, one line."""
    label = f"{option} {path}" if option else str(path)
    if not path.is_file():
        fail(f"{label}: {'is a folder, not a file' if path.is_dir() else 'file does not exist'}")
    return path


def checked_output_file(
    path: str | os.PathLike[str],
    option: str,
    overwrite: bool,
    suffixes: Sequence[str] = (),
) -> Path:
    """:func:`reliqa.outputs.check_output_file` for a command: a refusal is exit 2, one line."""
    from reliqa.outputs import check_output_file

    try:
        return check_output_file(path, option=option, overwrite=overwrite, suffixes=suffixes)
    except ReliqaError as error:
        fail_error(error)


def checked_output_folder(
    path: str | os.PathLike[str],
    option: str,
    overwrite: bool,
    names: Iterable[str] | None = None,
) -> Path:
    """:func:`reliqa.outputs.check_output_folder` for a command: a refusal is exit 2, one line."""
    from reliqa.outputs import check_output_folder

    try:
        return check_output_folder(path, option=option, overwrite=overwrite, names=names)
    except ReliqaError as error:
        fail_error(error)


def checked_device(device: str | None) -> str:
    """The ``--device`` value, checked to exist on this machine; bad usage (exit 2) if not.

    Checked before any work starts, so ``--device cuda`` without a GPU is one line on stderr,
    not a traceback (or, for ``serve``, a server that answers every request with a 500).
    """
    from reliqa.checks import resolve_device

    try:
        return str(resolve_device(device))
    except DeviceError as error:
        usage_error(str(error))


def print_json(payload: Any) -> None:
    """Write one JSON document to stdout (NaN is not valid JSON: it becomes null)."""
    typer.echo(json.dumps(_nan_to_none(payload), indent=2, allow_nan=False))


def print_result(as_json: bool, payload: Any, line: str) -> None:
    """What a command prints when it is done: ``payload`` as JSON with ``--json``
    (:func:`print_json`), else the one ``line`` for a person."""
    if as_json:
        print_json(payload)
    else:
        typer.echo(line)


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
    """Run the app, turning any :class:`ReliqaError` into a one-line message (exit 1, or 2
    for bad usage: :data:`USAGE_ERRORS`, e.g. a device this machine lacks)."""
    try:
        app()
    except ReliqaError as error:
        typer.echo(f"error: {error}", err=True)
        sys.exit(exit_code(error))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
