"""``load_fuser``: one entry point for every fusion backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from rtfuse.errors import InputError

Fuser = Callable[[np.ndarray, np.ndarray], np.ndarray]

# The shipped tables live in the repository's weights/ (RTFUSE_WEIGHTS overrides).
WEIGHTS_DIR = Path(os.environ.get("RTFUSE_WEIGHTS", Path(__file__).resolve().parents[2] / "weights"))
SHIPPED_LUTS = {
    "lut": "lut3d_untrained.npz",
    "lut3d": "lut3d_untrained.npz",
    "lut4d": "lut4d_untrained.npz",
}
BACKENDS = (*SHIPPED_LUTS, "blend")


def load_fuser(backend: str = "lut", path: str | os.PathLike | None = None, **options) -> Fuser:
    """Return a fuser ``f(vis_bgr, ir) -> fused_bgr`` for ``backend``.

    ``vis_bgr`` is uint8 (H, W, 3) BGR, ``ir`` uint8 (H, W); the result is uint8 (H, W, 3) BGR.
    Backends: ``lut`` (the shipped default LUT), ``lut3d``, ``lut4d``, ``blend`` (option
    ``alpha``). For the LUT backends ``path`` loads another ``.npz`` LUT instead of the shipped one.
    Contract violations raise ``ValueError``; the lut backend never imports torch.
    """
    if backend in SHIPPED_LUTS:
        from rtfuse.fusion.lut import LutFuser

        if options:
            raise InputError(f"backend {backend!r} takes no options, got {sorted(options)}")
        file = Path(path) if path is not None else WEIGHTS_DIR / SHIPPED_LUTS[backend]
        return LutFuser.from_file(file, name=backend)
    if backend == "blend":
        from rtfuse.fusion.blend import BlendFuser

        if path is not None:
            raise InputError("the blend backend takes no weights file")
        return BlendFuser(**options)
    raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
