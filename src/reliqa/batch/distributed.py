"""Scoring millions of images on Ray Data (optional extra: ``pip install 'reliqa[ray]'``).

Two pieces, documented in docs/distributed.md:

- :class:`ScoreImages`, a callable class for :meth:`ray.data.Dataset.map_batches`: each actor
  builds its metrics/models once (in ``__init__``), then decodes and scores the rows it gets.
  A batch in is a dict of arrays with a column ``image`` (paths) and, for pairs, ``reference``;
  the batch out has ``image``, [``reference``], one float64 column per metric (NaN where it
  could not score) and ``error`` (empty when the row is complete). Decoding and scoring are
  :func:`reliqa.batch.runner.decode_item` and :func:`~reliqa.batch.runner.score_decoded`,
  the code ``reliqa batch`` runs, so both engines give the same rows.

- :func:`score_dataset` (``reliqa batch --engine ray``): inputs (folders, globs, a CSV or
  Parquet list of paths, pairs) → a folder of Parquet files, one row per input. It resumes:
  rows already in the folder are skipped. Each part file is written by the driver to a hidden
  temporary name, fsynced and renamed, so a killed run leaves only whole parts behind and a
  restart neither loses nor duplicates a row. Broken files are rows with an ``error``.

Use it in your own pipeline::

    import ray
    from reliqa.batch.distributed import ScoreImages

    ds = ray.data.read_parquet("s3://bucket/paths.parquet")          # a column "image"
    scores = ds.map_batches(
        ScoreImages,
        fn_constructor_kwargs={"metrics": ["hirqa-s", "niqe"]},
        compute=ray.data.ActorPoolStrategy(size=8),
        batch_size=32,
        num_gpus=1,                                                    # or num_cpus=1
    )
    scores.write_parquet("s3://bucket/scores/")
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reliqa.batch.inputs import (
    ERROR_COLUMN,
    IMAGE_COLUMN,
    REFERENCE_COLUMN,
    BatchItem,
    items_from_sources,
)
from reliqa.batch.journal import one_line
from reliqa.batch.parquet import parquet_parts, pyarrow_parquet
from reliqa.batch.runner import (
    BatchSummary,
    decode_item,
    resolve_scorers,
    result_columns,
    score_decoded,
)
from reliqa.checks import resolve_device
from reliqa.exceptions import DataError, InvalidInputError, OutputExistsError

__all__ = ["PROBLEM_COLUMN", "ScoreImages", "ray_available", "score_dataset"]

PROBLEM_COLUMN = "problem"
"""Optional input column: an error known before decoding (e.g. a test image without reference)."""

ROWS_PER_BLOCK = 64
"""Input rows per Ray block: small enough to spread 50 images over 2 actors, large enough that
per-task overhead (~ms) stays small next to decoding and scoring (~10–100 ms per image)."""

_PART_PREFIX = "part-"


def ray_available() -> bool:
    """True when the ``ray[data]`` extra is installed."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise InvalidInputError(
            "--engine ray needs Ray Data: pip install 'reliqa[ray]'"
        ) from None
    return ray


class ScoreImages:
    """Ray Data UDF: decode and score a batch of image paths (one actor, models loaded once).

    Args:
        metrics: metric or model names (``reliqa.list_metrics()``, ``reliqa.list_models()``).
        device: torch device; default ``"auto"`` (:func:`reliqa.checks.resolve_device`): CUDA
            when the actor sees a GPU, else the CPU.
        batch_size: most same-size images stacked into one forward pass (as ``reliqa batch``).
        threads: torch CPU threads in the actor (default: torch's own choice, which Ray sets
            from the actor's ``num_cpus``).
        pairs: allow full-reference names (default True). A batch without a ``reference``
            column gets no full-reference score; its rows say so in ``error``.

    Input batch (``batch_format="numpy"`` or ``"pandas"``): column ``image``, optional
    ``reference`` and ``problem``. Output: ``image``, [``reference``], one float64 column per
    metric (NaN when it could not score the row) and ``error`` (text, empty when complete).

    Raises:
        UnknownNameError, InvalidInputError: in the constructor, for bad metric names.
    """

    def __init__(
        self,
        metrics: Sequence[str],
        *,
        device: str | None = None,
        batch_size: int = 8,
        threads: int | None = None,
        pairs: bool = True,
    ) -> None:
        if threads is not None:
            torch.set_num_threads(max(1, threads))
        self.device = resolve_device("auto" if device is None else device)
        self.names = list(metrics)
        self.batch_size = batch_size
        # pairs=True here only allows FR names; whether a row has a reference is per batch.
        self.scorers = resolve_scorers(self.names, self.device, pairs=pairs)

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        images = [str(value) for value in batch[IMAGE_COLUMN]]
        references = (
            [str(value) for value in batch[REFERENCE_COLUMN]] if REFERENCE_COLUMN in batch else None
        )
        problems = [str(value) for value in batch[PROBLEM_COLUMN]] if PROBLEM_COLUMN in batch else None
        items = [
            BatchItem(
                image=image,
                reference=None if references is None else references[position],
                problem=(problems[position] or None) if problems is not None else None,
            )
            for position, image in enumerate(images)
        ]
        unpaired = (
            [f"{s.name}: full-reference, but the batch has no 'reference' column"
             for s in self.scorers if s.kind == "FR"]
            if references is None
            else []
        )
        scores = {name: np.full(len(items), np.nan, dtype=np.float64) for name in self.names}
        errors = [""] * len(items)
        decoded = (decode_item(item, index) for index, item in enumerate(items))
        with torch.inference_mode():
            for item, values, texts in score_decoded(
                self.scorers, decoded, self.device, self.batch_size
            ):
                for name, value in values.items():
                    scores[name][item.index] = value
                errors[item.index] = one_line("; ".join([*texts, *unpaired]))
        out: dict[str, np.ndarray] = {IMAGE_COLUMN: np.array(images, dtype=object)}
        if references is not None:
            out[REFERENCE_COLUMN] = np.array([item.reference for item in items], dtype=object)
        out.update(scores)
        out[ERROR_COLUMN] = np.array(errors, dtype=object)
        return out


