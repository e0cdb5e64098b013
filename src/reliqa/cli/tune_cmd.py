"""``reliqa tune``: the worked tuning example (docs/tuning.md).

    reliqa tune --out DIR [--image astronaut|FILE] [--size 256] [--tasks recover,correct,blackbox]
                [--losses relational,mse,ssim_rgb,ms_ssim_rgb] [--steps 150] [--lr 0.05]
                [--budget 40] [--seed 0] [--ref R --test T] [--threads N] [--overwrite] [--json]

DIR must be new or empty (or pass --overwrite); it is checked before any work. The report and
results.json are written after each task, so a run stopped later keeps the finished tasks.
Writes DIR/report.html (before/after, maps before/after, loss curves, parameter trajectories),
DIR/results.json and the figures as PNGs. JSON contract (stdout): the content of results.json,
``{"config", "tasks": {task: {"before", "runs": {loss: {"params", "quality", "attributes",
"wall_time_s", "steps", "converged_step", "curve", "trajectory", ...}}}}, "wall_time_s",
"relational_score_unavailable"}`` plus ``"files": {name: path}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reliqa.cli.app import (
    app,
    checked_output_folder,
    fail,
    fail_error,
    print_json,
    usage_error,
    use_threads,
)
from reliqa.cli.options import JsonOption, OverwriteOption, ThreadsOption
from reliqa.exceptions import ReliqaError

DEFAULT_OUT = Path("tune_out")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@app.command("tune")
def tune_command(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for report.html, results.json, PNGs.")
    ] = DEFAULT_OUT,
    image: Annotated[
        str, typer.Option("--image", help="scikit-image photo name or an image file.")
    ] = "astronaut",
    size: Annotated[int, typer.Option("--size", help="Side of the square working image.")] = 256,
    tasks: Annotated[
        str, typer.Option("--tasks", help="Comma-separated: recover, correct, blackbox.")
    ] = "recover,correct,blackbox",
    losses: Annotated[
        str,
        typer.Option(
            "--losses",
            help="Comma-separated objectives to compare: relational, mse, or differentiable "
            "full-reference metrics by their catalogue names (ssim is the catalogue's grey SSIM, "
            "ssim_rgb the per-RGB-channel one).",
        ),
    ] = "relational,mse,ssim_rgb,ms_ssim_rgb",
    steps: Annotated[int, typer.Option("--steps", help="Gradient steps per run.")] = 150,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (normalised).")] = 0.05,
    budget: Annotated[int, typer.Option("--budget", help="Evaluations per black box.")] = 40,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same results.")] = 0,
    ref: Annotated[
        str | None, typer.Option("--ref", help="Reference file for the correct task.")
    ] = None,
    test: Annotated[
        str | None, typer.Option("--test", help="Test file tuned towards --ref.")
    ] = None,
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Tune a small image pipeline with the relational loss, side by side with MSE/SSIM/MS-SSIM."""
    if steps < 1 or budget < 1 or lr <= 0:
        usage_error("--steps and --budget must be ≥ 1 and --lr > 0")
    checked_output_folder(out, "--out", overwrite)  # before minutes of tuning
    use_threads(threads)
    from reliqa.reports.tuning_report import jsonable, write_report
    from reliqa.tuning import example

    def progress(label: str) -> None:
        if not as_json:
            typer.echo(f"tuning {label} …", err=True)

    try:
        result = example.run_example(
            image,
            size=size,
            tasks=_names(tasks),
            losses=_names(losses),
            steps=steps,
            lr=lr,
            budget=budget,
            seed=seed,
            reference=ref,
            test=test,
            progress=progress,
            on_task=lambda partial: write_report(partial, out),  # each task as it finishes
        )
        files = write_report(result, out)
    except ReliqaError as error:
        fail_error(error)
    except OSError as error:
        fail(f"--out {out}: cannot write ({error.strerror or error})")
    if as_json:
        print_json({**jsonable(result.to_dict()), "files": files})
        return
    for name, task in result.tasks.items():
        typer.echo(f"{name}:")
        for loss, run in task.runs.items():
            quality = ", ".join(f"{k} {v:.4g}" for k, v in run.quality.items() if v is not None)
            mean_error = run.mean_abs_error
            extra = "" if mean_error is None else f"  mean |param error| {mean_error:.3f}"
            typer.echo(f"  {loss:10s} {quality}  ({run.wall_time_s:.1f} s){extra}")
    typer.echo(f"report: {files['report']}")
