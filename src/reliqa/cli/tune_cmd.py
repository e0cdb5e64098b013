"""``reliqa tune``: the worked tuning example (docs/tuning.md).

    reliqa tune --out DIR [--image astronaut|FILE] [--size 256] [--tasks recover,correct,blackbox]
                [--losses relational,mse,ssim,ms_ssim] [--steps 150] [--lr 0.05] [--budget 40]
                [--seed 0] [--ref R --test T] [--threads N] [--json]

Writes DIR/report.html (before/after, maps before/after, loss curves, parameter trajectories),
DIR/results.json and the figures as PNGs. JSON contract (stdout): the content of results.json,
``{"config", "tasks": {task: {"before", "runs": {loss: {"params", "quality", "attributes",
"wall_time_s", "steps", "converged_step", "curve", "trajectory", ...}}}}, "wall_time_s",
"relational_score_unavailable"}`` plus ``"files": {name: path}``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from reliqa.cli.app import app, fail, print_json, usage_error
from reliqa.exceptions import ReliqaError, UnknownNameError


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command("tune")
def tune_command(
    out: Path = typer.Option(Path("tune_out"), "--out", help="Folder for report.html, results.json, PNGs."),
    image: str = typer.Option("astronaut", "--image", help="scikit-image photo name or an image file."),
    size: int = typer.Option(256, "--size", help="Side of the square working image (px)."),
    tasks: str = typer.Option("recover,correct,blackbox", "--tasks", help="Comma-separated tasks."),
    losses: str = typer.Option(
        "relational,mse,ssim,ms_ssim", "--losses", help="Comma-separated objectives to compare."
    ),
    steps: int = typer.Option(150, "--steps", help="Gradient steps per run."),
    lr: float = typer.Option(0.05, "--lr", help="Adam learning rate (normalised parameters)."),
    budget: int = typer.Option(40, "--budget", help="Evaluations per black-box search."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same results."),
    ref: str | None = typer.Option(None, "--ref", help="Reference file for the correct task."),
    test: str | None = typer.Option(None, "--test", help="Test file tuned towards --ref."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Tune a small image pipeline with the relational loss, side by side with MSE/SSIM/MS-SSIM."""
    import torch

    from reliqa.tuning.example import run_example
    from reliqa.tuning.report import jsonable, write_report

    if steps < 1 or budget < 1 or lr <= 0:
        usage_error("--steps and --budget must be ≥ 1 and --lr > 0")
    if threads is not None:
        if threads < 1:
            usage_error("--threads must be ≥ 1")
        torch.set_num_threads(threads)

    def progress(label: str) -> None:
        if not as_json:
            typer.echo(f"tuning {label} …", err=True)

    try:
        result = run_example(
            image, size=size, tasks=_names(tasks), losses=_names(losses), steps=steps, lr=lr,
            budget=budget, seed=seed, reference=ref, test=test, progress=progress,
        )
        files = write_report(result, out)
    except UnknownNameError as error:
        usage_error(str(error))
    except ReliqaError as error:
        fail(str(error))
    except OSError as error:
        fail(f"--out {out}: cannot write ({error.strerror or error})")
    if as_json:
        print_json({**jsonable(result.to_dict()), "files": files})
        return
    for name, task in result.tasks.items():
        typer.echo(f"{name}:")
        for loss, run in task.runs.items():
            quality = ", ".join(
                f"{k} {v:.4g}" for k, v in run.quality.items() if v is not None
            )
            extra = ""
            if run.error is not None:
                extra = f"  mean |param error| {sum(run.error.values()) / len(run.error):.3f}"
            typer.echo(f"  {loss:10s} {quality}  ({run.wall_time_s:.1f} s){extra}")
    typer.echo(f"report: {files['report']}")
