"""Speed (and large-image memory) of the relational model: ms per pair, peak memory.

    python benchmarks/relational_speed.py                       # CPU, 2 threads, 512×384
    python benchmarks/relational_speed.py --device cuda         # GPU
    python benchmarks/relational_speed.py --large 8192          # peak RSS of one tiled 8K pair
    python benchmarks/relational_speed.py --model relational-plus
    python benchmarks/relational_speed.py --model relational-plus --deep-max-side 1024,384,256
    python benchmarks/relational_speed.py --score-only --rounds 30   # score without maps
    python benchmarks/relational_speed.py --model relational-plus --before /tmp/before/src \
        --rounds 30 --threads 1 --recorded benchmarks/results/relational_plus_speed_t1_2026-11-30.json

Reports the median and the minimum over ``--repeats`` timed calls after warm-up, for the full
model (maps + score, as ``reliqa.compare`` runs it, without file decoding), plus the process
CPU time per call (on a shared machine, wall time / CPU time shows how contended it was).
Prints one JSON object; ``--out`` also writes it to a file. With ``--before``, the same
pair runs on an earlier source tree and on this one, interleaved call by call in one process
(``benchmarks/speed_ab.py``), and the ratios are set beside the ``--recorded`` measurement.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_ab import import_before, interleave

from reliqa.models import create_model
from reliqa.training.common import git_commit


def _model(name: str, weights: str, device: str) -> torch.nn.Module:
    return create_model(name, pretrained=weights == "shipped", device=device)


def noisy_pair(height: int, width: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The timed pair (seed 0): a random reference and the same with σ 0.05 noise, (1, 3, H, W)."""
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(1, 3, height, width, generator=generator)
    test = (reference + 0.05 * torch.randn(reference.shape, generator=generator)).clamp(0, 1)
    return test.to(device), reference.to(device)


def _cpu_record(args: argparse.Namespace, benchmark: str) -> dict[str, object]:
    """What every interleaved CPU record states about how and where it was measured."""
    return {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "device": f"cpu ({args.threads} threads)",
        "torch": torch.__version__,
        "size": args.size,
        "model": args.model,
        "commit": git_commit(),
        "rounds": args.rounds,
        "load_average_at_start": list(os.getloadavg()),
    }


def time_pairs(
    model: torch.nn.Module, height: int, width: int, device: str, repeats: int
) -> dict[str, float]:
    test, reference = noisy_pair(height, width, device)
    walls, cpus = [], []
    with torch.inference_mode():
        for _ in range(3):
            model(test, reference)
        for _ in range(repeats):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            wall, cpu = time.perf_counter(), time.process_time()
            model(test, reference)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    return {
        "median_ms": 1000 * statistics.median(walls),
        "min_ms": 1000 * min(walls),
        "cpu_time_median_ms": 1000 * statistics.median(cpus),
    }


def time_deep_sides(
    model: torch.nn.Module, height: int, width: int, sides: list[int], rounds: int
) -> dict[str, dict[str, float]]:
    """relational-plus with each ``deep_max_side`` in ``sides``, and the shipped ``relational``
    beside them, interleaved: every round calls each case once (CPU), so drift in the machine's
    speed (this VM's quiet runs differ by up to 2× between hours) reaches all of them alike."""
    test, reference = noisy_pair(height, width)
    relational = create_model("relational")
    cases = [str(side) for side in sides] + ["relational"]
    walls: dict[str, list[float]] = {case: [] for case in cases}
    with torch.inference_mode():
        for index in range(rounds + 2):  # two warm-up rounds
            for case in cases:
                if case != "relational":
                    model.deep_max_side = int(case)  # type: ignore[assignment]
                start = time.perf_counter()
                (relational if case == "relational" else model)(test, reference)
                if index >= 2:
                    walls[case].append(time.perf_counter() - start)
    return {
        case: {"median_ms": 1000 * statistics.median(w), "min_ms": 1000 * min(w)}
        for case, w in walls.items()
    }


