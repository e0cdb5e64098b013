"""Images per second of `reliqa batch` (local, sharded) and the Ray Data engine, 1 and 2 workers.

All configurations score the same images with the same metrics, one after the other in one run,
each as the real command in a subprocess (so wall time includes start-up, model loading and, for
Ray, starting a local cluster). A "worker" is one CPU core's worth of scoring: one torch thread.

| config | command (per worker: ``OMP_NUM_THREADS=1``) |
|---|---|
| ``batch, 1 worker`` | ``reliqa batch IMAGES -m M -o b1.csv --workers 0`` |
| ``batch, 2 shards`` | ``reliqa batch … --shard 1/2`` and ``--shard 2/2`` at once, then ``--merge`` |
| ``batch --workers 2`` | ``reliqa batch IMAGES -m M -o b.csv --workers 2`` (no thread limit: the default) |
| ``ray, 1 actor`` | ``reliqa batch IMAGES -m M -o r1.parquet --engine ray --actors 1`` |
| ``ray, 2 actors`` | ``reliqa batch IMAGES -m M -o r2.parquet --engine ray --actors 2`` |

Each configuration also runs on the first ``--small`` images; ``(N - small) / (wall_N -
wall_small)`` is the steady rate without the fixed start-up cost, which is what matters at 10⁷
images. Memory: a poller samples the resident memory of every process the command started
(Ray's raylet, GCS and actors included) every 0.2 s; reported are the peak of the whole tree and
the peak of one actor (``ray::MapWorker`` processes) or of the largest single process.

    python benchmarks/distributed_throughput.py                      # 2,000 BIQ2021 images
    python benchmarks/distributed_throughput.py --limit 200 --small 20

Writes ``benchmarks/results/distributed_throughput.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("RELIQA_SHARED_DATA", REPO.parent / "shared" / "data")) / "biq2021_test" / "Images"
)
RELIQA = [str(Path(sys.executable).with_name("reliqa"))]


# ----------------------------------------------------------------------------------- memory


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid → (parent pid, RSS bytes, command line) of every readable process."""
    table: dict[int, tuple[int, int, str]] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            rss = int(Path(f"/proc/{entry}/statm").read_text().split()[1]) * page
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry)] = (int(fields[1]), rss, cmdline)
    return table