# ----------------------------------------------------------------------------------- output


def _check_out_folder(out: Path, columns: Sequence[str]) -> set[tuple[str, str]]:
    """Keys of the rows already in ``out`` (a folder of Parquet parts); refuse a foreign one.

    Raises:
        InvalidInputError: ``out`` is a file, or its parent cannot be created.
        OutputExistsError: a part has other columns (another metric set or mode) or is not
            Parquet: not this run's output.
    """
    if out.exists() and not out.is_dir():
        raise InvalidInputError(
            f"--out {out}: exists and is a file; --engine ray writes a folder of Parquet parts "
            "(give a new name such as results.parquet)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidInputError(f"--out {out}: cannot create the folder ({error.strerror})") from None
    parquet = pyarrow_parquet()
    done: set[tuple[str, str]] = set()
    for part in parquet_parts(out):
        try:
            names = parquet.read_schema(part).names
        except Exception as error:  # not this run's output: refused, left as it is (exit 2)
            raise OutputExistsError(f"{part}: not a readable Parquet file ({error})") from None
        if names != list(columns):
            raise OutputExistsError(
                f"{part}: has the columns {names}, but this run writes {list(columns)}; give "
                "another --out (or delete the folder) to start afresh"
            )
        keys = parquet.read_table(part, columns=[c for c in (REFERENCE_COLUMN, IMAGE_COLUMN) if c in names])
        images = keys.column(IMAGE_COLUMN).to_pylist()
        refs = keys.column(REFERENCE_COLUMN).to_pylist() if REFERENCE_COLUMN in names else [""] * len(images)
        done.update(zip((ref or "" for ref in refs), images))
    return done


def _to_table(batch: dict[str, np.ndarray], columns: Sequence[str]) -> Any:
    """A scored batch → ``pyarrow.Table`` with the columns of ``reliqa batch``'s Parquet."""
    pyarrow_parquet()
    pa = importlib.import_module("pyarrow")

    data = {}
    for column in columns:
        values = batch[column]
        if column in (IMAGE_COLUMN, REFERENCE_COLUMN, ERROR_COLUMN):
            data[column] = pa.array([str(value) for value in values], pa.string())
        else:  # NaN (not scored) is stored as null, as in `reliqa batch`'s Parquet
            data[column] = pa.array(np.asarray(values, dtype=np.float64), pa.float64(), from_pandas=True)
    return pa.table(data)


def _write_part(table: Any, folder: Path, name: str) -> None:
    parquet = pyarrow_parquet()
    temporary = folder / f".{name}.tmp"
    parquet.write_table(table, temporary)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, folder / name)


def _count_rows(out: Path) -> tuple[int, int]:
    parquet = pyarrow_parquet()
    total = failed = 0
    for part in parquet_parts(out):
        errors = parquet.read_table(part, columns=[ERROR_COLUMN]).column(ERROR_COLUMN).to_pylist()
        total += len(errors)
        failed += sum(1 for error in errors if error)
    return total, failed


# ----------------------------------------------------------------------------------- the run


