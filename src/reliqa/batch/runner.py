"""The batch runner: decode once, score every metric/model, journal each row (resumable).

What a run does (``reliqa batch`` is a thin shell over :func:`run_batch`):

1. **Inputs** become :class:`BatchItem` s in a fixed order (:mod:`reliqa.batch.inputs`):
   (a) files, folders or glob patterns of images (no-reference scoring, :func:`items_from_inputs`),
   (b) a CSV of (reference, test) pairs (:func:`items_from_pairs_csv`), or (c) a folder of test
   images matched to a reference folder by file stem (:func:`items_from_ref_dir`). A run may
   take one shard of them (:func:`select_shard`, ``--shard I/N``).
2. **Decoding** happens once per item, in DataLoader worker processes (:func:`decode_item`,
   which calls :func:`reliqa.io.load_image`, the only loader); every metric/model then scores
   the same decoded tensors. Consecutive items of the same size are stacked into one forward
   pass (:func:`score_decoded`: at most ``batch_size`` images and :data:`MAX_BATCH_PIXELS`).
3. **Output** is a journal (:mod:`reliqa.batch.journal`): one complete CSV line per
   item, appended with a single ``write`` and flushed, ``fsync`` ed every ``FSYNC_EVERY`` rows.
   ``kill -9`` can therefore lose only the items being scored at that moment (at most one
   stack) and at worst leave a torn last line, which the next run cuts off before it appends
   (after checking the header: a file that is not this run's results is never modified). A
   restarted run reads the journal and skips every item already in it. With a ``.parquet``
   output the journal sits beside it (``<out>.partial.csv``) and becomes the Parquet file at
   the end (write-temp-then-rename).
4. **Failures** never stop a run: an unreadable file, or a metric that refuses an image, becomes
   that row's ``error`` text (other metrics of the row keep their values).

:func:`decode_item` and :func:`score_decoded` are also what the Ray engine
(:mod:`reliqa.batch.distributed`) runs inside its actors, so both engines give the same rows.

CSV columns: ``image``, ``reference`` (pair modes only), one column per metric/model name in
the order given, ``maps`` (only with ``maps_dir``), ``error`` (empty when the row is complete).
Scores are written with ``repr`` (exact float64 round trip); a missing score is an empty cell.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset

from reliqa.batch.inputs import (
    ERROR_COLUMN,
    IMAGE_COLUMN,
    MAPS_COLUMN,
    REFERENCE_COLUMN,
    BatchItem,
)
from reliqa.batch.journal import ResultsJournal, check_output_path, one_line
from reliqa.batch.parquet import pyarrow_parquet
from reliqa.batch.results import read_results_with_columns, write_parquet
from reliqa.checks import resolve_device
from reliqa.evaluation.scorers import Scorer, resolve_scorer
from reliqa.exceptions import DataError, InvalidInputError, OutputExistsError, ReliqaError
from reliqa.io import load_image, save_maps

MAX_BATCH_PIXELS: int = 8 * 1024 * 1024
"""Largest total pixel count stacked into one forward pass (keeps big images one at a time)."""


@dataclass
class BatchSummary:
    """What a run did. ``failed`` counts rows of the whole output (earlier runs included)."""

    out: Path
    total: int
    scored_now: int
    skipped: int
    failed: int
    seconds: float
    columns: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0


# ----------------------------------------------------------------------------------- decoding


@dataclass
class Decoded:
    """One decoded item: tensors (1, 3, H, W) or an error. ``index`` is its place in the run."""

    index: int
    test: torch.Tensor | None
    reference: torch.Tensor | None
    error: str | None


def decode_item(item: BatchItem, index: int = 0) -> Decoded:
    """Decode one item with :func:`reliqa.io.load_image`; any failure becomes ``error`` text."""
    if item.problem:
        return Decoded(index, None, None, item.problem)
    try:
        reference = load_image(item.reference) if item.reference else None
        test = load_image(item.image)
    except ReliqaError as error:
        return Decoded(index, None, None, one_line(str(error)))
    except Exception as error:
        return Decoded(
            index, None, None,
            one_line(f"{item.image}: cannot be decoded ({type(error).__name__}: {error})"),
        )
    return Decoded(index, test, reference, None)


class _DecodeDataset(Dataset[Decoded]):
    def __init__(self, items: Sequence[BatchItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded:
        return decode_item(self.items[index], index)


def _pass_through(decoded: Decoded) -> Decoded:
    return decoded


def _single_thread_worker(_: int) -> None:
    # Decoding is the workers' only job; torch threads there would fight the model for cores.
    torch.set_num_threads(1)


def _decode(items: Sequence[BatchItem], workers: int) -> Iterator[Decoded]:
    loader = DataLoader(
        _DecodeDataset(items),
        batch_size=None,
        num_workers=workers,
        collate_fn=cast(Callable[[list[Any]], Any], _pass_through),
        worker_init_fn=_single_thread_worker if workers else None,
        prefetch_factor=2 if workers else None,
    )
    return iter(loader)


# ----------------------------------------------------------------------------------- scoring

Scored = tuple[Decoded, dict[str, float], list[str]]
"""A decoded item, its scores by name, and its error texts."""


def _describe_failure(scorer: Scorer, error: Exception) -> str:
    message = str(error) if isinstance(error, ReliqaError) else f"{type(error).__name__}: {error}"
    return message if message.startswith(scorer.name) else f"{scorer.name}: {message}"


def _stack(images: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(1, 3, H, W) tensors → (N, 3, H, W) on ``device``; a single image is not copied (an
    8K × 8K pair would otherwise cost 1.6 GB more)."""
    return (images[0] if len(images) == 1 else torch.cat(list(images))).to(device)


