"""Frame memory reuse (rtfuse/heap.py): frame-sized blocks come from reused heap pages, and a
user's own malloc settings are left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rtfuse.heap import reuse_frame_memory

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "confstr"), reason="glibc's malloc only"
)

# 100 rounds of a few 640x480 BGR frames in flight (a pipeline's queues), written, then freed together.
_LOOP = """
import resource, sys
import numpy as np
from rtfuse.heap import reuse_frame_memory
if sys.argv[1] == "1":
    assert reuse_frame_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(100):
    frames = [np.full((480, 640, 3), i % 256, np.uint8) for _ in range(4)]
    del frames
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(on: bool) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    done = subprocess.run(
        [sys.executable, "-c", _LOOP, "1" if on else "0"], env=env, capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@glibc
def test_frames_reuse_pages_instead_of_faulting_them_in_anew():
    plain, reused = _faults(False), _faults(True)
    # four 921,600-byte frames are 900 pages: faulted in once, then reused; by default glibc returns
    # them to the kernel whenever they are freed together, so they fault in again every round
    assert reused < 1500, (plain, reused)
    assert reused * 10 < plain, (plain, reused)


@glibc
@pytest.mark.parametrize("var", ["MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"])
def test_malloc_settings_of_the_user_are_left_alone(monkeypatch, var):
    monkeypatch.setenv(var, "glibc.malloc.mmap_threshold=1048576" if var == "GLIBC_TUNABLES" else "1048576")
    assert reuse_frame_memory() is False
