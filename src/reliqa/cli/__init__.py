"""The ``reliqa`` command. Each area registers its commands on the shared Typer app."""

from __future__ import annotations

# Importing a command module registers its commands on `app` (one line per area).
from reliqa.cli import (
    batch_cmd,  # noqa: F401
    bench_cmd,  # noqa: F401
    compare_cmd,  # noqa: F401
    distort_cmd,  # noqa: F401
    gmc_cmd,  # noqa: F401
    metrics_cmd,  # noqa: F401
    score_cmd,  # noqa: F401
    serve_cmd,  # noqa: F401
    train_cmd,  # noqa: F401
    train_nr_cmd,  # noqa: F401
    tune_cmd,  # noqa: F401
)
from reliqa.cli.app import app, run

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    run()
