"""The ``reliqa`` command. Each area registers its commands on the shared Typer app."""

from __future__ import annotations

from reliqa.cli.app import app, run

# Importing a command module registers its commands on `app` (one line per area).


__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    run()