def _score_group(
    scorers: Sequence[Scorer], group: Sequence[Decoded], device: torch.device
) -> list[tuple[dict[str, float], list[str]]]:
    """Scores and error texts of a stack of same-size items, one entry per item."""
    results: list[tuple[dict[str, float], list[str]]] = [({}, []) for _ in group]
    tests = _stack([d.test for d in group if d.test is not None], device)
    references = (
        _stack([d.reference for d in group if d.reference is not None], device)
        if group[0].reference is not None
        else None
    )
    for scorer in scorers:
        if scorer.kind == "FR" and references is None:
            continue
        values: list[float] | None
        try:
            values = scorer(tests, references if scorer.kind == "FR" else None).tolist()
        except Exception as error:
            if len(group) == 1:
                results[0][1].append(one_line(_describe_failure(scorer, error)))
                continue
            values = None  # a stack failed: find the image(s) that fail, one at a time
        if values is not None and len(values) == len(group):
            for (scores, _), value in zip(results, values):
                scores[scorer.name] = float(value)
            continue
        for position in range(len(group)):
            try:
                reference = (
                    references[position : position + 1]
                    if scorer.kind == "FR" and references is not None
                    else None
                )
                single = scorer(tests[position : position + 1], reference)
                results[position][0][scorer.name] = float(single.reshape(-1)[0])
            except Exception as error:
                results[position][1].append(one_line(_describe_failure(scorer, error)))
    return results


def _stackable(group: Sequence[Decoded], decoded: Decoded, batch_size: int) -> bool:
    if not group:
        return True
    first = group[0]
    if decoded.test is None or first.test is None:
        return False
    same_shape = decoded.test.shape == first.test.shape and (
        (decoded.reference is None and first.reference is None)
        or (
            decoded.reference is not None
            and first.reference is not None
            and decoded.reference.shape == first.reference.shape
        )
    )
    pixels = (len(group) + 1) * decoded.test.shape[-1] * decoded.test.shape[-2]
    return same_shape and len(group) < batch_size and pixels <= MAX_BATCH_PIXELS


def score_decoded(
    scorers: Sequence[Scorer],
    decoded: Iterable[Decoded],
    device: torch.device,
    batch_size: int,
) -> Iterator[Scored]:
    """Score a stream of decoded items, in order, stacking consecutive same-size items.

    An item that failed to decode comes out with its error and no scores. Run it under
    ``torch.inference_mode()``.
    """
    group: list[Decoded] = []

    def flush() -> Iterator[Scored]:
        if group:
            for item, (scores, errors) in zip(group, _score_group(scorers, group, device)):
                yield item, scores, errors
            group.clear()

    for item in decoded:
        if item.error is not None:
            yield from flush()
            yield item, {}, [item.error]
            continue
        if not _stackable(group, item, batch_size):
            yield from flush()
        group.append(item)
    yield from flush()