class TreePoller(threading.Thread):
    """Peak memory of the process trees below ``roots`` (sampled every ``interval`` s)."""

    def __init__(self, roots: list[int], interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.roots, self.interval = set(roots), interval
        self.peak_total = self.peak_single = self.peak_actor = 0
        self.actors_seen = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            table = _processes()
            children: dict[int, list[int]] = {}
            for pid, (parent, _, _) in table.items():
                children.setdefault(parent, []).append(pid)
            tree, stack = [], list(self.roots)
            while stack:
                pid = stack.pop()
                if pid in table:
                    tree.append(pid)
                stack.extend(children.get(pid, []))
            total = sum(table[pid][1] for pid in tree)
            actors = [table[pid][1] for pid in tree if "MapWorker" in table[pid][2]]
            self.peak_total = max(self.peak_total, total)
            self.peak_single = max([self.peak_single] + [table[pid][1] for pid in tree])
            self.peak_actor = max([self.peak_actor] + actors)
            self.actors_seen = max(self.actors_seen, len(actors))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# ----------------------------------------------------------------------------------- runs


def _run_parallel(commands: list[list[str]], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    poller = TreePoller([process.pid for process in processes])
    poller.start()
    outputs = [process.communicate() for process in processes]
    wall = time.perf_counter() - started
    poller.stop()
    for process, (_, stderr) in zip(processes, outputs):
        if process.returncode not in (0, 1):
            raise SystemExit(f"{process.args} failed ({process.returncode}):\n{stderr[-3000:]}")
    return {
        "wall_s": wall,
        "peak_tree_rss_mb": poller.peak_total / 2**20,
        "peak_process_rss_mb": poller.peak_single / 2**20,
        "peak_actor_rss_mb": poller.peak_actor / 2**20 if poller.actors_seen else None,
        "actors_seen": poller.actors_seen,
        "summaries": [json.loads(stdout) for stdout, _ in outputs],
    }


def _config_commands(name: str, images: Path, metrics: str, work: Path) -> tuple[list[list[str]], dict[str, str], list[list[str]]]:
    """(parallel commands, environment, commands to run after them) of one configuration."""
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    base = [*RELIQA, "batch", str(images), "--metrics", metrics, "--json"]
    if name == "batch-1":
        return [[*base, "--out", str(work / "b1.csv"), "--workers", "0"]], one_thread, []
    if name == "batch-shards-2":
        shards = [[*base, "--out", str(work / "b2.csv"), "--workers", "0", "--shard", f"{i}/2"] for i in (1, 2)]
        merge = [*RELIQA, "batch", "--merge", str(work / "b2.shard-1-of-2.csv"),
                 str(work / "b2.shard-2-of-2.csv"), "--out", str(work / "b2.csv"), "--json"]
        return shards, one_thread, [merge]
    if name == "batch-workers-2":
        return [[*base, "--out", str(work / "bw2.csv"), "--workers", "2"]], dict(os.environ), []
    actors = name.split("-")[1]
    return [[*base, "--out", str(work / f"r{actors}.parquet"), "--engine", "ray", "--actors", actors]], one_thread, []


CONFIGS = {
    "batch-1": "`reliqa batch`, 1 worker",
    "batch-shards-2": "`reliqa batch --shard`, 2 shards at once + merge",
    "batch-workers-2": "`reliqa batch --workers 2` (one process, default threads)",
    "ray-1": "`--engine ray`, 1 actor",
    "ray-2": "`--engine ray`, 2 actors",
}


def _measure(name: str, images: Path, metrics: str, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True)
    commands, env, after = _config_commands(name, images, metrics, work)
    load_before = os.getloadavg()[0]
    record = _run_parallel(commands, env)
    for command in after:  # the merge of the shards counts in the wall time
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode not in (0, 1):
            raise SystemExit(f"{command} failed:\n{done.stderr[-3000:]}")
        record["wall_s"] += time.perf_counter() - started
        record["summaries"].append(json.loads(done.stdout))
    record["output_bytes"] = sum(
        path.stat().st_size for path in work.rglob("*") if path.is_file() and ".shard-" not in path.name
    )
    record["load_average_1min_before"] = load_before
    record["load_average_1min_after"] = os.getloadavg()[0]
    record["commands"] = [" ".join(command) for command in commands + after]
    return record


def _stage_costs(paths: list[Path], metrics: str, count: int = 48) -> dict[str, float]:
    """Milliseconds per image of each stage on one thread: decoding, then each metric (stacks of 8)."""
    import torch

    from reliqa.evaluation.scorers import resolve_scorer
    from reliqa.io import load_image

    torch.set_num_threads(1)
    sample = paths[:count]
    started = time.perf_counter()
    images = [load_image(path) for path in sample]
    costs = {"decode": 1000 * (time.perf_counter() - started) / len(sample)}
    same = [image for image in images if image.shape == images[0].shape]
    stacks = [torch.cat(same[i : i + 8]) for i in range(0, len(same), 8)]
    with torch.inference_mode():
        for name in metrics.split(","):
            scorer = resolve_scorer(name)
            scorer(stacks[0])
            started = time.perf_counter()
            for stack in stacks:
                scorer(stack)
            costs[name] = 1000 * (time.perf_counter() - started) / len(same)
    return costs


def _list_folder(paths: list[Path], folder: Path) -> Path:
    """A CSV list of paths (column image): both engines read it, no copy of the images."""
    folder.mkdir(parents=True, exist_ok=True)
    listing = folder / "images.csv"
    listing.write_text("image\n" + "".join(f"{path.resolve()}\n" for path in paths))
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--small", type=int, default=40, help="images of the start-up-cost run")
    parser.add_argument("--metrics", default="hirqa-s,laplacian_var")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="subset, comma-separated")
    parser.add_argument("--json-out", type=Path, default=REPO / "benchmarks" / "results" / "distributed_throughput.json")
    args = parser.parse_args()

    from reliqa.io import list_images

    paths = list_images(args.data)[: args.limit]
    if not paths:
        raise SystemExit(f"no images in {args.data}")
    stage_metrics = ",".join(dict.fromkeys(args.metrics.split(",") + ["niqe"]))
    stages = _stage_costs(paths, stage_metrics)
    print(f"stage costs, ms per image on one thread: {stages}", file=sys.stderr, flush=True)
    configs = [name.strip() for name in args.configs.split(",") if name.strip()]
    unknown = [name for name in configs if name not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="reliqa-dist-") as temporary:
        work = Path(temporary)
        full = _list_folder(paths, work / "lists" / "full")
        small = _list_folder(paths[: args.small], work / "lists" / "small")
        for index, name in enumerate(configs):
            print(f"[{datetime.now(UTC):%H:%M:%S}] {name}: {args.small} images", file=sys.stderr, flush=True)
            short = _measure(name, small, args.metrics, work / f"{index}-small")
            print(f"[{datetime.now(UTC):%H:%M:%S}] {name}: {len(paths)} images", file=sys.stderr, flush=True)
            long = _measure(name, full, args.metrics, work / f"{index}-full")
            rows = long["summaries"][-1]["rows"]
            if rows != len(paths):
                raise SystemExit(f"{name}: {rows} rows for {len(paths)} images")
            steady = (len(paths) - args.small) / max(long["wall_s"] - short["wall_s"], 1e-9)
            results.append(
                {
                    "config": name,
                    "label": CONFIGS[name],
                    "workers": 2 if name.endswith("2") else 1,
                    "images": len(paths),
                    "images_per_s": len(paths) / long["wall_s"],
                    "steady_images_per_s": steady,
                    "startup_s": short["wall_s"] - args.small / steady,
                    "small_run": short,
                    **long,
                }
            )
            print(json.dumps({key: results[-1][key] for key in ("config", "wall_s", "images_per_s", "steady_images_per_s")}), file=sys.stderr, flush=True)
        equal = _compare_outputs(work, configs)

    record = {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "data": str(args.data),
        "metrics": args.metrics,
        "small": args.small,
        "outputs_agree": equal,
        "stage_ms_per_image_one_thread": stages,
        "results": results,
    }
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"| {args.metrics}, {len(paths)} images | wall s | images/s | steady images/s | start-up s | peak RSS, all processes MB | peak RSS, one actor/process MB | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for row in results:
        one = row["peak_actor_rss_mb"] or row["peak_process_rss_mb"]
        print(
            f"| {row['label']} | {row['wall_s']:.0f} | {row['images_per_s']:.1f} | {row['steady_images_per_s']:.1f} "
            f"| {row['startup_s']:.0f} | {row['peak_tree_rss_mb']:.0f} | {one:.0f} "
            f"| {row['load_average_1min_before']:.1f}–{row['load_average_1min_after']:.1f} |"
        )
    print(json.dumps({"outputs_agree": equal, "stage_ms_per_image_one_thread": stages, "json": str(args.json_out)}))


def _compare_outputs(work: Path, configs: list[str]) -> dict[str, Any]:
    """Largest relative difference between each output and the first (same rows expected)."""
    from reliqa.batch import read_results

    outputs = {
        "batch-1": "b1.csv", "batch-shards-2": "b2.csv", "batch-workers-2": "bw2.csv",
        "ray-1": "r1.parquet", "ray-2": "r2.parquet",
    }
    tables = {}
    for index, name in enumerate(configs):
        rows = read_results(work / f"{index}-full" / outputs[name])
        tables[name] = {row["image"]: row for row in rows}
    first_name = configs[0]
    report: dict[str, Any] = {}
    for name, table in tables.items():
        if table.keys() != tables[first_name].keys():
            report[name] = "different images"
            continue
        worst = 0.0
        for key, row in table.items():
            for column, value in row.items():
                other = tables[first_name][key][column]
                if column in ("image", "error") or not value or not other:
                    if value != other and column != "image":
                        worst = float("inf")
                    continue
                worst = max(worst, abs(float(value) - float(other)) / max(abs(float(other)), 1e-12))
        report[name] = worst
    return report


if __name__ == "__main__":
    main()
