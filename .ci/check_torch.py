"""Fail CI when setup installed a CUDA build of torch on a machine that has no GPU.

A fresh clone's `make setup` must take the CPU build here (issue 11: an unpinned install
pulled torch+cu130 and 15 nvidia-* wheels, a 6.4 GB .venv, on a CPU-only machine, and CI
passed because it ran on the same fat install). Exit 1 with one line saying what to do.
"""

from __future__ import annotations

import sys

import torch


def main() -> int:
    cuda_build = torch.version.cuda
    gpu = torch.cuda.is_available()
    if cuda_build is not None and not gpu:
        print(
            f"error: torch {torch.__version__} is a CUDA {cuda_build} build but this machine has "
            "no GPU: setup should have installed the CPU build (make clean && make setup, or "
            "set TORCH_SPEC; see README, 'Quick start')",
            file=sys.stderr,
        )
        return 1
    kind = f"CUDA {cuda_build}" if cuda_build else "CPU"
    print(f"torch {torch.__version__} ({kind} build, GPU {'available' if gpu else 'absent'}): ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