def resolve_scorers(names: Sequence[str], device: torch.device, *, pairs: bool) -> list[Scorer]:
    """Check ``names`` (not empty, no repeats, FR only with pairs) and build their scorers.

    Raises:
        InvalidInputError: no names, a repeated name, a full-reference scorer without pairs.
        UnknownNameError: a name is neither a metric nor a model.
    """
    if not names:
        raise InvalidInputError("--metrics: give at least one metric or model name")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"--metrics: a name is repeated in {list(names)}")
    scorers = [resolve_scorer(name, device=device) for name in names]
    full_reference = [scorer.name for scorer in scorers if scorer.kind == "FR"]
    if full_reference and not pairs:
        raise InvalidInputError(
            f"{', '.join(full_reference)}: full-reference, so they need pairs "
            "(--pairs PAIRS.csv or --ref-dir DIR)"
        )
    return scorers


def result_columns(names: Sequence[str], *, pairs: bool, maps: bool = False) -> list[str]:
    """The columns of a results file: image, [reference], one per name, [maps], error."""
    columns = [IMAGE_COLUMN] + ([REFERENCE_COLUMN] if pairs else []) + list(names)
    return columns + ([MAPS_COLUMN] if maps else []) + [ERROR_COLUMN]


def result_row(item: BatchItem, scores: dict[str, float], errors: Sequence[str]) -> dict[str, object]:
    """One results row (a dict by column) of ``item``."""
    row: dict[str, object] = {IMAGE_COLUMN: item.image, ERROR_COLUMN: "; ".join(errors)}
    if item.reference is not None:
        row[REFERENCE_COLUMN] = item.reference
    row.update(scores)
    return row


def _maps_name(item: BatchItem) -> str:
    # The stem keeps the file recognisable; the hash keeps two "a.png" in different folders apart.
    digest = hashlib.sha1(f"{item.reference}\0{item.image}".encode()).hexdigest()[:8]
    return f"{Path(item.image).stem}-{digest}.npz"


# ----------------------------------------------------------------------------------- the run


def run_batch(
    items: Sequence[BatchItem],
    names: Sequence[str],
    out: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    workers: int = 0,
    batch_size: int = 8,
    maps_dir: str | os.PathLike[str] | None = None,
    require_maps: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    pairs: bool | None = None,
) -> BatchSummary:
    """Score ``items`` with every metric/model in ``names``; append rows to ``out``; resume.

    Args:
        items: inputs from :func:`items_from_inputs`, :func:`items_from_pairs_csv` or
            :func:`items_from_ref_dir` (or one shard of them, :func:`select_shard`); pair items
            carry a ``reference``.
        names: metric or model names (:func:`reliqa.evaluation.scorers.resolve_scorer`).
        out: ``.csv`` (journal and result) or ``.parquet`` (needs pyarrow).
        device: torch device for the scorers (default cpu); decoding stays on the CPU.
        workers: DataLoader worker processes for decoding (0: decode in this process).
        batch_size: most same-size images stacked into one forward pass.
        maps_dir: where to save per-pair distortion maps (``.npz``, see
            :func:`reliqa.io.save_maps`); needs a scorer that produces maps.
        require_maps: with ``maps_dir``, refuse a run without a map-producing scorer (False:
            silently save no maps, e.g. for the report's optional map pictures).
        on_progress: called with (done, total) after every item of this run.
        pairs: whether this is a pair run (default: whether any item has a reference). Give it
            for a shard that may be empty: an empty shard then writes a header-only output.

    Returns:
        A :class:`BatchSummary`; ``failed`` counts error rows in the whole output.

    Raises:
        InvalidInputError: bad arguments (no names, FR metric without pairs, batch_size < 1,
            ``out`` a folder or not writable, …).
        UnknownNameError: a name is neither a metric nor a model.
        DataError: ``out`` exists but is not a results file of this run's columns (it is left
            untouched).
    """
    started = time.perf_counter()
    _check_run_arguments(items, batch_size=batch_size, workers=workers, pairs=pairs)
    out = check_output_path(out)
    device = resolve_device(device)
    if pairs is None:
        pairs = any(item.reference is not None for item in items)
    scorers = resolve_scorers(names, device, pairs=pairs)
    map_writer = _map_writer(scorers, maps_dir, device, require_maps=require_maps)

    columns = result_columns([s.name for s in scorers], pairs=pairs, maps=map_writer is not None)
    parquet_out = out.suffix.lower() == ".parquet"
    journal_path = _journal_path(out, columns, parquet=parquet_out)

    with ResultsJournal(journal_path, columns) as journal:
        done = journal.done
        todo = [item for item in items if item.key not in done]
        _score_into_journal(
            journal, todo, scorers, device=device, workers=workers, batch_size=batch_size,
            map_writer=map_writer, on_progress=on_progress,
        )
        rows = list(journal.rows)

    if parquet_out:
        write_parquet(rows, columns, out)
        journal_path.unlink()
    return BatchSummary(
        out=out,
        total=len(rows),
        scored_now=len(todo),
        skipped=len(items) - len(todo),
        failed=sum(1 for row in rows if row.get(ERROR_COLUMN)),
        seconds=time.perf_counter() - started,
        columns=columns,
    )


