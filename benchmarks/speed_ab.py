"""Before/after speed of two source trees of reliqa, interleaved in one process.

Used by ``benchmarks/nr_speed.py --before`` and ``benchmarks/relational_speed.py --before``. The
earlier tree is imported beside this checkout's ``reliqa`` as ``reliqa_before`` (a copy whose
imports are renamed, made in a temporary folder; its weights come with it), and each case calls
the before and the after version alternately, one call each, ``rounds`` times: a machine busy
with other work slows both alike. The summary takes per case the fastest call of each side
(contention only ever adds time) and the median of the per-round ratios. Make a before tree with::

    mkdir -p /tmp/before && git archive <commit> src | tar -x -C /tmp/before

and pass ``--before /tmp/before/src``.
"""

from __future__ import annotations

import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

BEFORE_PACKAGE = "reliqa_before"

_IMPORT = re.compile(r"(\bfrom |\bimport |\")reliqa(?=[.\s])")
"""``from reliqa…``, ``import reliqa…`` and module paths in strings (the lazy public API)."""


def import_before(before_src: Path, module: str) -> ModuleType:
    """The module ``reliqa.<module>`` of ``before_src``, imported as ``reliqa_before.<module>``.

    Raises:
        FileNotFoundError: ``before_src`` holds no ``reliqa`` package.
    """
    source = before_src / "reliqa"
    if not (source / "__init__.py").is_file():
        raise FileNotFoundError(f"{before_src}: no reliqa package (expected {source})")
    folder = Path(tempfile.mkdtemp(prefix="reliqa_before_"))
    shutil.copytree(source, folder / BEFORE_PACKAGE)
    for path in (folder / BEFORE_PACKAGE).rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        path.write_text(_IMPORT.sub(rf"\1{BEFORE_PACKAGE}", text), encoding="utf-8")
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"{BEFORE_PACKAGE}.{module}")


def interleave(
    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]],
    rounds: int,
    warmup: int = 2,
) -> dict[str, dict[str, float]]:
    """Per case (name → (before call, after call)): ``warmup`` untimed calls of each, then
    ``rounds`` × (before, after) timed calls. Returns per case the fastest milliseconds of each
    side, their ratio and the median of the per-round ratios (before / after: > 1 = the after
    tree is faster)."""
    summary = {}
    for name, (before_call, after_call) in cases.items():
        for _ in range(warmup):
            before_call()
            after_call()
        before, after = [], []
        for _ in range(rounds):
            for call, times in ((before_call, before), (after_call, after)):
                start = time.perf_counter()
                call()
                times.append(1000.0 * (time.perf_counter() - start))
        summary[name] = {
            "before_min_ms": round(min(before), 2),
            "after_min_ms": round(min(after), 2),
            "before_median_ms": round(statistics.median(before), 2),
            "after_median_ms": round(statistics.median(after), 2),
            "speedup_of_minima": round(min(before) / min(after), 3),
            "speedup_median_of_rounds": round(
                statistics.median(b / a for b, a in zip(before, after)), 3
            ),
        }
        print(name, summary[name], file=sys.stderr, flush=True)
    return summary
