"""How reliqa uses the CPU: the OpenMP wait policy and torch's thread count (core layer).

torch runs its CPU work on a pool of OpenMP threads, one per core by default. OpenMP's default
lets a thread that has finished its share *spin* for a while, waiting for the next parallel
region. On a machine where another process keeps a core busy, that spinning thread competes
with the thread that still has work on that core, and every parallel region waits for it:
measured on a 2-core machine with one core busy, relational-plus took 5.5 s per pair with 2
threads instead of 0.2 s with 1 (``benchmarks/busy_machine.py``).

reliqa therefore lets idle threads sleep: :func:`configure_openmp` sets
``OMP_WAIT_POLICY=PASSIVE`` when ``reliqa`` is imported, *before* torch is imported (OpenMP
reads the variable once, when torch's library loads), unless

- the user chose a policy (``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or ``KMP_BLOCKTIME`` is
  set; set ``OMP_WAIT_POLICY=ACTIVE`` to get spinning back), or
- torch was imported before reliqa (then it is too late; nothing is changed).

The thread count stays torch's default (one per core) unless the caller asks for another
(:func:`set_threads`, the CLI's ``--threads N``). Child processes (DataLoader workers,
``torchrun``) inherit the variable.

This module imports nothing heavy: ``reliqa/__init__.py`` calls :func:`configure_openmp`
first thing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

from reliqa.exceptions import UsageError

WAIT_POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
"""Environment variables by which a user chooses how idle OpenMP threads wait."""

DEFAULT_WAIT_POLICY = "PASSIVE"
"""reliqa's OpenMP wait policy when the user chose none: idle threads sleep."""


def configure_openmp(
    environ: MutableMapping[str, str] = os.environ,
    modules: Mapping[str, object] = sys.modules,
) -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose a policy or torch is loaded.

    Returns:
        True when this call set the policy.
    """
    if "torch" in modules or any(name in environ for name in WAIT_POLICY_VARIABLES):
        return False
    environ["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    return True


def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch CPU threads (``None``: keep the current count); return the count.

    Raises:
        UsageError: ``threads`` is below 1.
    """
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


__all__ = ["DEFAULT_WAIT_POLICY", "WAIT_POLICY_VARIABLES", "configure_openmp", "set_threads"]
