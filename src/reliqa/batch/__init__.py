"""Batch scoring that survives a real folder: resumable, incremental, one row per input.

``reliqa batch`` (docs/batch.md) is a thin shell over this part; its modules, bottom-up:

- :mod:`~reliqa.batch.parquet`: the optional pyarrow dependency;
- :mod:`~reliqa.batch.inputs`: files, folders, globs, pair CSVs, path lists → :class:`BatchItem`
  s, and the shard partition;
- :mod:`~reliqa.batch.journal`: the resumable CSV journal (:class:`ResultsJournal`);
- :mod:`~reliqa.batch.results`: reading and writing whole results files (CSV, Parquet);
- :mod:`~reliqa.batch.merge`: joining the results of ``--shard I/N`` runs;
- :mod:`~reliqa.batch.runner`: :func:`run_batch` (decode once, score, journal each row);
- :mod:`~reliqa.batch.distributed`: the same scoring on Ray Data (``pip install 'reliqa[ray]'``,
  docs/distributed.md); not imported here, so this package never needs Ray.

The names below are the part's public face; each is defined once, in the module named above.
"""

from reliqa.batch.inputs import (
    ERROR_COLUMN,
    IMAGE_COLUMN,
    MAPS_COLUMN,
    REFERENCE_COLUMN,
    BatchItem,
    expand_inputs,
    items_from_inputs,
    items_from_pairs_csv,
    items_from_path_list,
    items_from_ref_dir,
    items_from_sources,
    parse_shard,
    select_shard,
    shard_from_name,
    shard_of,
    shard_output,
)
from reliqa.batch.journal import FSYNC_EVERY, ResultsJournal, check_output_path
from reliqa.batch.merge import MergeSummary, merge_results
from reliqa.batch.results import read_results, read_results_with_columns
from reliqa.batch.runner import (
    MAX_BATCH_PIXELS,
    BatchSummary,
    Decoded,
    decode_item,
    progress_bar,
    resolve_scorers,
    result_columns,
    run_batch,
    score_decoded,
)

__all__ = [
    "ERROR_COLUMN",
    "FSYNC_EVERY",
    "IMAGE_COLUMN",
    "MAPS_COLUMN",
    "MAX_BATCH_PIXELS",
    "REFERENCE_COLUMN",
    "BatchItem",
    "BatchSummary",
    "Decoded",
    "MergeSummary",
    "ResultsJournal",
    "check_output_path",
    "decode_item",
    "expand_inputs",
    "items_from_inputs",
    "items_from_pairs_csv",
    "items_from_path_list",
    "items_from_ref_dir",
    "items_from_sources",
    "merge_results",
    "parse_shard",
    "progress_bar",
    "read_results",
    "read_results_with_columns",
    "resolve_scorers",
    "result_columns",
    "run_batch",
    "score_decoded",
    "select_shard",
    "shard_from_name",
    "shard_of",
    "shard_output",
]
