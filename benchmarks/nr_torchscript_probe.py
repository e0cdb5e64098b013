"""Does TorchScript help ``hirqa``'s backbone on this CPU? Eager vs frozen vs
``optimize_for_inference`` on the stage features of one 512² image (docs/nr.md, "Speed").

    python benchmarks/nr_torchscript_probe.py [--threads 2] [--rounds 3] [--repeats 15]

Prints the median ms per call of each variant, per round (the variants alternate, so a change of
the machine's speed shows in every column), and the largest difference of their outputs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from reliqa.models import create_model
from reliqa.models.efficientnet_lite import EfficientNetLite0


class _Stages(torch.nn.Module):
    """The backbone's stage features as a traceable module."""

    def __init__(self, backbone: EfficientNetLite0) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone.stage_features_unchecked(images, None)


def _median_ms(function: Callable[[torch.Tensor], object], images: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            function(images)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function(images)
            times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2] * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = create_model("hirqa").eval()
    eager = _Stages(model.backbone).eval()  # type: ignore[arg-type]
    images = torch.rand(1, 3, 512, 512).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        frozen = torch.jit.freeze(torch.jit.trace(eager, images, check_trace=False).eval())
        optimised = torch.jit.optimize_for_inference(
            torch.jit.freeze(torch.jit.trace(eager, images, check_trace=False).eval())
        )
    variants = {"eager": eager, "frozen": frozen, "optimize_for_inference": optimised}
    for round_index in range(args.rounds):
        timings = {name: round(_median_ms(f, images, args.repeats), 1) for name, f in variants.items()}
        print(f"round {round_index + 1}: {timings} ms")
    with torch.inference_mode():
        reference = eager(images)
        largest = max(
            (a - b).abs().max().item()
            for f in (frozen, optimised)
            for a, b in zip(reference, f(images))
        )
    print(f"largest output difference: {largest:.2e}")


if __name__ == "__main__":
    main()
