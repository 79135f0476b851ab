import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RTFUSE_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config):
    """Tests (and the CLIs they start) unpack the sentence model and cache embeddings in a folder of
    their own, not in the user's ~/.cache/rtfuse."""
    import tempfile

    config._rtfuse_cache = tempfile.mkdtemp(prefix="rtfuse-test-cache-")
    os.environ["RTFUSE_CACHE"] = config._rtfuse_cache
    # A shell's background job starts with SIGINT ignored, and the CLIs the tests start would inherit
    # that (rtfuse keeps an inherited ignore, as it should) and never see the tests' Ctrl-C. A Python
    # handler is not inherited across exec, so the children start with the default action.
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config):
    import shutil

    shutil.rmtree(getattr(config, "_rtfuse_cache", ""), ignore_errors=True)


def run_cli(*args, cwd=REPO, timeout=300):
    """Run the real console entry point in a subprocess: exit code, stdout + stderr."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "rtfuse._entry", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return r.returncode, r.stdout + r.stderr


def data_dir(*parts: str) -> Path:
    """A folder of the shared real data, or skip the test with the reason."""
    p = DATA.joinpath(*parts)
    if not p.is_dir():
        pytest.skip(f"real data {p} is absent (set RTFUSE_DATA to the shared data folder)")
    return p


def real_pairs(name: str, n: int | None = None):
    """(vis BGR uint8, ir uint8) pairs from a shared data set, paired by stem."""
    import cv2

    root = data_dir(name)
    stems = sorted(p.stem for p in (root / "vis").iterdir())[:n]
    out = []
    for s in stems:
        vis = cv2.imread(str(next((root / "vis").glob(s + ".*"))), cv2.IMREAD_COLOR)
        ir = cv2.imread(str(next((root / "ir").glob(s + ".*"))), cv2.IMREAD_GRAYSCALE)
        out.append((s, vis, ir))
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def random_pair(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w), dtype=np.uint8)


def write_video(path, frames, fps, codec="ffv1", pix_fmt=None, options=None):
    """Encode a list of uint8 BGR (H, W, 3) or gray (H, W) frames with PyAV; returns path.
    ``options`` go to the muxer, e.g. ``{"movflags": "+faststart"}``."""
    from fractions import Fraction

    import av
    import cv2

    with av.open(str(path), "w", options=options or {}) as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt or ("bgr0" if codec == "ffv1" else "yuv420p")
        for img in frames:
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def read_video(path):
    """(frames as BGR uint8 list, average fps, pts seconds list) of a video file."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames, ts = [], []
        for f in c.decode(s):
            frames.append(f.to_ndarray(format="bgr24"))
            ts.append(float(f.pts * f.time_base))
        return frames, float(s.average_rate), ts
