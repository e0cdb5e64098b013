"""How reliqa uses the CPU: the OpenMP wait policy, the memory allocator and torch's thread
count (core layer).

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

**The allocator.** torch's CPU tensors come from the C library's ``malloc``. With glibc's
defaults, a block of a few megabytes (an image-sized tensor) that is freed is often handed back
to the system, and the next call maps fresh pages again: every page is a kernel
entry and a page of zeros. Measured on the 2-core dev VM (``benchmarks/allocator_effect.py``,
2026-12-07, 512² inputs through the catalogue): glibc as shipped took ~3,000 such page faults per
PSNR call and ran 2.3× slower than with the memory kept; SSIM, GMSD, FSIM, HaarPSI, VSI,
``hirqa-s`` and the relational model 1.2–1.8× slower; the other scorers were unaffected.
:func:`configure_allocator` therefore raises glibc's trim threshold (freed memory up to
:data:`TRIM_THRESHOLD` stays with the process for the next call) and sets the mmap threshold
to :data:`MMAP_THRESHOLD` (blocks below it come from the heap and are reused), when ``reliqa``
is imported, unless

- the C library is not glibc (nothing to tune), or
- the user chose: ``RELIQA_ALLOCATOR=system`` keeps glibc's defaults untouched;
  ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TOP_PAD_`` or
  ``GLIBC_TUNABLES`` is set; or ``LD_PRELOAD`` loads another allocator. (Setting any glibc
  threshold, even to its default value, also switches off glibc's own adaptive mmap threshold:
  use ``RELIQA_ALLOCATOR=system`` for glibc as shipped.)

The cost is memory: a process keeps up to :data:`TRIM_THRESHOLD` of freed heap instead of
returning it at once.

This module imports nothing heavy: ``reliqa/__init__.py`` calls :func:`configure_openmp` and
:func:`configure_allocator` first thing.
"""

from __future__ import annotations

import ctypes
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


ALLOCATOR_VARIABLES = (
    "RELIQA_ALLOCATOR", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
    "GLIBC_TUNABLES", "LD_PRELOAD",
)
"""Environment variables by which a user chooses how memory is allocated."""

MMAP_THRESHOLD = 32 * 2**20
"""Blocks below this many bytes come from the heap (glibc's largest setting on 64-bit)."""

TRIM_THRESHOLD = 512 * 2**20
"""Bytes of freed memory at the top of the heap a process keeps before returning it."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter numbers (glibc's ``malloc.h``)."""


def configure_allocator(environ: Mapping[str, str] = os.environ) -> bool:
    """Keep freed memory for reuse (glibc only) unless the user chose an allocator setting.

    Returns:
        True when this call changed glibc's thresholds.
    """
    if any(name in environ for name in ALLOCATOR_VARIABLES):
        return False
    confstr = getattr(os, "confstr", None)  # absent on Windows
    try:
        if confstr is None or not confstr("CS_GNU_LIBC_VERSION"):
            return False
    except (ValueError, OSError):  # not glibc: the name is unknown to this C library
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


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


__all__ = [
    "ALLOCATOR_VARIABLES",
    "DEFAULT_WAIT_POLICY",
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "WAIT_POLICY_VARIABLES",
    "configure_allocator",
    "configure_openmp",
    "set_threads",
]
