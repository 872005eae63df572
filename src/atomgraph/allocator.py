"""Keep freed memory in the process instead of handing it back to the kernel (Linux, glibc).

A training step allocates and frees tensors of 0.1-30 MB thousands of times. With glibc's defaults, malloc
serves the larger ones with fresh ``mmap`` calls and trims the top of its heap whenever a few MB there are
free, so every step the kernel hands the same pages back, one zeroed 4 KiB page per minor fault: training
steps of PaiNN and SchNet on 32 aspirin frames or 192 water molecules took 12,000-28,000 faults and 4-22 %
longer (``benchmarks/peers/variants.py``, README).
:func:`keep_freed_memory` raises both thresholds, so freed blocks are reused: the process keeps the memory
of its largest step (its peak, which it needed anyway) instead of returning and re-faulting it. glibc applies
the trim threshold per arena: a process whose threads allocate in several arenas may hold up to 1 GiB of
free memory in each.

``import atomgraph`` calls it once. It leaves malloc alone when the process's environment already tunes it
(``GLIBC_TUNABLES`` with malloc settings, ``MALLOC_*`` variables, or an allocator in ``LD_PRELOAD`` such
as jemalloc or tcmalloc), off glibc (macOS, Windows, musl), and when ``ATOMGRAPH_MALLOC=system``.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: blocks below this come from the heap, not from mmap: glibc's largest allowed value on 64-bit systems
MMAP_THRESHOLD_BYTES = 32 * 1024**2
#: free memory at the top of the heap is returned to the kernel only above this (1 GiB)
TRIM_THRESHOLD_BYTES = 1024**3
#: ``ATOMGRAPH_MALLOC=system`` keeps glibc's defaults
OPT_OUT = ("ATOMGRAPH_MALLOC", "system")


def malloc_tuned_by_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment already chooses malloc's behaviour (then atomgraph leaves it alone)."""
    if environ.get(OPT_OUT[0], "") == OPT_OUT[1]:
        return True
    if "malloc" in environ.get("GLIBC_TUNABLES", ""):
        return True
    if any(name.startswith("MALLOC_") for name in environ):  # MALLOC_ARENA_MAX, MALLOC_TOP_PAD_, ...
        return True
    return bool(environ.get("LD_PRELOAD", "").strip())


def glibc_tunables() -> str:
    """The same settings as a ``GLIBC_TUNABLES`` value, for processes that do not import atomgraph (the
    peer frameworks' benchmark workers, given the same allocator to compare like with like)."""
    settings = {"mmap_threshold": MMAP_THRESHOLD_BYTES, "trim_threshold": TRIM_THRESHOLD_BYTES}
    return ":".join(f"glibc.malloc.{name}={value}" for name, value in settings.items())


def running_on_glibc() -> bool:
    """Whether this process's C library is glibc (the only one whose ``mallopt`` this module knows)."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows) or no such name (musl, macOS)
        return False
    return bool(version) and version.startswith("glibc")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when they were set.

    Idempotent. Does nothing (False) off Linux/glibc or when :func:`malloc_tuned_by_environment`."""
    if not running_on_glibc() or malloc_tuned_by_environment():
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return [mallopt(parameter, value) for parameter, value in settings] == [1, 1]
