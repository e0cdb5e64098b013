"""Batch scoring that survives a real folder: resumable, incremental, one row per input.

What a run does (``reliqa batch`` is a thin shell over :func:`run_batch`):

1. **Inputs** become :class:`BatchItem` s in a fixed order: (a) files, folders or glob patterns
   of images (no-reference scoring, :func:`items_from_inputs`), (b) a CSV of
   (reference, test) pairs (:func:`items_from_pairs_csv`), or (c) a folder of test images matched
   to a reference folder by file stem (:func:`items_from_ref_dir`).
2. **Decoding** happens once per item, in DataLoader worker processes
   (:func:`reliqa.io.load_image`, the only loader); every metric/model then scores the same
   decoded tensors. Consecutive items of the same size are stacked into one forward pass (at
   most ``batch_size`` images and :data:`MAX_BATCH_PIXELS` pixels).
3. **Output** is a journal: one complete CSV line per item, appended with a single ``write``
   and flushed, ``fsync`` ed every :data:`FSYNC_EVERY` rows. ``kill -9`` can therefore lose
   only the items being scored at that moment (at most one stack) and at worst leave a torn
   last line, which the next run cuts off before it appends. A restarted run reads the journal
   and skips every item already in it. With a ``.parquet`` output the journal sits beside it
   (``<out>.partial.csv``) and becomes the Parquet file at the end (write-temp-then-rename).
4. **Failures** never stop a run: an unreadable file, or a metric that refuses an image, becomes
   that row's ``error`` text (other metrics of the row keep their values).

CSV columns: ``image``, ``reference`` (pair modes only), one column per metric/model name in
the order given, ``maps`` (only with ``maps_dir``), ``error`` (empty when the row is complete).
Scores are written with ``repr`` (exact float64 round trip); a missing score is an empty cell.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from reliqa.exceptions import DataError, InvalidInputError, ReliqaError
from reliqa.io import expand_image_paths, list_images, load_image, save_maps
from reliqa.evaluation.scorers import Scorer, resolve_scorer

MAX_BATCH_PIXELS: int = 8 * 1024 * 1024
"""Largest total pixel count stacked into one forward pass (keeps big images one at a time)."""

FSYNC_EVERY: int = 32
"""Rows between two ``fsync`` calls. A flush after every row already survives ``kill -9``;
fsync only adds safety against power loss, so it is amortised."""

IMAGE_COLUMN = "image"
REFERENCE_COLUMN = "reference"
MAPS_COLUMN = "maps"
ERROR_COLUMN = "error"


@dataclass(frozen=True)
class BatchItem:
    """One row of a batch run: a test image and, in pair modes, its reference.

    ``problem`` is an error known before decoding (e.g. no reference matched the test image).
    """

    image: str
    reference: str | None = None
    problem: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.reference or "", self.image)


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


# ----------------------------------------------------------------------------------- inputs


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns → image paths, in input order.

    A pattern that is not an existing path is expanded with :func:`glob.glob` (``**`` recurses);
    a missing plain file is kept so that it becomes an error row rather than vanishing.

    Raises:
        InvalidInputError: a glob pattern or folder matched no image at all.
    """
    paths: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if not path.exists() and glob.has_magic(text):
            matches = sorted(Path(match) for match in glob.glob(text, recursive=True))
            files = [match for match in matches if match.is_file()]
            if not files:
                raise InvalidInputError(f"{text}: the pattern matches no file")
            paths.extend(files)
        elif path.is_dir():
            images = expand_image_paths([path])
            if not images:
                raise InvalidInputError(f"{path}: the folder contains no image files")
            paths.extend(images)
        else:
            paths.append(path)
    return _unique(paths)


def _unique(paths: Sequence[Path]) -> list[Path]:
    seen: set[str] = set()
    kept = []
    for path in paths:
        if str(path) not in seen:
            seen.add(str(path))
            kept.append(path)
    return kept


def items_from_inputs(inputs: Iterable[str | os.PathLike]) -> list[BatchItem]:
    """Mode (a): images alone (no-reference scoring)."""
    return [BatchItem(image=str(path)) for path in expand_inputs(inputs)]


