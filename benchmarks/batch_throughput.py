"""Images per second of `reliqa batch` (no-reference scoring) against a plain Python loop.

Both sides score the same images with the same scorer (built by
``reliqa.evaluation.scorers.resolve_scorer``):

- ``batch``: the real command, ``reliqa batch FOLDER --metrics NAME --out results.csv
  --workers W --batch-size B`` (decoding in worker processes, same-size images stacked, one
  flushed CSV line per image) — started as a subprocess, so its time includes start-up;
- ``loop``: a subprocess running ``for path in paths: scorer(load_image(path))``, one image at a
  time, results kept in a list (nothing written).

Each side runs in its own process; its peak resident memory is that process's ``ru_maxrss``
(the largest single process: for ``batch`` the main process or one worker, whichever peaked
higher). Default data: ../shared/data/biq2021_test (2,000 JPEGs, mostly 512×512).

    python benchmarks/batch_throughput.py                     # hirqa-s if shipped, else laplacian_var
    python benchmarks/batch_throughput.py --scorer niqe --limit 500

Prints a Markdown table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("RELIQA_SHARED_DATA", REPO.parent / "shared" / "data")) / "biq2021_test" / "Images"
PREFERRED_SCORERS = ("hirqa-s", "laplacian_var")


def _pick_scorer() -> str:
    from reliqa.evaluation.scorers import resolve_scorer
    from reliqa.exceptions import ReliqaError

    for name in PREFERRED_SCORERS:
        try:
            resolve_scorer(name)
        except ReliqaError:
            continue
        return name
    raise SystemExit(f"none of {PREFERRED_SCORERS} can be built")


def _plain_loop(folder: Path, scorer_name: str, limit: int, threads: int) -> None:
    """Child process: score one image at a time; print a JSON line with timing and memory."""
    import torch

    from reliqa.evaluation.scorers import resolve_scorer
    from reliqa.io import list_images, load_image

    torch.set_num_threads(threads)
    started = time.perf_counter()
    scorer = resolve_scorer(scorer_name)
    values, failed = [], 0
    with torch.inference_mode():
        for path in list_images(folder)[:limit]:
            try:
                values.append(float(scorer(load_image(path))[0]))
            except Exception:  # noqa: BLE001 -- the loop a user would write skips failures too
                failed += 1
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": len(values) + failed, "failed": failed, "seconds": seconds, "peak_rss_mb": peak}))


def _run_loop(folder: Path, scorer: str, limit: int, threads: int) -> dict:
    command = [sys.executable, __file__, "--child-loop", "--data", str(folder), "--scorer", scorer,
               "--limit", str(limit), "--threads", str(threads)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    return result


def _run_batch(folder: Path, scorer: str, limit: int, threads: int, workers: int, batch_size: int) -> dict:
    from reliqa.io import list_images

    paths = list_images(folder)[:limit]
    with tempfile.TemporaryDirectory() as scratch:
        # A folder of links to the first `limit` images, so `reliqa batch` gets a plain folder.
        subset = Path(scratch) / "images"
        subset.mkdir()
        for path in paths:
            (subset / path.name).symlink_to(path.resolve())
        out = Path(scratch) / "results.csv"
        command = [str(Path(sys.executable).with_name("reliqa")), "batch", str(subset), "--metrics", scorer,
                   "--out", str(out), "--workers", str(workers), "--batch-size", str(batch_size), "--json"]
        environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=environment)
        wall = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode not in (0, 1):
            raise SystemExit(f"reliqa batch failed ({done.returncode}): {done.stderr}")
        summary = json.loads(done.stdout)
    return {
        "images": summary["rows"],
        "failed": summary["failed"],
        "seconds": summary["seconds"],
        "wall_seconds": wall,
        # RUSAGE_CHILDREN keeps the largest child seen so far; the loop ran before, so only a
        # larger value is attributable to this run.
        "peak_rss_mb": max(peak, before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--scorer", default=None, help=f"default: the first of {PREFERRED_SCORERS} that exists")
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the scoring process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child-loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: not a folder (set RELIQA_SHARED_DATA)")
    scorer = args.scorer or _pick_scorer()
    if args.child_loop:
        _plain_loop(args.data, scorer, args.limit, args.threads)
        return

    loop = _run_loop(args.data, scorer, args.limit, args.threads)
    batch = _run_batch(args.data, scorer, args.limit, args.threads, args.workers, args.batch_size)
    record = {
        "benchmark": "batch_throughput",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs (shared)",
        "scorer": scorer,
        "data": str(args.data),
        "settings": {"threads": args.threads, "workers": args.workers, "batch_size": args.batch_size},
        "loop": loop,
        "batch": batch,
    }
    rows = [("plain Python loop, one image at a time", loop), (
        f"`reliqa batch` (--workers {args.workers} --batch-size {args.batch_size})", batch)]
    print(f"| {scorer} on {loop['images']} images | images/s (wall, incl. start-up) | wall s | peak RSS MB |")
    print("|---|---|---|---|")
    for label, result in rows:
        rate = result["images"] / result["wall_seconds"]
        print(f"| {label} | {rate:.1f} | {result['wall_seconds']:.1f} | {result['peak_rss_mb']:.0f} |")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