def _check_run_arguments(
    items: Sequence[BatchItem], *, batch_size: int, workers: int, pairs: bool | None
) -> None:
    if batch_size < 1:
        raise InvalidInputError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise InvalidInputError(f"--workers must be 0 or more, got {workers}")
    if not items and pairs is None:
        raise InvalidInputError("no input images")


@dataclass(frozen=True)
class _MapWriter:
    """Saves the distortion maps of each scored pair into ``folder`` (``maps_dir``)."""

    scorer: Scorer
    folder: Path
    device: torch.device

    def add(
        self, row: dict[str, object], item: BatchItem, decoded: Decoded, scores: dict[str, float]
    ) -> None:
        """Save the maps of a pair the map scorer scored and name their file in ``row``."""
        maps, test, reference = self.scorer.maps, decoded.test, decoded.reference
        if maps is None or test is None or reference is None or self.scorer.name not in scores:
            return
        pair_maps = maps(test.to(self.device), reference.to(self.device))
        row[MAPS_COLUMN] = str(save_maps(pair_maps, self.folder / _maps_name(item)))


def _map_writer(
    scorers: Sequence[Scorer],
    maps_dir: str | os.PathLike[str] | None,
    device: torch.device,
    *,
    require_maps: bool,
) -> _MapWriter | None:
    """The map writer of ``maps_dir`` (None without one, or without a map scorer and not
    ``require_maps``); a map scorer is required otherwise."""
    map_scorer = next((scorer for scorer in scorers if scorer.maps is not None), None)
    if maps_dir is None or (map_scorer is None and not require_maps):
        return None
    if map_scorer is None:
        raise InvalidInputError(
            "--maps-dir needs a model that produces distortion maps among --metrics "
            "(e.g. relational)"
        )
    return _MapWriter(map_scorer, Path(maps_dir), device)


def _journal_path(out: Path, columns: Sequence[str], *, parquet: bool) -> Path:
    """The CSV journal of a run: ``out`` itself, or beside a Parquet ``out`` its
    ``.partial.csv``, started from an earlier finished ``out`` when there is one."""
    if parquet:
        pyarrow_parquet()
    journal_path = out.with_name(out.name + ".partial.csv") if parquet else out
    if parquet and out.is_file() and not journal_path.exists():
        _seed_journal(journal_path, out, columns)
    return journal_path


def _score_into_journal(
    journal: ResultsJournal, todo: Sequence[BatchItem], scorers: Sequence[Scorer], *,
    device: torch.device, workers: int, batch_size: int, map_writer: _MapWriter | None,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """Decode and score ``todo``, writing one journal row per item in order."""
    finished = 0
    with torch.inference_mode():
        for decoded, scores, errors in score_decoded(
            scorers, _decode(todo, workers), device, batch_size
        ):
            item = todo[decoded.index]
            row = result_row(item, scores, errors)
            if map_writer is not None:
                map_writer.add(row, item, decoded, scores)
            journal.write(row)
            finished += 1
            if on_progress is not None:
                on_progress(finished, len(todo))


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal, as an ``on_progress`` callback.

    Yields None (no bar) when ``enabled`` is False or stderr is not a terminal (pipes, --json).
    """
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("scoring", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _seed_journal(journal: Path, parquet: Path, columns: Sequence[str]) -> None:
    """Start the journal of a Parquet run from an earlier, finished Parquet output (whose
    columns must be this run's; the Parquet file itself is only read)."""
    try:
        existing_columns, rows = read_results_with_columns(parquet)
    except DataError as error:  # not a results file: not this run's, left as it is
        raise OutputExistsError(f"{error}; give another --out (this file was left as it is)") from None
    if existing_columns != list(columns):
        raise OutputExistsError(
            f"{parquet}: exists with the columns {existing_columns}, but this run writes "
            f"{list(columns)}; give another --out (or delete the file) to start afresh"
        )
    with ResultsJournal(journal, columns) as writer:
        for row in rows:
            writer.write(dict(row))
