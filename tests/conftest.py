import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RTFUSE_DATA", REPO.parent / "shared" / "data"))


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
