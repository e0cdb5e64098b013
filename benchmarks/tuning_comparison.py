"""The tuning comparison of docs/tuning.md and the README: one `reliqa tune` run, saved.

    python benchmarks/tuning_comparison.py [--image astronaut] [--size 256] [--steps 150]
        [--budget 40] [--seed 0] [--threads 1] [--out runs/tuning_comparison]
        [--json-out benchmarks/results/tuning_comparison.json] [--docs-images docs/images]

Runs the three tasks (recover, correct, blackbox) with the four objectives (relational maps,
MSE, SSIM, MS-SSIM) exactly as `reliqa tune` does, writes the HTML report to --out, the results
(without per-step curves) to --json-out, copies the figures used by the docs to
--docs-images/tuning_*.png, and prints the Markdown tables of the docs.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from reliqa.reports.tuning_report import jsonable, write_report
from reliqa.tuning.example import run_example
from reliqa.tuning.optimize import judged_directly

DOC_FIGURES = (
    "correct_images",
    "correct_maps_before",
    "correct_maps_after",
    "curves",
    "recover_trajectories",
    "blackbox_trajectories",
)


def markdown(results: dict) -> str:
    lines = []
    for task_name, task in results["tasks"].items():
        runs = task["runs"]
        metrics = [m for m in next(iter(runs.values()))["quality"]]
        lines.append(f"\n### {task_name}\n")
        header = ["objective", *metrics, "converged at", "wall s"]
        if task_name == "recover":
            header.insert(1, "mean abs param error")
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        before = task["before"]["quality"]
        row = ["before", *("" for _ in range(task_name == "recover"))]
        row += [_f(before[m]) for m in metrics] + ["", ""]
        lines.append("| " + " | ".join(row) + " |")
        for loss, run in runs.items():
            own = set(judged_directly(loss))
            row = [loss]
            if task_name == "recover":
                row.append(_f(run["mean_abs_error"]))
            row += [_f(run["quality"][m]) + ("*" if m in own else "") for m in metrics]
            row += [str(run["converged_step"]), f"{run['wall_time_s']:.1f}"]
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        names = list(next(iter(runs.values()))["params"])
        lines.append("| objective | " + " | ".join(names) + " |")
        lines.append("|" + "---|" * (len(names) + 1))
        if "truth" in task:
            lines.append("| truth | " + " | ".join(_f(task["truth"][n], 3) for n in names) + " |")
        for loss, run in runs.items():
            cells = []
            for n in names:
                cell = _f(run["params"][n], 3)
                if "error" in run:
                    cell += f" (±{run['error'][n]:.3f})"
                cells.append(cell)
            extra = f" (bpp {run['bpp']:.3f})" if "bpp" in run else ""
            lines.append(f"| {loss}{extra} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _f(value: object, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="astronaut")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/tuning_comparison")
    parser.add_argument("--json-out", default="benchmarks/results/tuning_comparison.json")
    parser.add_argument("--docs-images", default=None, help="copy the docs figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    result = run_example(
        args.image,
        size=args.size,
        steps=args.steps,
        budget=args.budget,
        seed=args.seed,
        progress=lambda label: print("…", label, flush=True),
    )
    files = write_report(result, args.out)
    data = jsonable(result.to_dict())
    for task in data["tasks"].values():
        for run in task["runs"].values():
            run.pop("curve"), run.pop("trajectory")
    data["machine"] = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(start)),
    }
    data["command"] = (
        "python benchmarks/tuning_comparison.py --image {image} --size {size} "
        "--steps {steps} --budget {budget} --seed {seed} --threads {threads}"
    ).format(**vars(args))
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(data, indent=2))
    if args.docs_images:
        folder = Path(args.docs_images)
        folder.mkdir(parents=True, exist_ok=True)
        for name in DOC_FIGURES:
            if name in files:
                shutil.copyfile(files[name], folder / f"tuning_{name}.png")
    print(markdown(data))
    print(
        f"\nreport: {files['report']}  results: {args.json_out}  total {result.wall_time_s:.1f} s"
    )


if __name__ == "__main__":
    main()