def score_dataset(
    inputs: Sequence[str | os.PathLike[str]] | Sequence[BatchItem],
    metrics: Sequence[str],
    out: str | os.PathLike[str],
    *,
    pairs: str | os.PathLike[str] | None = None,
    ref_dir: str | os.PathLike[str] | None = None,
    actors: int = 2,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float | None = None,
    device: str | None = None,
    batch_size: int = 8,
    rows_per_file: int = 4096,
    address: str | None = None,
    quiet: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    pairs_run: bool | None = None,
) -> BatchSummary:
    """Score images or pairs on Ray Data and write a resumable folder of Parquet parts.

    Args:
        inputs: image files, folders, glob patterns, CSV/Parquet lists of paths (column
            ``image``, with ``reference`` for pairs) — or :class:`BatchItem` s. With ``ref_dir``:
            the test images. Ignored with ``pairs``.
        metrics: metric or model names.
        out: the output folder (created; e.g. ``results.parquet``). Rows already in it are
            skipped; parts with other columns are refused.
        pairs: a pairs CSV (as ``reliqa batch --pairs``).
        ref_dir: a reference folder matched by file stem (as ``reliqa batch --ref-dir``).
        actors: Ray actors scoring in parallel (each loads the models once).
        cpus_per_actor: ``num_cpus`` of each actor (also its torch threads, rounded down).
        gpus_per_actor: ``num_gpus`` of each actor; default 1 when the cluster has GPUs, else 0.
        device: torch device in the actors; default ``cuda`` when they get a GPU, else ``cpu``.
        batch_size: most same-size images per forward pass inside an actor.
        rows_per_file: rows per Parquet part; a killed run rescores at most the rows not yet
            in a part (up to this many plus those in flight).
        address: a running Ray cluster (``"auto"``, ``"ray://host:10001"``); default: the one
            this process is connected to, else a local one started here (loopback only,
            no dashboard) and stopped at the end.
        quiet: hide Ray Data's progress output.
        on_progress: called with (rows written by this run, rows to score) after each part.
        pairs_run: whether this is a pair run (default: whether any item has a reference);
            give it for a shard that may be empty (its folder is then created, empty).

    Returns:
        A :class:`reliqa.batch.runner.BatchSummary` (``out`` is the folder).

    Raises:
        InvalidInputError: Ray is not installed, bad arguments, ``out`` a file.
        UnknownNameError: an unknown metric or model name.
        OutputExistsError: ``out`` holds parts with other columns.
    """
    started = time.perf_counter()
    _check_sizes(actors=actors, batch_size=batch_size, rows_per_file=rows_per_file)
    ray = _import_ray()
    items, has_pairs = _items_and_mode(inputs, pairs=pairs, ref_dir=ref_dir, pairs_run=pairs_run)
    # Checks the names (unknown, repeated, FR without pairs) here, before any actor starts.
    names = [scorer.name for scorer in resolve_scorers(list(metrics), torch.device("cpu"), pairs=has_pairs)]
    columns = result_columns(names, pairs=has_pairs)
    out = Path(out)
    todo = _items_not_written(items, out, columns)
    if todo:
        with _ray_session(
            ray, out, address=address, actors=actors, cpus_per_actor=cpus_per_actor, quiet=quiet
        ):
            _run(ray, todo, names, out, has_pairs, actors=actors, cpus_per_actor=cpus_per_actor,
                 gpus_per_actor=gpus_per_actor, device=device, batch_size=batch_size,
                 rows_per_file=rows_per_file, quiet=quiet, on_progress=on_progress)
    total, failed = _count_rows(out)
    return BatchSummary(
        out=out,
        total=total,
        scored_now=len(todo),
        skipped=len(items) - len(todo),
        failed=failed,
        seconds=time.perf_counter() - started,
        columns=columns,
    )


def _check_sizes(*, actors: int, batch_size: int, rows_per_file: int) -> None:
    if actors < 1:
        raise InvalidInputError(f"--actors must be at least 1, got {actors}")
    if batch_size < 1 or rows_per_file < 1:
        raise InvalidInputError("batch_size and rows_per_file must be at least 1")


def _items_and_mode(
    inputs: Sequence[str | os.PathLike[str]] | Sequence[BatchItem],
    *,
    pairs: str | os.PathLike[str] | None,
    ref_dir: str | os.PathLike[str] | None,
    pairs_run: bool | None,
) -> tuple[list[BatchItem], bool]:
    """The items to score and whether this is a pair run (``pairs_run``, else: any reference)."""
    items = (
        list(inputs)
        if inputs and all(isinstance(item, BatchItem) for item in inputs)
        else items_from_sources([Path(str(i)) for i in inputs], pairs=pairs, ref_dir=ref_dir)
    )
    if not items and pairs_run is None:
        raise InvalidInputError("no input images")
    items = [item for item in items if isinstance(item, BatchItem)]
    has_pairs = any(item.reference is not None for item in items) if pairs_run is None else pairs_run
    return items, has_pairs


