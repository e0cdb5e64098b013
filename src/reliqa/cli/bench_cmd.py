"""``reliqa bench`` (metrics against a human-rated dataset) and ``reliqa niqe-fit``.

The logic lives in :mod:`reliqa.evaluation.bench`, :mod:`reliqa.evaluation.datasets` and
:mod:`reliqa.metrics.niqe`; these commands parse options, call them and print.
"""

from __future__ import annotations

import datetime
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from reliqa.cli.app import (
    app,
    checked_device,
    checked_output_file,
    checked_output_folder,
    fail,
    print_json,
    print_result,
    usage_error,
    use_threads,
)
from reliqa.cli.options import (
    BatchSizeOption,
    DeviceOption,
    JsonOption,
    OverwriteOption,
    ThreadsOption,
    WorkersOption,
)
from reliqa.exceptions import InvalidInputError, ReliqaError, UnknownNameError

# `bench_command`'s own options (the shared ones come from reliqa.cli.options).
_DatasetArgument = Annotated[
    Path,
    typer.Argument(
        help="Dataset folder (layout auto-detected: LIVE, CSIQ, TID2013, KADID-10k, "
             "KonIQ-10k, SPAQ, PIPAL, LIVE Challenge, BIQ2021) or a CSV with columns "
             "image[,reference],mos[,std].",
    ),
]
_MetricsOption = Annotated[
    str,
    typer.Option(
        "--metrics", "-m",
        help="Comma-separated metric/model names, e.g. niqe,laplacian_var.",
    ),
]
_OutOption = Annotated[
    Path,
    typer.Option(
        "--out", "-o",
        help="Folder for scores.csv, summary.json and plots; an earlier run there is resumed.",
    ),
]
_LayoutOption = Annotated[
    str | None, typer.Option("--layout", help="Force a dataset layout instead of detecting it.")
]
_DmosOption = Annotated[
    bool, typer.Option("--dmos", help="For a CSV dataset: the scores are DMOS (lower = better).")
]
_LimitOption = Annotated[int | None, typer.Option("--limit", help="Use only the first N images.")]
_NoResumeOption = Annotated[
    bool, typer.Option("--no-resume", help="Discard scores.csv of an earlier run in --out.")
]
_NBootOption = Annotated[
    int, typer.Option("--n-boot", help="Bootstrap resamples for the confidence intervals.")
]
_SeedOption = Annotated[
    int, typer.Option("--seed", help="Seed of the bootstrap and the GMC query points.")
]