def items_from_pairs_csv(path: str | os.PathLike) -> list[BatchItem]:
    """Mode (b): a CSV with columns ``reference`` and ``test`` (or ``image``).

    Relative paths are taken relative to the CSV's folder.

    Raises:
        DataError: the file is missing, has no such columns, or a row has an empty cell.
    """
    csv_path = Path(path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise DataError(f"{csv_path}: cannot read the pairs CSV ({error.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{csv_path}: the pairs CSV is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    test_column = next((name for name in ("test", "image", "distorted") if name in fields), None)
    if REFERENCE_COLUMN not in fields or test_column is None:
        raise DataError(
            f"{csv_path}: a pairs CSV needs the columns 'reference' and 'test' (or 'image'); "
            f"found {fields}"
        )
    base = csv_path.parent
    items = []
    for line, row in enumerate(reader, start=2):
        row = {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}
        reference, test = row.get(REFERENCE_COLUMN, ""), row.get(test_column, "")
        if not reference or not test:
            raise DataError(f"{csv_path}, line {line}: empty 'reference' or '{test_column}' cell")
        items.append(BatchItem(image=str(base / test), reference=str(base / reference)))
    if not items:
        raise DataError(f"{csv_path}: the pairs CSV has no rows")
    return _unique_items(items)


def _unique_items(items: Sequence[BatchItem]) -> list[BatchItem]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for item in items:
        if item.key not in seen:
            seen.add(item.key)
            kept.append(item)
    return kept


def items_from_ref_dir(inputs: Iterable[str | os.PathLike], ref_dir: str | os.PathLike) -> list[BatchItem]:
    """Mode (c): test images matched to the reference of the same file stem in ``ref_dir``.

    A test image without a reference (or with two, e.g. ``a.png`` and ``a.jpg``) becomes an
    error row; it does not stop the run.
    """
    references: dict[str, list[Path]] = {}
    for path in list_images(ref_dir):
        references.setdefault(path.stem, []).append(path)
    items = []
    for test in expand_inputs(inputs):
        matches = references.get(test.stem, [])
        if len(matches) == 1:
            items.append(BatchItem(image=str(test), reference=str(matches[0])))
        else:
            problem = (
                f"{test}: no reference named '{test.stem}.*' in {ref_dir}"
                if not matches
                else f"{test}: several references named '{test.stem}.*' in {ref_dir}: "
                + ", ".join(path.name for path in matches)
            )
            items.append(BatchItem(image=str(test), reference="", problem=problem))
    return items


# ----------------------------------------------------------------------------------- journal


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _format_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else repr(value)
    return _one_line(str(value))


class ResultsJournal:
    """Append-only CSV of results that a later run can resume.

    Each row is written with one ``write`` of a complete line and flushed, so a killed process
    leaves at most a torn last line (no trailing newline), which :meth:`open` removes.

    Args:
        path: the CSV file (created with a header when missing or empty).
        columns: the header; an existing file must have exactly this header.

    Raises:
        DataError: the existing file has another header (other metrics, other mode).
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        self.rows: list[dict[str, str]] = []
        self._handle: io.BufferedWriter | None = None
        self._unsynced = 0

    def open(self) -> ResultsJournal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = self.path.read_bytes() if self.path.is_file() else b""
        complete = existing[: existing.rfind(b"\n") + 1]
        if len(complete) != len(existing):
            # A torn last line from a killed run: cut it off before appending.
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        if complete:
            self.rows = self._parse(complete)
            self._handle = open(self.path, "ab")
        else:
            self._handle = open(self.path, "wb")
            self._append_line(self.columns)
            self._sync()
        return self

    def _parse(self, data: bytes) -> list[dict[str, str]]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{self.path}: exists but is not a reliqa results CSV") from None
        reader = csv.reader(io.StringIO(text))
        header = next(reader, [])
        if header != self.columns:
            raise DataError(
                f"{self.path}: exists with the columns {header}, but this run writes "
                f"{self.columns}; give another --out (or delete the file) to start afresh"
            )
        return [dict(zip(header, row)) for row in reader if len(row) == len(header)]

    @property
    def done(self) -> set[tuple[str, str]]:
        return {(row.get(REFERENCE_COLUMN, ""), row[IMAGE_COLUMN]) for row in self.rows}

    def _append_line(self, cells: Sequence[str]) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        if self._handle is None:
            raise RuntimeError(f"{self.path}: the journal is not open")
        self._handle.write(buffer.getvalue().encode("utf-8"))
        self._handle.flush()

    def write(self, row: dict[str, object]) -> None:
        cells = [_format_value(row.get(column)) for column in self.columns]
        self._append_line(cells)
        self.rows.append(dict(zip(self.columns, cells)))
        self._unsynced += 1
        if self._unsynced >= FSYNC_EVERY:
            self._sync()

    def _sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        self._unsynced = 0

    def close(self) -> None:
        if self._handle is not None:
            self._sync()
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ResultsJournal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_results(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a results file (CSV, or Parquet when pyarrow is installed) as strings."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        table = _pyarrow_parquet().read_table(path)
        return [
            {key: _format_value(value) for key, value in row.items()} for row in table.to_pylist()
        ]
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except OSError as error:
        raise DataError(f"{path}: cannot read the results ({error.strerror})") from None


def _pyarrow_parquet():  # noqa: ANN202 -- optional module
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise InvalidInputError(
            "Parquet output needs pyarrow: pip install 'reliqa[parquet]' (or write a .csv)"
        ) from None
    return parquet


def _write_parquet(rows: Sequence[dict[str, str]], columns: Sequence[str], scores: Sequence[str], path: Path) -> None:
    parquet = _pyarrow_parquet()
    import pyarrow as pa

    data = {}
    for column in columns:
        values = [row.get(column, "") for row in rows]
        if column in scores:
            data[column] = pa.array([float(v) if v else None for v in values], pa.float64())
        else:
            data[column] = pa.array(values, pa.string())
    temporary = path.with_name(path.name + ".tmp")
    parquet.write_table(pa.table(data), temporary)
    os.replace(temporary, path)


# ----------------------------------------------------------------------------------- decoding


@dataclass
class _Decoded:
    """One decoded item (worker → main process): tensors (1, 3, H, W) or an error."""

    index: int
    test: torch.Tensor | None
    reference: torch.Tensor | None
    error: str | None


class _DecodeDataset(Dataset):
    def __init__(self, items: Sequence[BatchItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> _Decoded:
        item = self.items[index]
        if item.problem:
            return _Decoded(index, None, None, item.problem)
        try:
            reference = load_image(item.reference) if item.reference else None
            test = load_image(item.image)
        except ReliqaError as error:
            return _Decoded(index, None, None, _one_line(str(error)))
        except Exception as error:  # noqa: BLE001 -- a decoder bug must cost one row, not the run
            return _Decoded(index, None, None, _one_line(f"{item.image}: cannot be decoded ({type(error).__name__}: {error})"))
        return _Decoded(index, test, reference, None)


def _pass_through(decoded: _Decoded) -> _Decoded:
    return decoded


def _single_thread_worker(_: int) -> None:
    # Decoding is the workers' only job; torch threads there would fight the model for cores.
    torch.set_num_threads(1)


def _decode(items: Sequence[BatchItem], workers: int) -> Iterator[_Decoded]:
    loader = DataLoader(
        _DecodeDataset(items),
        batch_size=None,
        num_workers=workers,
        collate_fn=_pass_through,
        worker_init_fn=_single_thread_worker if workers else None,
        prefetch_factor=2 if workers else None,
    )
    return iter(loader)


# ----------------------------------------------------------------------------------- scoring


def _describe_failure(scorer: Scorer, error: Exception) -> str:
    message = str(error) if isinstance(error, ReliqaError) else f"{type(error).__name__}: {error}"
    return message if message.startswith(scorer.name) else f"{scorer.name}: {message}"


def _stack(images: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """(1, 3, H, W) tensors → (N, 3, H, W) on ``device``; a single image is not copied (an
    8K × 8K pair would otherwise cost 1.6 GB more)."""
    return (images[0] if len(images) == 1 else torch.cat(list(images))).to(device)


def _score_group(
    scorers: Sequence[Scorer], group: Sequence[_Decoded], device: torch.device
) -> list[tuple[dict[str, float], list[str]]]:
    """Scores and error texts of a stack of same-size items, one entry per item."""
    results: list[tuple[dict[str, float], list[str]]] = [({}, []) for _ in group]
    tests = _stack([d.test for d in group], device)  # type: ignore[misc]
    references = _stack([d.reference for d in group], device) if group[0].reference is not None else None  # type: ignore[misc]
    for scorer in scorers:
        if scorer.kind == "FR" and references is None:
            continue
        try:
            values = scorer(tests, references if scorer.kind == "FR" else None).tolist()
        except Exception as error:  # noqa: BLE001 -- one bad image must not stop the run
            if len(group) == 1:
                results[0][1].append(_one_line(_describe_failure(scorer, error)))
                continue
            values = None  # a stack failed: find the image(s) that fail, one at a time
        if values is not None and len(values) == len(group):
            for (scores, _), value in zip(results, values):
                scores[scorer.name] = float(value)
            continue
        for position in range(len(group)):
            try:
                reference = references[position : position + 1] if scorer.kind == "FR" else None  # type: ignore[index]
                value = scorer(tests[position : position + 1], reference)
                results[position][0][scorer.name] = float(value.reshape(-1)[0])
            except Exception as error:  # noqa: BLE001 -- one bad image must not stop the run
                results[position][1].append(_one_line(_describe_failure(scorer, error)))
    return results


def _stackable(group: Sequence[_Decoded], decoded: _Decoded, batch_size: int) -> bool:
    if not group:
        return True
    first = group[0]
    same_shape = decoded.test.shape == first.test.shape and (  # type: ignore[union-attr]
        (decoded.reference is None and first.reference is None)
        or (
            decoded.reference is not None
            and first.reference is not None
            and decoded.reference.shape == first.reference.shape
        )
    )
    pixels = (len(group) + 1) * decoded.test.shape[-1] * decoded.test.shape[-2]  # type: ignore[union-attr]
    return same_shape and len(group) < batch_size and pixels <= MAX_BATCH_PIXELS


def _maps_name(item: BatchItem) -> str:
    # The stem keeps the file recognisable; the hash keeps two "a.png" in different folders apart.
    digest = hashlib.sha1(f"{item.reference}\0{item.image}".encode()).hexdigest()[:8]
    return f"{Path(item.image).stem}-{digest}.npz"


def run_batch(
    items: Sequence[BatchItem],
    names: Sequence[str],
    out: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    workers: int = 0,
    batch_size: int = 8,
    maps_dir: str | os.PathLike | None = None,
    require_maps: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> BatchSummary:
    """Score ``items`` with every metric/model in ``names``; append rows to ``out``; resume.

    Args:
        items: inputs from :func:`items_from_inputs`, :func:`items_from_pairs_csv` or
            :func:`items_from_ref_dir`; pair items carry a ``reference``.
        names: metric or model names (:func:`reliqa.evaluation.scorers.resolve_scorer`).
        out: ``.csv`` (journal and result) or ``.parquet`` (needs pyarrow).
        device: torch device for the scorers; decoding stays on the CPU.
        workers: DataLoader worker processes for decoding (0: decode in this process).
        batch_size: most same-size images stacked into one forward pass.
        maps_dir: where to save per-pair distortion maps (``.npz``, see
            :func:`reliqa.io.save_maps`); needs a scorer that produces maps.
        require_maps: with ``maps_dir``, refuse a run without a map-producing scorer (False:
            silently save no maps, e.g. for the report's optional map pictures).
        on_progress: called with (done, total) after every item of this run.

    Returns:
        A :class:`BatchSummary`; ``failed`` counts error rows in the whole output.

    Raises:
        InvalidInputError: bad arguments (no names, FR metric without pairs, batch_size < 1, …).
        UnknownNameError: a name is neither a metric nor a model.
        DataError: ``out`` exists with other columns.
    """
    started = time.perf_counter()
    if not names:
        raise InvalidInputError("--metrics: give at least one metric or model name")
    if len(set(names)) != len(names):
        raise InvalidInputError(f"--metrics: a name is repeated in {list(names)}")
    if batch_size < 1:
        raise InvalidInputError(f"--batch-size must be at least 1, got {batch_size}")
    if workers < 0:
        raise InvalidInputError(f"--workers must be 0 or more, got {workers}")
    if not items:
        raise InvalidInputError("no input images")
    device = torch.device(device)
    scorers = [resolve_scorer(name, device=device) for name in names]
    pairs = any(item.reference is not None for item in items)
    full_reference = [scorer.name for scorer in scorers if scorer.kind == "FR"]
    if full_reference and not pairs:
        raise InvalidInputError(
            f"{', '.join(full_reference)}: full-reference, so they need pairs "
            "(--pairs PAIRS.csv or --ref-dir DIR)"
        )
    map_scorer = next((scorer for scorer in scorers if scorer.maps is not None), None)
    if maps_dir is not None and map_scorer is None and not require_maps:
        maps_dir = None
    if maps_dir is not None and map_scorer is None:
        raise InvalidInputError(
            "--maps-dir needs a model that produces distortion maps among --metrics "
            "(e.g. relational)"
        )

    columns = [IMAGE_COLUMN] + ([REFERENCE_COLUMN] if pairs else []) + [s.name for s in scorers]
    columns += ([MAPS_COLUMN] if maps_dir is not None else []) + [ERROR_COLUMN]
    out = Path(out)
    parquet_out = out.suffix.lower() == ".parquet"
    if parquet_out:
        _pyarrow_parquet()
    journal_path = out.with_name(out.name + ".partial.csv") if parquet_out else out
    if parquet_out and out.is_file() and not journal_path.exists():
        _seed_journal(journal_path, read_results(out), columns)

    with ResultsJournal(journal_path, columns) as journal:
        done = journal.done
        todo = [item for item in items if item.key not in done]
        group: list[_Decoded] = []

        def write_group() -> None:
            if not group:
                return
            for decoded, (scores, errors) in zip(group, _score_group(scorers, group, device)):
                row = _row(todo[decoded.index], scores, errors)
                if maps_dir is not None and map_scorer is not None and map_scorer.name in scores:
                    maps = map_scorer.maps(decoded.test.to(device), decoded.reference.to(device))  # type: ignore[union-attr]
                    row[MAPS_COLUMN] = str(save_maps(maps, Path(maps_dir) / _maps_name(todo[decoded.index])))
                journal.write(row)
                report_progress()
            group.clear()

        finished = 0

        def report_progress() -> None:
            nonlocal finished
            finished += 1
            if on_progress is not None:
                on_progress(finished, len(todo))

        with torch.inference_mode():
            for decoded in _decode(todo, workers):
                if decoded.error is not None:
                    write_group()
                    journal.write(_row(todo[decoded.index], {}, [decoded.error]))
                    report_progress()
                    continue
                if not _stackable(group, decoded, batch_size):
                    write_group()
                group.append(decoded)
            write_group()
        rows = list(journal.rows)

    if parquet_out:
        _write_parquet(rows, columns, [s.name for s in scorers], out)
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


def _row(item: BatchItem, scores: dict[str, float], errors: Sequence[str]) -> dict[str, object]:
    row: dict[str, object] = {IMAGE_COLUMN: item.image, ERROR_COLUMN: "; ".join(errors)}
    if item.reference is not None:
        row[REFERENCE_COLUMN] = item.reference
    row.update(scores)
    return row


def _seed_journal(path: Path, rows: Sequence[dict[str, str]], columns: Sequence[str]) -> None:
    """Start the journal of a Parquet run from an earlier, finished Parquet output."""
    with ResultsJournal(path, columns) as journal:
        for row in rows:
            journal.write(row)
