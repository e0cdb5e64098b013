"""``reliqa batch``: score many images or pairs, resumably (logic in reliqa.batch)."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from reliqa.cli.app import (
    EXIT_INPUT_FAILED,
    EXIT_OK,
    USAGE_ERRORS,
    app,
    exit_code,
    fail,
    fail_error,
    print_json,
    usage_error,
    use_threads,
)
from reliqa.cli.options import (
    BatchSizeOption,
    EngineDeviceOption,
    JsonOption,
    ThreadsOption,
    WorkersOption,
)
from reliqa.exceptions import InvalidInputError, ReliqaError

if TYPE_CHECKING:  # the command imports the batch part (torch) only when it runs
    from reliqa.batch.runner import BatchSummary

# Exit codes (README, docs/batch.md): 1 = an input failed (rows with errors; an unreadable
# pairs CSV, list or results file to merge; weights that fail their check), 2 = bad usage. In
# batch an image's own problems become error rows, so an InvalidInputError that reaches the
# command is about the options (unknown shard spec, FR metric without pairs, an empty folder,
# an --out that is not this run's): bad usage too, besides reliqa.cli.app.USAGE_ERRORS.
_BATCH_USAGE = (*USAGE_ERRORS, InvalidInputError)


# `batch_command`'s own options (the shared ones come from reliqa.cli.options).
_InputsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="INPUT...",
        help="Image files, folders, quoted glob patterns ('shots/**/*.jpg') or .csv/.parquet "
             "lists of image paths (column 'image'). With --ref-dir: the test images. Not "
             "used with --pairs. With --merge: the results files to join.",
        show_default=False,
    ),
]
_MetricsOption = Annotated[
    str | None,
    typer.Option(
        "--metrics", "-m",
        help="Comma-separated metric/model names, e.g. hirqa-s,niqe or ssim,relational.",
    ),
]
_OutOption = Annotated[
    Path,
    typer.Option(
        "--out", "-o",
        help="Results file: .csv, or .parquet (needs pyarrow); with --engine ray a folder of "
             "Parquet parts. An existing output is resumed: items already in it are skipped.",
    ),
]
_PairsOption = Annotated[
    Path | None,
    typer.Option(
        "--pairs",
        help="CSV with columns 'reference' and 'test' (paths relative to the CSV).",
    ),
]
_RefDirOption = Annotated[
    Path | None,
    typer.Option(
        "--ref-dir",
        help="Folder of references, matched to the INPUT images by file stem.",
    ),
]
_ReportOption = Annotated[
    Path | None,
    typer.Option("--report", help="Write a self-contained HTML report into this folder."),
]
_MosOption = Annotated[
    Path | None,
    typer.Option(
        "--mos",
        help="CSV of human scores (columns: image name, MOS) for the report's correlation "
             "table and GMC plots.",
    ),
]
_MapsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--maps-dir",
        help="Save each pair's distortion maps (.npz) here (needs relational).",
    ),
]
_ShardOption = Annotated[
    str | None,
    typer.Option(
        "--shard",
        metavar="I/N",
        help="Score only shard I of N (1..N), chosen by a hash of each input's path; writes "
             "OUT as NAME.shard-I-of-N.EXT. Merge with --merge.",
    ),
]
_MergeOption = Annotated[
    bool,
    typer.Option(
        "--merge",
        help="INPUT are results files (e.g. the shards of one run): join them into --out "
             "(.csv or .parquet); refuses other metric sets and duplicate rows.",
    ),
]
_EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local (this machine) or ray (Ray Data, needs reliqa[ray]; --out is then a "
             "folder of Parquet parts).",
    ),
]
_ActorsOption = Annotated[int, typer.Option("--actors", help="With --engine ray: scoring actors.")]
_CpusPerActorOption = Annotated[
    float,
    typer.Option(
        "--cpus-per-actor",
        help="With --engine ray: num_cpus (and torch threads) per actor.",
    ),
]
_GpusPerActorOption = Annotated[
    float | None,
    typer.Option(
        "--gpus-per-actor",
        help="With --engine ray: num_gpus per actor (fractions share a GPU); default 1 when "
             "the cluster has GPUs, else 0.",
        show_default=False,
    ),
]
_RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="With --engine ray: a running cluster ('auto', 'ray://host:10001'); default: "
             "start a local one.",
    ),
]


@app.command("batch")
def batch_command(
    *,
    inputs: _InputsArgument = None,
    metrics: _MetricsOption = None,
    out: _OutOption,
    pairs: _PairsOption = None,
    ref_dir: _RefDirOption = None,
    report: _ReportOption = None,
    mos: _MosOption = None,
    device: EngineDeviceOption = None,
    workers: WorkersOption = 2,
    batch_size: BatchSizeOption = 8,
    maps_dir: _MapsDirOption = None,
    shard: _ShardOption = None,
    merge: _MergeOption = False,
    engine: _EngineOption = "local",
    actors: _ActorsOption = 2,
    cpus_per_actor: _CpusPerActorOption = 1.0,
    gpus_per_actor: _GpusPerActorOption = None,
    ray_address: _RayAddressOption = None,
    as_json: JsonOption = False,
    threads: ThreadsOption = None,
) -> None:
    """Score images (no-reference) or pairs (full-reference) with several metrics in one pass."""
    if merge:
        _merge(inputs or [], out, as_json)
    names = _checked_names(metrics)
    _check_sources(inputs, pairs, ref_dir, engine, report, maps_dir)
    use_threads(threads)
    from reliqa import batch

    try:
        items = batch.items_from_sources(inputs or [], pairs=pairs, ref_dir=ref_dir)
        # the whole run's mode, before sharding: a shard without pairs is still a pair run
        pair_run = any(item.reference is not None for item in items)
        if shard is not None:  # an empty shard writes a header-only output, so merges work
            index, count = batch.parse_shard(shard)
            items = batch.select_shard(items, index, count)
            out = batch.shard_output(out, index, count)
        with batch.progress_bar(enabled=not as_json) as on_progress:
            if engine == "ray":
                from reliqa.batch.distributed import score_dataset

                summary = score_dataset(
                    items, names, out, actors=actors, cpus_per_actor=cpus_per_actor,
                    gpus_per_actor=gpus_per_actor, device=device,
                    batch_size=batch_size, address=ray_address, on_progress=on_progress,
                    pairs_run=pair_run,
                )
            else:
                summary = batch.run_batch(
                    items, names, out, device=device, workers=workers, batch_size=batch_size,
                    maps_dir=maps_dir, on_progress=on_progress,
                    pairs=pair_run,
                )
    except ReliqaError as error:
        fail_error(error, _BATCH_USAGE)
    except RuntimeError as error:  # e.g. an unavailable --device
        usage_error(f"--device {device}: {error}")
    report_path = _write_report(summary.out, report, mos, device or "cpu") if report is not None else None
    _print_summary(summary, report_path, as_json)
    raise typer.Exit(EXIT_OK if summary.ok else EXIT_INPUT_FAILED)


def _checked_names(metrics: str | None) -> list[str]:
    """``--metrics`` in either spelling → the catalogue's spelling (the CSV's column names)."""
    from reliqa.catalogue import canonical_name

    names = [canonical_name(name.strip()) for name in metrics.split(",") if name.strip()] if metrics else []
    if not names:
        usage_error("--metrics: give at least one metric or model name")
    return names


def _check_sources(
    inputs: list[str] | None,
    pairs: Path | None,
    ref_dir: Path | None,
    engine: str,
    report: Path | None,
    maps_dir: Path | None,
) -> None:
    """Bad usage of the input and output options, refused before any scoring (exit 2)."""
    if pairs is not None and ref_dir is not None:
        usage_error("give either --pairs or --ref-dir, not both")
    if pairs is not None and inputs:
        usage_error("with --pairs the images come from the CSV; give no INPUT")
    if pairs is None and not inputs:
        usage_error("give INPUT images/folders (or --pairs PAIRS.csv)")
    if engine not in ("local", "ray"):
        usage_error(f"--engine {engine}: choose local or ray")
    if engine == "ray" and (report is not None or maps_dir is not None):
        usage_error("--report and --maps-dir work with --engine local; merge the Ray output into "
                    "a CSV (--merge) and run the report from it")
    if report is not None:  # a refused report must not cost the whole run
        from reliqa.reports.batch_report import check_report_dir

        try:
            check_report_dir(report)
        except ReliqaError as error:
            usage_error(f"--report: {error}")


def _write_report(results: Path, report: Path, mos: Path | None, device: str) -> Path:
    """``--report``: the HTML report of the results (the worst pairs' maps are computed by the
    report itself: none are stored per pair)."""
    from reliqa.reports.batch_report import write_batch_report

    try:
        return write_batch_report(results, report, mos=mos, device=device)
    except ReliqaError as error:
        fail(f"--report: {error}", exit_code(error, _BATCH_USAGE))


def _print_summary(summary: BatchSummary, report_path: Path | None, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "out": str(summary.out),
                "rows": summary.total,
                "scored_now": summary.scored_now,
                "skipped": summary.skipped,
                "failed": summary.failed,
                "seconds": round(summary.seconds, 3),
                "columns": summary.columns,
                "report": str(report_path) if report_path else None,
            }
        )
        return
    typer.echo(
        f"{summary.total} rows in {summary.out} ({summary.scored_now} scored now, "
        f"{summary.skipped} already done, {summary.failed} with errors) "
        f"in {summary.seconds:.1f} s",
        err=True,
    )
    if report_path:
        typer.echo(f"report: {report_path}", err=True)


def _merge(sources: list[str], out: Path, as_json: bool) -> NoReturn:
    """``reliqa batch --merge SHARD... --out FILE``."""
    from reliqa import batch

    if not sources:
        usage_error("--merge: give the results files to merge as INPUT")
    try:
        paths: list[str] = []
        for source in sources:  # quoted globs ('results.shard-*.csv') expand here
            matches = sorted(glob.glob(source)) if glob.has_magic(source) and not Path(source).exists() else []
            paths += matches or [source]
        summary = batch.merge_results(paths, out)
    except ReliqaError as error:  # unreadable or mismatched files: 1; an existing --out: 2
        fail_error(error, _BATCH_USAGE)
    if as_json:
        print_json(
            {
                "out": str(summary.out),
                "rows": summary.rows,
                "failed": summary.failed,
                "sources": [str(path) for path in summary.sources],
                "columns": summary.columns,
            }
        )
    else:
        typer.echo(
            f"{summary.rows} rows from {len(summary.sources)} files in {summary.out} "
            f"({summary.failed} with errors)",
            err=True,
        )
    raise typer.Exit(EXIT_OK if summary.ok else EXIT_INPUT_FAILED)
