"""Speed and memory of the relational loss (and of MSE / SSIM / MS-SSIM losses) on CPU.

    python benchmarks/tuning_loss_speed.py [--size 512] [--batch 8] [--threads 2] [--repeats 5]
        [--device cpu] [--json-out benchmarks/results/tuning_loss_speed.json]

Each (loss, mode) runs in a fresh child process: the inputs and the network are made first, the
peak resident memory is read (``ru_maxrss``), one warm-up call runs, then ``--repeats`` timed
calls (wall time and the process's CPU time, all threads: on a shared machine the CPU time
is the steadier figure). "memory" is the rise of the peak resident set over the state before the first call: the
working memory of one call (activations kept for the backward pass included). Modes: ``forward``
(no gradient) and ``backward`` (loss and gradient with respect to the test batch).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

LOSSES = ("relational", "mse", "ssim", "ms_ssim")


def child(
    loss_name: str, mode: str, size: int, batch: int, threads: int, repeats: int, device: str
) -> dict:
    import torch

    from reliqa.tuning.loss import shipped_map_network
    from reliqa.tuning.optimize import make_loss

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(batch, 3, size, size, generator=generator).to(device)
    test = reference + 0.05 * torch.randn(reference.shape, generator=generator).to(device)
    test = test.clamp(0, 1)
    if loss_name == "relational":
        shipped_map_network(device)  # load the weights before measuring
    loss = make_loss(loss_name)
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_cuda = torch.cuda.memory_allocated()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def once() -> None:
        if mode == "forward":
            with torch.no_grad():
                loss(test, reference)
        else:
            x = test.clone().requires_grad_(True)
            loss(x, reference).backward()
            assert x.grad is not None
        synchronize()

    once()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        once()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    result = {
        "loss": loss_name,
        "mode": mode,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "per_image_ms": 1000 * statistics.median(times) / batch,
        "cpu_median_s": statistics.median(cpu_times),
        "peak_rss_rise_mb": (peak - base) / 1024.0,
    }
    if device.startswith("cuda"):
        result["cuda_peak_mb"] = (torch.cuda.max_memory_allocated() - base_cuda) / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--child", nargs=2, metavar=("LOSS", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(
                child(*args.child, args.size, args.batch, args.threads, args.repeats, args.device)
            )
        )
        return
    rows = []
    for loss_name in args.losses.split(","):
        for mode in ("forward", "backward"):
            command = [
                sys.executable,
                __file__,
                "--child",
                loss_name,
                mode,
                "--size",
                str(args.size),
                "--batch",
                str(args.batch),
                "--threads",
                str(args.threads),
                "--repeats",
                str(args.repeats),
                "--device",
                args.device,
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            row = json.loads(output.strip().splitlines()[-1])
            rows.append(row)
            extra = f", CUDA peak {row['cuda_peak_mb']:.0f} MB" if "cuda_peak_mb" in row else ""
            print(
                f"{loss_name:10s} {mode:8s} {row['median_s'] * 1000:8.1f} ms/batch "
                f"({row['per_image_ms']:.1f} ms/image, CPU time {row['cpu_median_s'] * 1000:.0f}"
                f" ms/batch), peak RSS rise "
                f"{row['peak_rss_rise_mb']:.0f} MB{extra}",
                flush=True,
            )
    try:
        load = list(__import__("os").getloadavg())
    except OSError:
        load = None
    payload = {
        "command": " ".join(["python", "benchmarks/tuning_loss_speed.py", *sys.argv[1:]]),
        "size": args.size,
        "batch": args.batch,
        "threads": args.threads,
        "repeats": args.repeats,
        "device": args.device,
        "rows": rows,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": __import__("os").cpu_count(),
            "load_average_after": load,
            "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        },
    }
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