def large_pair_memory(model: torch.nn.Module, side: int) -> dict[str, float]:
    """Peak resident memory of one tiled side × side pair on CPU (inputs and maps included)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reference = torch.rand(1, 3, side, side)
    test = reference.flip(-1)
    start = time.perf_counter()
    with torch.inference_mode():
        output = model(test, reference)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data_mb = (reference.numel() * 2 + output.maps.numel()) * 4 / 2**20
    return {
        "side": side,
        "peak_rss_mb": peak,
        "rss_before_mb": before,
        "inputs_and_maps_mb": data_mb,
        "working_memory_mb": peak - before - data_mb,
        "seconds": elapsed,
    }


def before_after(args: argparse.Namespace) -> dict[str, object]:
    """This model timed on ``--before`` and on this checkout, interleaved; with ``--recorded``,
    the recorded median divided by the measured speed-up too."""
    torch.set_num_threads(args.threads)
    before_models = import_before(args.before, "models")
    width, height = (int(v) for v in args.size.lower().split("x"))
    test, reference = noisy_pair(height, width)
    models = [
        create(args.model, pretrained=args.weights == "shipped")
        for create in (before_models.create_model, create_model)
    ]
    calls = tuple(_pair_call(model, test, reference) for model in models)
    with torch.inference_mode():
        summary = interleave({"pair": calls}, args.rounds)  # type: ignore[dict-item]
    result = _cpu_record(args, "relational_speed before/after (interleaved in one process)")
    result.update(before=args.before_label or str(args.before), after=result.pop("commit"))
    result["cases"] = summary
    if args.recorded:
        recorded = json.loads(Path(args.recorded).read_text())
        result["recorded"] = {
            "file": args.recorded,
            "device": recorded["device"],
            "median_ms": recorded["median_ms"],
            "median_divided_by_speedup_ms": round(
                recorded["median_ms"] / summary["pair"]["speedup_median_of_rounds"], 2
            ),
        }
    return result


def score_against_maps(args: argparse.Namespace) -> dict[str, object]:
    """``model.score`` (no maps: what batch scoring and ranking by score run) against the full
    ``model(test, reference)`` (maps + score, as ``reliqa compare``), interleaved call by call."""
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    test, reference = noisy_pair(height, width)
    model = _model(args.model, args.weights, "cpu")
    calls = (_pair_call(model, test, reference), lambda: model.score(test, reference))
    with torch.inference_mode():
        summary = interleave({"maps_and_score_vs_score": calls}, args.rounds)  # type: ignore[dict-item]
    result = _cpu_record(
        args, "relational_speed --score-only (maps + score before, score alone after)"
    )
    result["cases"] = summary
    return result


def _pair_call(
    model: torch.nn.Module, test: torch.Tensor, reference: torch.Tensor
) -> Callable[[], object]:
    return lambda: model(test, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="512x384", help="WIDTHxHEIGHT")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--model", default="relational", choices=("relational", "relational-plus"))
    parser.add_argument("--weights", default="shipped", choices=("shipped", "random"))
    parser.add_argument(
        "--large", type=int, default=0, help="also measure one tiled pair of this side (CPU)"
    )
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--deep-max-side", default=None,
        help="relational-plus: comma-separated sides for its deep branch, timed interleaved "
        "(one call of each per round, --repeats rounds) in one process",
    )
    parser.add_argument(
        "--before", type=Path,
        help="src folder of an earlier tree: time it and this one interleaved (CPU only)",
    )
    parser.add_argument("--rounds", type=int, default=30, help="before/after rounds")
    parser.add_argument("--before-label", help="what the before tree is (e.g. its commit)")
    parser.add_argument("--recorded", default=None, help="with --before: an earlier record")
    parser.add_argument(
        "--score-only", action="store_true",
        help="time model.score (no maps) against maps + score, interleaved (CPU, --rounds)",
    )
    args = parser.parse_args()
    if args.before or args.score_only:
        result = before_after(args) if args.before else score_against_maps(args)
        if args.out:  # first: a closed stdout (`| head`) must not lose the record
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps({"cases": result["cases"], "recorded": result.get("recorded")}, indent=2))
        return
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    model = _model(args.model, args.weights, args.device)
    result: dict[str, object] = {
        "benchmark": "relational_speed",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"cpu ({args.threads} threads)",
        "torch": torch.__version__,
        "size": f"{width}x{height}",
        "model": args.model,
        "weights": args.weights,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if args.deep_max_side:
        sides = [int(side) for side in args.deep_max_side.split(",")]
        result["deep_max_side"] = time_deep_sides(model, height, width, sides, args.repeats)
    else:
        result.update(time_pairs(model, height, width, args.device, args.repeats))
    if args.large:
        result["large"] = large_pair_memory(_model(args.model, args.weights, "cpu"), args.large)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
