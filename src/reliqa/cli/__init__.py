"""The ``reliqa`` command. Each area registers its commands on the shared Typer app."""

from __future__ import annotations

from reliqa.cli.app import app, run

# Importing a command module registers its commands on `app` (one line per area).
from reliqa.cli import batch_cmd  # noqa: E402,F401
from reliqa.cli import serve_cmd  # noqa: E402,F401
from reliqa.cli import bench_cmd  # noqa: E402,F401
from reliqa.cli import distort_cmd  # noqa: E402,F401
from reliqa.cli import score_cmd  # noqa: E402,F401
from reliqa.cli import train_cmd  # noqa: E402,F401
from reliqa.cli import compare_cmd  # noqa: E402,F401
from reliqa.cli import train_nr_cmd  # noqa: E402,F401
from reliqa.cli import gmc_cmd  # noqa: E402,F401
from reliqa.cli import metrics_cmd  # noqa: E402,F401
from reliqa.cli import tune_cmd  # noqa: E402,F401


__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    run()
