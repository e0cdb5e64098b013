"""Metric hacking check: descend the relational loss on the PIXELS of a noisy image.

    python benchmarks/tuning_pixel_hacking.py [--size 96] [--steps 20] [--step-size 0.005]

For three bundled photos with Gaussian noise (σ = 0.08, seed 0), take signed-gradient steps on
the pixels and report the relational loss, the maps' mean noise change and the MSE to the
reference before and after, and the cosine between the first descent direction and the true
correction (reference − test). Through a pipeline with a few parameters the loss is a good
guide (docs/tuning.md); on free pixels it can be lowered without moving towards the reference.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.nn import functional as F

from reliqa.attributes import ATTRIBUTE_INDEX
from reliqa.tuning.loss import relational_loss
from reliqa.tuning.photos import load_photo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--step-size", type=float, default=0.005)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    noise_k = ATTRIBUTE_INDEX["noise"]
    rows = []
    for name in ("astronaut", "coffee", "chelsea"):
        reference = load_photo(name, args.size)
        generator = torch.Generator().manual_seed(0)
        noisy = (reference + 0.08 * torch.randn(reference.shape, generator=generator)).clamp(0, 1)
        x = noisy.clone()
        first_direction = None
        for _ in range(args.steps):
            y = x.clone().requires_grad_(True)
            relational_loss(y, reference).backward()
            assert y.grad is not None
            if first_direction is None:
                first_direction = -y.grad
            x = (x - args.step_size * y.grad.sign()).clamp(0, 1)
        with torch.no_grad():
            before, t0 = relational_loss(noisy, reference, return_terms=True)
            after, t1 = relational_loss(x, reference, return_terms=True)
        assert first_direction is not None
        row = {
            "photo": name,
            "relational_loss": [float(before), float(after)],
            "noise_mean_signed": [float(t0.signed[0, noise_k]), float(t1.signed[0, noise_k])],
            "mse_to_reference": [
                float(F.mse_loss(noisy, reference)),
                float(F.mse_loss(x, reference)),
            ],
            "cosine_first_step_vs_true_correction": float(
                F.cosine_similarity(first_direction.flatten(), (reference - noisy).flatten(), dim=0)
            ),
        }
        rows.append(row)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
