"""Speed, parameters and FLOPs of the no-reference models ``hirqa`` and ``hirqa-s``.

Measures milliseconds per 512×512 image at batch 1 and batch 16 on CPU with 2 threads and, when
CUDA is available, on the GPU (fp32, channels-last, after warm-up; the median of several timed
repetitions). Parameters count the inference path (the training-only text projection head is
left out); FLOPs are counted by ``torch.utils.flop_counter`` for one 512×512 image (one
multiply-add = 2 FLOPs). The shipped weights are timed (random weights can hit denormal-float slow paths on a
CPU). ``hirqa`` scores an image at most 768 pixels on its longer side, so a 512×512 image is
scored whole.

    python benchmarks/nr_speed.py --out benchmarks/results/nr_speed_cpu.json
    python benchmarks/nr_speed.py --baselines niqe,laplacian_var --out nr_speed_all.json
    python benchmarks/nr_speed.py --cards-from benchmarks/results/nr_speed_gpu_machine.json
    python benchmarks/nr_speed.py --before /tmp/before/src --rounds 3 --threads 1 \
        --recorded benchmarks/results/nr_speed_devvm_2026-12-07.json --out before_after.json

``--baselines`` times the classical no-reference metrics of the catalogue beside the models, the
same way (their call on the batch; no parameters or FLOPs). The next form writes an earlier measurement into the shipped model cards (``results.speed``).
The third times the same cases on an earlier source tree and on this one, interleaved
(``benchmarks/speed_ab.py``), and sets the ratios beside the ``--recorded`` measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_ab import import_before, interleave

from reliqa.metrics import create_metric
from reliqa.models import create_model
from reliqa.training.common import git_commit

MODELS = ("hirqa", "hirqa-s")

SIZE = 512


def inference_parameters(model: nn.Module) -> int:
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if not name.startswith(("text_projection", "backbone._fc"))
    )


def flops_per_image(model: nn.Module) -> int:
    counter = FlopCounterMode(display=False)
    with counter:  # the counter's module hooks need autograd on (no inference_mode)
        model(torch.rand(1, 3, SIZE, SIZE))
    return int(counter.get_total_flops())


def time_per_image(
    model: nn.Module, batch: int, device: torch.device, repeats: int, *, metric: bool = False
) -> tuple[float, float]:
    """Median milliseconds per image over ``repeats`` timed passes of ``batch`` images: a
    model's ``score``, or a catalogue metric's call (``metric``); and the process's minor page
    faults per image over those passes (memory the allocator had to map afresh: each costs a
    kernel entry and a page of zeros, so a path that allocates image-sized tensors into new
    pages at every call shows here)."""
    images = torch.rand(batch, 3, SIZE, SIZE, device=device)
    timings = []
    with torch.inference_mode():
        for index in range(repeats + 2):  # two warm-up passes
            if index == 2:
                faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(images) if metric else model.score(images)  # type: ignore[operator]
            if device.type == "cuda":
                torch.cuda.synchronize()
            if index >= 2:
                timings.append((time.perf_counter() - start) * 1000.0 / batch)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return statistics.median(timings), faults / (repeats * batch)


def write_cards(results: dict[str, object], source: str) -> None:
    """Record a measurement in the shipped model cards (the sha256 is unchanged)."""
    from reliqa.models.weights import WEIGHTS_DIR

    for name, entry in results["models"].items():  # type: ignore[attr-defined]
        card_path = WEIGHTS_DIR / f"{name}.json"
        if not card_path.is_file():
            continue
        card = json.loads(card_path.read_text())
        context = {k: v for k, v in results.items() if k != "models"}
        card.setdefault("results", {})["speed"] = {
            **entry,
            **context,
            "file": source,
            "command": "python benchmarks/nr_speed.py",
        }
        card_path.write_text(json.dumps(card, indent=2) + "\n")


def measure(args: argparse.Namespace) -> dict[str, object]:
    """One measurement in this process: the record ``--out`` gets."""
    torch.set_num_threads(args.threads)
    results: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpu_threads": args.threads,
        "torch": torch.__version__,
        "image_size": [SIZE, SIZE],
        "models": {},
    }
    if torch.cuda.is_available():
        results["gpu"] = torch.cuda.get_device_name(0)
    for name in args.models.split(","):
        torch.manual_seed(0)
        # the shipped weights: random ones can be much slower on a CPU (denormal activations:
        # an untrained hirqa ran at ~850 ms per image instead of ~50)
        model = create_model(name).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        entry: dict[str, object] = {"parameters": inference_parameters(model)}
        if not args.no_flops:
            entry["gflops_per_image"] = round(flops_per_image(model) / 1e9, 3)
        if not args.skip_cpu:
            for batch in args.batches:
                milliseconds, faults = time_per_image(
                    model, batch, torch.device("cpu"), args.repeats
                )
                entry[f"cpu_ms_per_image_batch{batch}"] = round(milliseconds, 2)
                entry[f"cpu_minor_page_faults_per_image_batch{batch}"] = round(faults, 1)
        if torch.cuda.is_available():
            gpu_model = model.to("cuda")
            for batch in args.batches:
                entry[f"gpu_ms_per_image_batch{batch}"] = round(
                    time_per_image(gpu_model, batch, torch.device("cuda"), args.repeats * 4)[0], 3
                )
        results["models"][name] = entry  # type: ignore[index]
        print(name, json.dumps(entry), flush=True)
    for name in filter(None, args.baselines.split(",")):
        metric = create_metric(name)
        entry = {
            f"cpu_ms_per_image_batch{batch}": round(
                time_per_image(metric, batch, torch.device("cpu"), args.repeats, metric=True)[0],
                2,
            )
            for batch in args.batches
        }
        results["models"][name] = entry  # type: ignore[index]
        print(name, json.dumps(entry), flush=True)
    return results


def before_after(args: argparse.Namespace) -> dict[str, object]:
    """The CPU cases timed on ``--before`` and on this checkout, interleaved; with
    ``--recorded``, that record's numbers divided by the measured speed-up too."""
    torch.set_num_threads(args.threads)
    before_models = import_before(args.before, "models")
    cases = {}
    for name in args.models.split(","):
        models = [
            create(name).to(memory_format=torch.channels_last)
            for create in (before_models.create_model, create_model)
        ]
        for batch in args.batches:
            images = torch.rand(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
            cases[f"{name}/batch{batch}"] = tuple(
                _per_image(model, images) for model in models
            )
    with torch.inference_mode():
        summary = interleave(cases, args.rounds)  # type: ignore[arg-type]
    result: dict[str, object] = {
        "benchmark": "nr_speed before/after (interleaved in one process)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "cpu_threads": args.threads,
        "torch": torch.__version__,
        "before": args.before_label or str(args.before),
        "after": git_commit(),
        "rounds": args.rounds,
        "load_average_at_start": list(os.getloadavg()),
        "note": "ms per call of model.score on the whole batch (divide by the batch for ms/image)",
        "cases": summary,
    }
    if args.recorded:
        recorded = json.loads(args.recorded.read_text())
        result["recorded"] = {"file": str(args.recorded), "cpu_threads": recorded["cpu_threads"]}
        for case, numbers in summary.items():
            name, batch = case.split("/")
            old = recorded["models"].get(name, {}).get(f"cpu_ms_per_image_{batch}")
            if old is not None:
                numbers["recorded_ms_per_image"] = old
                numbers["recorded_divided_by_speedup_ms"] = round(
                    old / numbers["speedup_median_of_rounds"], 2
                )
    return result


def _per_image(model: nn.Module, images: torch.Tensor) -> Callable[[], object]:
    return lambda: model.score(images)  # type: ignore[operator]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file to write.")
    parser.add_argument(
        "--cards-from", type=Path, help="Only copy this measurement into the model cards."
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2).")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-cpu", action="store_true", help="Time only the GPU.")
    parser.add_argument("--models", default=",".join(MODELS), help="Comma-separated names.")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument(
        "--baselines", default="", help="Comma-separated NR catalogue metrics to time too."
    )
    parser.add_argument("--no-flops", action="store_true", help="Skip the FLOP count.")
    parser.add_argument(
        "--before", type=Path,
        help="src folder of an earlier tree: time it and this one interleaved (CPU only).",
    )
    parser.add_argument("--rounds", type=int, default=15, help="Before/after rounds.")
    parser.add_argument("--before-label", help="What the before tree is (e.g. its commit).")
    parser.add_argument(
        "--recorded", type=Path, help="With --before: an earlier record to set the ratios beside."
    )
    args = parser.parse_args()
    if args.cards_from:
        write_cards(json.loads(args.cards_from.read_text()), str(args.cards_from))
        return
    if args.out is None:
        parser.error("--out is required")
    results = before_after(args) if args.before else measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.before:
        print(json.dumps(results["cases"], indent=2))


if __name__ == "__main__":
    main()
