"""The first run after installing compiles the Numba kernels (10-30 s): the CLI says so, once."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO


@pytest.mark.slow
def test_a_cold_kernel_cache_is_announced_once(tmp_path):
    rng = np.random.default_rng(0)
    vis, ir = tmp_path / "v.png", tmp_path / "i.png"
    cv2.imwrite(str(vis), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    cv2.imwrite(str(ir), rng.integers(0, 256, (48, 64), dtype=np.uint8))
    # An empty cache of its own: Numba looks there first, so the kernels compile as after installing.
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def fuse(out: str) -> str:
        r = subprocess.run(
            [sys.executable, "-m", "rtfuse._entry", "fuse", "--vis", vis, "--ir", ir, "-o", tmp_path / out],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return r.stderr

    assert "compiling the fusion kernels" in fuse("a.png")
    assert "compiling the fusion kernels" not in fuse("b.png")
    assert cv2.imread(str(tmp_path / "a.png")) is not None