def _items_not_written(items: Sequence[BatchItem], out: Path, columns: Sequence[str]) -> list[BatchItem]:
    """The items without a row in ``out`` yet (checked as this run's folder, stale parts removed)."""
    done = _check_out_folder(out, columns)
    for stale in out.glob(f".{_PART_PREFIX}*.tmp"):  # a part a killed run did not finish
        stale.unlink(missing_ok=True)
    return [item for item in items if item.key not in done]


@contextmanager
def _ray_session(
    ray: Any, out: Path, *, address: str | None, actors: int, cpus_per_actor: float, quiet: bool
) -> Iterator[None]:
    """Ray for the run: the cluster this process is connected to, else the one at ``address``
    or a local one, shut down after. A Ray failure inside becomes one :class:`DataError`."""
    started_here = not ray.is_initialized()
    if started_here:
        _init_ray(ray, address, actors=actors, cpus_per_actor=cpus_per_actor, quiet=quiet)
    try:
        yield
    except ray.exceptions.RayError as error:
        # e.g. an actor that cannot build its models, or the cluster lost: one line, and
        # what is written is kept for the rerun.
        first_line = next((line for line in str(error).splitlines() if line.strip()), "")
        raise DataError(
            f"the Ray job stopped ({type(error).__name__}: {first_line[:300]}); the parts "
            f"already in {out} are kept, rerun the same command to resume"
        ) from None
    finally:
        if started_here:
            ray.shutdown()


def _init_ray(ray: Any, address: str | None, *, actors: int, cpus_per_actor: float, quiet: bool) -> None:
    """Join the cluster at ``address``, else start a local one (loopback only, no dashboard)."""
    level = logging.WARNING if quiet else logging.INFO
    _quiet_ray_start()
    if address:
        ray.init(address=address, log_to_driver=not quiet, logging_level=level)
    else:
        ray.init(
            num_cpus=max(1, math.ceil(actors * cpus_per_actor)),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=not quiet,
            logging_level=level,
        )


RAY_NOISY_LOGGERS: tuple[str, ...] = ("ray._private.authentication.authentication_token_setup",)
"""Ray loggers set to ERROR before reliqa starts or joins a cluster: each run printed "Token
authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out" — news
about Ray's default (token auth on; it stays on), not about the run. Not quieted, because only
Ray's C++ log level could (and that hides every C++ error): the ``E … core_worker.cc`` line
"Actor … has constructor arguments in the object store and max_restarts > 0", a false alarm
about Ray Data's own actor arguments (ray-project/ray#57733), docs/distributed.md."""


def _quiet_ray_start() -> None:
    for name in RAY_NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _run(
    ray: Any,
    todo: Sequence[BatchItem],
    names: Sequence[str],
    out: Path,
    pairs: bool,
    *,
    actors: int,
    cpus_per_actor: float,
    gpus_per_actor: float | None,
    device: str | None,
    batch_size: int,
    rows_per_file: int,
    quiet: bool,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    context = ray.data.DataContext.get_current()
    if quiet:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        context.enable_progress_bars = False
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if gpus_per_actor is None:
        gpus_per_actor = 1.0 if cluster_gpus > 0 else 0.0
    if (device or "").startswith("cuda") and (cluster_gpus == 0 or gpus_per_actor == 0):
        raise InvalidInputError(
            f"--device {device}: the Ray cluster has {cluster_gpus:g} GPUs and each actor asks "
            f"for {gpus_per_actor:g}; use --gpus-per-actor, or leave --device out (the actors "
            "use a GPU when they get one)"
        )
    if device is None:
        device = "cuda" if gpus_per_actor > 0 else "cpu"
    rows = []
    for item in todo:
        row = {IMAGE_COLUMN: item.image, PROBLEM_COLUMN: item.problem or ""}
        if pairs:
            row[REFERENCE_COLUMN] = item.reference or ""
        rows.append(row)
    blocks = min(len(rows), max(2 * actors, math.ceil(len(rows) / ROWS_PER_BLOCK)))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    scored = dataset.map_batches(
        ScoreImages,
        fn_constructor_kwargs={
            "metrics": list(names),
            "device": device,
            "batch_size": batch_size,
            "threads": max(1, int(cpus_per_actor)),
            "pairs": pairs,
        },
        batch_size=max(batch_size, 16),
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
    )
    columns = result_columns(names, pairs=pairs)
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    written = 0
    for sequence, batch in enumerate(scored.iter_batches(batch_size=rows_per_file, batch_format="numpy")):
        table = _to_table(batch, columns)
        _write_part(table, out, f"{_PART_PREFIX}{run_id}-{sequence:06d}.parquet")
        written += table.num_rows
        if on_progress is not None:
            on_progress(written, len(todo))
