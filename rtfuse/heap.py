"""Frame buffers from reused heap memory instead of fresh mappings (glibc's malloc, for the CLI and workers).

glibc serves a block above its mmap threshold (128 KiB at start, raised as such blocks are freed)
with a fresh ``mmap``: the kernel faults in and zeroes every page on first touch, and ``free`` unmaps
it again. Every decoded, converted, fused and encoded frame is such a block, so until the threshold
has risen a run pays for each frame's memory anew: a 604-frame 640x480 decode + encode takes about
196,000 page faults, and its first run in a process is about 14 % slower than a second one
(``benchmarks/RESULTS.md``). A fixed threshold above any frame, and a trim threshold that keeps freed
frames in the heap, make a run reuse the same pages from its first frame on. What the heap keeps is
bounded by what the pipeline's bounded queues hold at once plus up to ``TRIM_THRESHOLD`` of freed
memory per malloc arena (glibc gives busy threads arenas of their own), so memory stays flat over a
long run (``benchmarks/RESULTS.md``: a 10,000-frame soak).

Only the command line, its batch workers and its Ray tasks call :func:`reuse_frame_memory`; a
program that imports rtfuse keeps its own malloc settings. Settings the user made (``MALLOC_*_``
variables or ``GLIBC_TUNABLES``) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 32 << 20  # bytes: above a 4K BGR frame (25 MB); the most glibc accepts on 64-bit
TRIM_THRESHOLD = 128 << 20  # bytes of freed memory the heap may keep before returning it
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def reuse_frame_memory() -> bool:
    """Set glibc's mmap and trim thresholds as above; True when both were set. A no-op (False) off
    Linux, off glibc, or when the user configured malloc through the environment."""
    if not sys.platform.startswith("linux") or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if any(k.startswith("MALLOC_") and k.endswith("_") for k in os.environ):
        return False
    try:
        os.confstr("CS_GNU_LIBC_VERSION")  # raises off glibc (musl has a mallopt that does nothing)
        mallopt = ctypes.CDLL(None).mallopt
    except (ValueError, OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_set = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return bool(mmap_set and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