@app.command("bench")
def bench_command(
    dataset: _DatasetArgument,
    metrics: _MetricsOption,
    out: _OutOption = Path("runs/bench"),
    layout: _LayoutOption = None,
    dmos: _DmosOption = False,
    limit: _LimitOption = None,
    batch_size: BatchSizeOption = 8,
    device: DeviceOption = "cpu",
    workers: WorkersOption = 0,
    no_resume: _NoResumeOption = False,
    n_boot: _NBootOption = 1000,
    seed: _SeedOption = 0,
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Score a human-rated dataset with metrics/models; report SRCC/PLCC/KRCC (with CIs) and GMC.

    Correlations are direction-corrected: higher = agrees with human opinion, for every metric.
    """
    from reliqa.evaluation.bench import run_benchmark
    from reliqa.evaluation.dataset_layouts import load_dataset
    from reliqa.evaluation.datasets import read_csv_dataset

    names = [name.strip() for name in metrics.split(",") if name.strip()]
    if not names:
        usage_error("--metrics: give at least one metric or model name")
    if limit is not None and limit < 1:
        usage_error(f"--limit must be at least 1, got {limit}")
    if batch_size < 1:
        usage_error(f"--batch-size must be at least 1, got {batch_size}")
    device = checked_device(device)
    from reliqa.evaluation.bench import SCORES_FILE

    # A folder of an earlier run (its scores.csv) is resumed (or, with --no-resume, started
    # afresh); any other folder must be new or empty.
    if not (out / SCORES_FILE).is_file():
        checked_output_folder(out, "--out", overwrite)
    use_threads(threads)
    try:
        if dmos and (layout in (None, "csv")) and dataset.is_file():
            data = read_csv_dataset(dataset, higher_is_better=False)
        else:
            data = load_dataset(dataset, layout=layout)
        if limit is not None:
            data = data.head(limit)
        result = run_benchmark(
            data, names, out, batch_size=batch_size, device=device, resume=not no_resume,
            workers=workers, progress=not as_json, n_boot=n_boot, seed=seed,
        )
    except (UnknownNameError, InvalidInputError) as error:
        usage_error(str(error))
    except ReliqaError as error:
        fail(str(error))

    if as_json:
        print_json(result.to_dict())
    else:
        _print_table(result)


def _interval(report: dict[str, Any], key: str) -> str:
    """``0.612`` and, below it, ``[0.580, 0.641]`` from a correlation_report entry; ``—`` if absent."""
    entry = report.get(key)
    if not entry:
        return "—"
    low_high = entry.get("ci")
    return f"{entry['value']:.3f}" + (f"\n[{low_high[0]:.3f}, {low_high[1]:.3f}]" if low_high else "")


def _print_table(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"{result.dataset}: {result.items} images ({result.failed} failed), "
        "direction-corrected (higher = agrees with MOS), 95 % bootstrap CI"
    )
    for column in ("metric", "n", "SRCC", "PLCC", "PLCC (logistic)", "KRCC", "GMC avg height\nSRCC / PLCC / KRCC"):
        table.add_column(column)
    for summary in result.metrics.values():
        heights = summary.gmc_average_height
        gmc_cell = " / ".join(f"{heights[k]:.3f}" if k in heights else "—" for k in ("SRCC", "PLCC", "KRCC"))
        table.add_row(
            summary.name,
            str(summary.count),
            *(_interval(summary.correlations, key) for key in ("SRCC", "PLCC", "PLCC_logistic", "KRCC")),
            gmc_cell,
        )
    errors = [f"{s.name}: {s.error}" for s in result.metrics.values() if s.error]
    console = Console()
    if not console.is_terminal:  # a pipe or file: no width to respect, keep the table whole
        console.width = 160
    console.print(table)
    for line in errors:
        console.print(f"[red]{line}[/red]")
    console.print(f"scores: {result.scores_csv}; summary and plots in {result.out_dir}")


@app.command("niqe-fit")
def niqe_fit_command(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder of pristine photos (searched recursively).",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o",
            help="Parameter file to write (.safetensors; a .json card is written beside it).",
        ),
    ],
    patch_size: Annotated[
        int,
        typer.Option(
            "--patch-size",
            help="Patch side at the first scale (even).",
        ),
    ] = 96,
    sharpness_threshold: Annotated[
        float,
        typer.Option(
            "--sharpness-threshold",
            help="Keep patches sharper than this fraction of the photo's sharpest.",
        ),
    ] = 0.75,
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Fit the NIQE pristine model (mean and covariance of patch features) on a folder of photos."""
    from reliqa.io import list_images
    from reliqa.metrics.niqe import fit_pristine, save_params

    if patch_size < 2 or patch_size % 2:
        usage_error(f"--patch-size must be an even number ≥ 2, got {patch_size}")
    if not 0.0 <= sharpness_threshold < 1.0:
        usage_error(f"--sharpness-threshold must lie in [0, 1), got {sharpness_threshold}")
    # the parameter file and the model card beside it: neither may replace an existing file
    checked_output_file(out, "--out", overwrite, (".safetensors",))
    checked_output_file(out.with_suffix(".json"), "--out (its model card)", overwrite)
    use_threads(threads)
    try:
        photos = list_images(folder, recursive=True)
        if not photos:
            fail(f"{folder}: no image files found")
        params = fit_pristine(photos, patch_size=patch_size, sharpness_threshold=sharpness_threshold)
        provenance = {
            "command": "reliqa niqe-fit " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
            "data": str(folder),
            "photos": [str(p.relative_to(folder)) for p in photos],
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        save_params(params, out, provenance=provenance)
    except ReliqaError as error:
        fail(str(error))
    payload = {
        "out": str(out),
        "card": str(out.with_suffix(".json")),
        "photos": params.num_images,
        "patches": params.num_patches,
        "patch_size": params.patch_size,
        "sharpness_threshold": params.sharpness_threshold,
    }
    print_result(
        as_json, payload,
        f"fitted on {params.num_patches} patches of {params.num_images} photos → {out} "
        f"(card {payload['card']})",
    )
