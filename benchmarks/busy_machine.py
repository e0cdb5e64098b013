"""The main paths on a quiet and on a busy machine: reliqa's default vs the best thread setting.

    python benchmarks/busy_machine.py --out benchmarks/results/busy_machine.json
    python benchmarks/busy_machine.py --paths compare,score --rounds 1 --repeats 3   # quicker

For each path (``compare`` and ``compare_plus``: one 512×384 pair through the relational /
relational-plus model as ``reliqa.compare`` runs it; ``rank``: four candidates; ``score``: eight
512×384 photos through ``hirqa``; ``batch``: ``run_batch`` of 24 photos with ``hirqa-s`` and
two decoding workers, as ``reliqa batch`` runs it; ``tune_step``: ten forward + backward steps of
the relational loss on a 256×256 image, as ``reliqa tune`` does), and for each setting

- ``before``: the behaviour before issue 18 — OpenMP's own wait policy (idle threads spin;
  ``GOMP_SPINCOUNT=300000``, libgomp's default), torch's default thread count;
- ``default``: reliqa's default now (``import reliqa`` sets ``OMP_WAIT_POLICY=PASSIVE``),
  torch's default thread count;
- ``threads=N`` for N = 1 … cores: reliqa's default wait policy, ``--threads N``;

a fresh process warms the path up and times ``--repeats`` runs (median). This runs once on the
machine as it is (``quiet``) and once while ``--competitors`` processes each keep one core busy
(``busy``), ``--rounds`` times, settings interleaved. The record gives, per condition and path,
every setting's median seconds, the best setting, and ``default / best`` and
``before / best``. The load average is recorded before and after each condition: other jobs
on a shared machine (e.g. a training run) count as competition the script did not start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import reliqa  # noqa: F401  (before torch, which is imported later: sets the wait policy)

PATHS = ("compare", "compare_plus", "rank", "score", "batch", "tune_step")
POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS")


# ------------------------------------------------------------------------------------------
# worker: one path, one setting, in a fresh process
# ------------------------------------------------------------------------------------------


def _photos(count: int, height: int = 384, width: int = 512) -> list[Any]:
    import torch
    from skimage import data

    from reliqa.io import load_image

    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat")
    images = []
    for index in range(count):
        photo = load_image(getattr(data, names[index % len(names)])())
        photo = torch.nn.functional.interpolate(photo, size=(height, width), mode="bilinear")
        images.append((photo * (0.7 + 0.05 * (index // len(names)))).clamp(0, 1))
    return images


def _work(path: str, scratch: Path) -> Any:
    """Return a callable that runs ``path`` once (everything loaded and warmed up first)."""
    import torch

    if path in ("compare", "compare_plus", "rank"):
        from reliqa.models.relational_api import compare, rank

        model = "relational-plus" if path == "compare_plus" else "relational"
        reference, *tests = _photos(5)
        tests = [(reference * 0.85 + 0.1 * test).clamp(0, 1) for test in tests]
        if path == "rank":
            return lambda: rank(tests[:4], reference, model=model)
        return lambda: compare(tests[0], reference, model=model)
    if path == "score":
        from reliqa.models.nr_api import load_scorer

        scorer = load_scorer("hirqa", "cpu")
        batch = torch.cat(_photos(8))

        def score() -> None:
            with torch.inference_mode():
                scorer(batch)

        return score
    if path == "batch":
        from reliqa import batch as batch_module
        from reliqa.io import save_image

        folder = scratch / "photos"
        folder.mkdir(exist_ok=True)
        for index, photo in enumerate(_photos(24)):
            save_image(photo, folder / f"p{index:02d}.jpg", quality=90)
        items = batch_module.items_from_inputs([folder])
        runs = iter(range(10**6))

        def run() -> None:
            out = scratch / f"r{next(runs)}.csv"
            batch_module.run_batch(items, ["hirqa-s"], out, workers=2, batch_size=8)

        return run
    if path == "tune_step":
        from reliqa.tuning import RelationalLoss

        loss = RelationalLoss()
        reference = _photos(1, 256, 256)[0]
        start = (reference * 0.7 + 0.1).clamp(0, 1)

        def steps() -> None:
            image = start.clone().requires_grad_(True)
            optimiser = torch.optim.Adam([image], lr=0.01)
            for _ in range(10):
                optimiser.zero_grad()
                value = loss(image, reference).mean()
                value.backward()
                optimiser.step()

        return steps
    raise SystemExit(f"unknown path {path!r}; known: {', '.join(PATHS)}")


def worker(path: str, threads: int | None, repeats: int) -> dict[str, Any]:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as scratch:
        run = _work(path, Path(scratch))
        run()  # warm-up (first-call allocations, model loading done above)
        seconds = []
        for _ in range(repeats):
            begin = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - begin)
    return {
        "median_s": statistics.median(seconds),
        "seconds": seconds,
        "torch_threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
    }


# ------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------


def settings(cores: int) -> dict[str, tuple[dict[str, str], int | None]]:
    """name → (environment additions, --threads)."""
    table: dict[str, tuple[dict[str, str], int | None]] = {
        "before": ({"GOMP_SPINCOUNT": "300000"}, None),
        "default": ({}, None),
    }
    for threads in range(1, cores + 1):
        table[f"threads={threads}"] = ({}, threads)
    return table


def run_setting(path: str, env_add: dict[str, str], threads: int | None, repeats: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in POLICY_VARIABLES}
    env.update(env_add)
    command = [sys.executable, __file__, "--worker", path, "--repeats", str(repeats)]
    if threads is not None:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def spin() -> None:  # pragma: no cover - a competitor process
    while True:
        pass


def measure(condition: str, paths: list[str], repeats: int, rounds: int, competitors: int) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    table = settings(cores)
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(competitors)
    ]
    try:
        time.sleep(1.0 if busy else 0.0)
        load_before = os.getloadavg()
        results: dict[str, Any] = {}
        for path in paths:
            runs: dict[str, list[float]] = {name: [] for name in table}
            details: dict[str, Any] = {}
            for _ in range(rounds):
                for name, (env_add, threads) in table.items():
                    record = run_setting(path, env_add, threads, repeats)
                    details.setdefault(name, []).append(record)
                    if "median_s" in record:
                        runs[name].append(record["median_s"])
                    print(f"[{condition}] {path:12s} {name:10s} {record.get('median_s', record)}", file=sys.stderr, flush=True)
            medians = {name: statistics.median(values) for name, values in runs.items() if values}
            thread_settings = {k: v for k, v in medians.items() if k.startswith("threads=")}
            best_name = min(thread_settings, key=thread_settings.__getitem__)
            best = thread_settings[best_name]
            results[path] = {
                "median_s": medians,
                "best_thread_setting": best_name,
                "default_over_best": medians["default"] / best,
                "before_over_best": medians["before"] / best,
                "default_over_before": medians["default"] / medians["before"],
                "runs": details,
            }
        return {
            "competitors": competitors,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "paths": results,
        }
    finally:
        for process in busy:
            process.kill()
            process.wait()


def summarise(conditions: dict[str, Any]) -> dict[str, Any]:
    """Per condition and path: medians and ratios.

    ``default`` and ``threads=<torch's default count>`` are the same configuration; where they
    differ it is noise (which core the scheduler gives each thread, per process). So besides
    ``default / best`` the summary gives ``pooled_default`` (the process medians of both,
    pooled) against ``best_other``, the best setting that differs from the default.
    """
    summary: dict[str, Any] = {}
    for condition, result in conditions.items():
        summary[condition] = {}
        for path, entry in result["paths"].items():
            medians = entry["median_s"]
            threads = {k: v for k, v in medians.items() if k.startswith("threads=")}
            default_runs = [run for run in entry["runs"]["default"] if "torch_threads" in run]
            same = f"threads={default_runs[0]['torch_threads']}" if default_runs else None
            pooled = [
                run["median_s"]
                for name in ("default", same)
                for run in entry["runs"].get(name or "", [])
                if "median_s" in run
            ]
            others = {k: v for k, v in threads.items() if k != same}
            best_other = min(others, key=others.__getitem__) if others else None
            row = {
                "default_s": round(medians["default"], 4),
                "before_s": round(medians["before"], 4),
                "best_s": round(min(threads.values()), 4),
                "best": entry["best_thread_setting"],
                "default_over_best": round(entry["default_over_best"], 2),
                "before_over_best": round(entry["before_over_best"], 2),
                "default_same_as": same,
                "pooled_default_s": round(statistics.median(pooled), 4),
            }
            if best_other is not None:
                row["best_other"] = best_other
                row["best_other_s"] = round(others[best_other], 4)
                row["pooled_default_over_best_other"] = round(statistics.median(pooled) / others[best_other], 2)
            summary[condition][path] = row
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per process")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the settings")
    parser.add_argument("--competitors", type=int, default=1, help="busy processes in 'busy'")
    parser.add_argument("--conditions", default="quiet,busy")
    parser.add_argument("--note", default="", help="free text stored in the record")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--resummarise", type=Path, default=None, help="recompute a record's summary")
    args = parser.parse_args()
    if args.resummarise:
        record = json.loads(args.resummarise.read_text())
        record["summary"] = summarise(record["conditions"])
        args.resummarise.write_text(json.dumps(record, indent=2) + "\n")
        print(json.dumps(record["summary"], indent=2))
        return
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads, args.repeats)))
        return
    paths = [p for p in args.paths.split(",") if p]
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = {
        name: measure(name, paths, args.repeats, args.rounds, args.competitors if name == "busy" else 0)
        for name in args.conditions.split(",")
    }
    import torch

    record = {
        "command": "python benchmarks/busy_machine.py " + " ".join(sys.argv[1:]),
        "started": started,
        "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "note": args.note,
        "conditions": conditions,
        "summary": summarise(conditions),
    }
    text = json.dumps(record, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(json.dumps(record["summary"], indent=2))


if __name__ == "__main__":
    main()
