"""``reliqa train <model> --config FILE``: training commands (one sub-command per model).

Thin: parse options, call the trainer in ``reliqa.training``. Under ``torchrun`` every process
runs the same command; only rank 0 prints and writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from reliqa.cli.app import app, print_json

train_app = typer.Typer(
    help="Train reliqa's models from synthetic data (no human labels).", no_args_is_help=True
)
app.add_typer(train_app, name="train")


@train_app.command("relational")
def train_relational_command(
    config: Path = typer.Option(
        ..., "--config", help="JSON training config (see configs/relational_*.json)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the run's latest checkpoint."
    ),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Override the config's run_dir."),
    device: str | None = typer.Option(
        None, "--device", help="Override the config's device (auto, cpu, cuda)."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print a JSON summary instead of a progress bar."
    ),
) -> None:
    """Train the relational model: distortion maps, then the relational scorer."""
    from reliqa.training.relational import load_training_config, train_relational

    settings = load_training_config(
        config, run_dir=str(run_dir) if run_dir else None, device=device
    )
    weights = train_relational(settings, resume=resume, quiet=json_output)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    if json_output:
        print_json(
            {"run_dir": settings.run_dir, "weights": str(weights) if weights.is_file() else None}
        )
    else:
        typer.echo(
            f"weights: {weights}"
            if weights.is_file()
            else f"stopped early; resume with --resume ({settings.run_dir})"
        )
