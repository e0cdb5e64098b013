"""Speed, parameters and FLOPs of the no-reference models ``hirqa`` and ``hirqa-s``.

Measures milliseconds per 512×512 image at batch 1 and batch 16 on CPU with 2 threads and, when
CUDA is available, on the GPU (fp32, channels-last, after warm-up; the median of several timed
repetitions). Parameters count the inference path (the training-only text projection head is
left out); FLOPs are counted by ``torch.utils.flop_counter`` for one 512×512 image (one
multiply-add = 2 FLOPs). The shipped weights are timed (random weights can hit denormal-float slow paths on a
CPU). ``hirqa`` scores an image at most 768 pixels on its longer side, so a 512×512 image is
scored whole.

    python benchmarks/nr_speed.py --out benchmarks/results/nr_speed_cpu.json
    python benchmarks/nr_speed.py --cards-from benchmarks/results/nr_speed_gpu_machine.json

The second form writes an earlier measurement into the shipped model cards (``results.speed``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from reliqa.models import create_model

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


def time_per_image(model: nn.Module, batch: int, device: torch.device, repeats: int) -> float:
    """Median milliseconds per image over ``repeats`` timed forward passes of ``batch`` images."""
    images = torch.rand(batch, 3, SIZE, SIZE, device=device)
    timings = []
    with torch.inference_mode():
        for index in range(repeats + 2):  # two warm-up passes
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.score(images)  # type: ignore[operator]
            if device.type == "cuda":
                torch.cuda.synchronize()
            if index >= 2:
                timings.append((time.perf_counter() - start) * 1000.0 / batch)
    return statistics.median(timings)


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
    args = parser.parse_args()
    if args.cards_from:
        write_cards(json.loads(args.cards_from.read_text()), str(args.cards_from))
        return
    if args.out is None:
        parser.error("--out is required")
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
        entry: dict[str, object] = {
            "parameters": inference_parameters(model),
            "gflops_per_image": round(flops_per_image(model) / 1e9, 3),
        }
        if not args.skip_cpu:
            for batch in (1, 16):
                entry[f"cpu_ms_per_image_batch{batch}"] = round(
                    time_per_image(model, batch, torch.device("cpu"), args.repeats), 2
                )
        if torch.cuda.is_available():
            gpu_model = model.to("cuda")
            for batch in (1, 16):
                entry[f"gpu_ms_per_image_batch{batch}"] = round(
                    time_per_image(gpu_model, batch, torch.device("cuda"), args.repeats * 4), 3
                )
        results["models"][name] = entry  # type: ignore[index]
        print(name, json.dumps(entry), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
