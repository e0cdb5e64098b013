"""What keeping freed memory buys: reliqa's allocator setting against glibc's own, per scorer.

    python benchmarks/allocator_effect.py --out benchmarks/results/allocator_effect.json
    python benchmarks/allocator_effect.py --scorers psnr,ssim --rounds 2   # quicker

``import reliqa`` raises glibc's trim and mmap thresholds (``reliqa.runtime.configure_allocator``)
unless the user set an allocator variable. Each measurement is a fresh process that imports
reliqa either as it is (``reliqa``) or with ``RELIQA_ALLOCATOR=system``, which leaves glibc as
shipped, adaptive mmap threshold included (``glibc``), warms one catalogue scorer (``reliqa.create_metric``) up on a 512² pair
(full-reference) or image (no-reference), and times
``--repeats`` calls (median ms) while counting the process's minor page faults per call. The two
settings alternate, ``--rounds`` times; the record gives every run and per scorer the medians
and ``glibc / reliqa``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from reliqa.runtime import ALLOCATOR_VARIABLES

SCORERS = (
    "psnr", "ssim", "ms_ssim", "gmsd", "fsim", "vifp", "haarpsi", "mdsi", "vsi", "niqe",
    "hirqa-s", "hirqa", "relational",
)

SETTINGS = {"reliqa": {}, "glibc": {"RELIQA_ALLOCATOR": "system"}}
"""Environment of each setting's processes (added to this one's, allocator variables removed)."""

_MEASURE = """
import json, resource, statistics, sys, time
import reliqa, torch
torch.set_num_threads({threads})
name, repeats = {name!r}, {repeats}
generator = torch.Generator().manual_seed(0)
reference = torch.rand(1, 3, 512, 512, generator=generator)
test = (reference + 0.05 * torch.randn(1, 3, 512, 512, generator=generator)).clamp(0, 1)
metric = reliqa.create_metric(name)
call = (lambda: metric(test)) if metric.info.kind == "NR" else (lambda: metric(test, reference))
times = []
with torch.inference_mode():
    for _ in range(2):
        call()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - start))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({{"ms": statistics.median(times), "faults_per_call": faults / repeats}}))
"""


def measure(name: str, setting: str, repeats: int, threads: int) -> dict[str, float]:
    """One fresh process: median ms and minor page faults per call of scorer ``name``."""
    environment = {
        key: value for key, value in os.environ.items() if key not in ALLOCATOR_VARIABLES
    }
    environment.update(SETTINGS[setting])
    code = _MEASURE.format(name=name, repeats=repeats, threads=threads)
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scorers", default=",".join(SCORERS), help="Comma-separated names.")
    parser.add_argument("--rounds", type=int, default=3, help="Processes per scorer and setting.")
    parser.add_argument("--repeats", type=int, default=9, help="Timed calls per process.")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2).")
    parser.add_argument("--out", type=Path, help="JSON record to write.")
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    for name in args.scorers.split(","):
        runs: dict[str, list[dict[str, float]]] = {setting: [] for setting in SETTINGS}
        for _ in range(args.rounds):
            for setting in SETTINGS:
                runs[setting].append(measure(name, setting, args.repeats, args.threads))
        medians = {
            setting: {
                figure: round(statistics.median(run[figure] for run in setting_runs), 2)
                for figure in ("ms", "faults_per_call")
            }
            for setting, setting_runs in runs.items()
        }
        results[name] = {
            **medians,
            "glibc_over_reliqa_ms": round(medians["glibc"]["ms"] / medians["reliqa"]["ms"], 2),
            "runs": runs,
        }
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "runs"}), flush=True)
    record = {
        "benchmark": "allocator_effect: reliqa's glibc thresholds vs glibc's defaults, 512² inputs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpu_threads": args.threads,
        "command": " ".join(["python", *sys.argv]),
        "load_average": os.getloadavg(),
        "results": results,
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
