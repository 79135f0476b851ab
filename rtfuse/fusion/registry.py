"""``load_fuser``: one entry point for every fusion backend."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from rtfuse.errors import InputError

Fuser = Callable[[np.ndarray, np.ndarray], np.ndarray]

# The shipped tables are package data in rtfuse/weights/, so a wheel or sdist install finds them as well as
# a checkout does. A regular (not zipped) install has them on disk, which LutFuser and torch.load need.
# RTFUSE_WEIGHTS points at another folder with the same file names.
WEIGHTS_DIR = Path(os.environ.get("RTFUSE_WEIGHTS") or str(resources.files("rtfuse") / "weights"))
SHIPPED_LUTS = {  # distilled from the teachers (weights/MODEL_CARD.md); *_untrained.npz: analytic start
    "lut": "lut4d_detail.npz",
    "lut3d": "lut3d.npz",
    "lut4d": "lut4d.npz",
    "lut4d-detail": "lut4d_detail.npz",
}
SHIPPED_NETS = {"student": "student.pt"}  # the teacher is not shipped (12 MB): pass path=
BACKENDS = (*SHIPPED_LUTS, "blend", "student", "teacher")


def load_fuser(backend: str = "lut", path: str | os.PathLike | None = None, **options) -> Fuser:
    """Return a fuser ``f(vis_bgr, ir) -> fused_bgr`` for ``backend``.

    ``vis_bgr`` is uint8 (H, W, 3) BGR, ``ir`` uint8 (H, W); the result is uint8 (H, W, 3) BGR.
    Backends: ``lut`` (the shipped default LUT), ``lut3d``, ``lut4d``, ``lut4d-detail``, ``blend`` (option
    ``alpha``), ``student`` and ``teacher`` (PyTorch networks, CUDA when available; option
    ``device``; the teacher also takes ``prompt``, a sentence describing the input's degradations,
    which needs the train extra). ``path`` loads another ``.npz`` LUT or ``.pt`` checkpoint instead of the shipped
    one (the teacher is not shipped and needs it). Contract violations raise ``ValueError``; the
    lut backends never import torch.
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
    if backend in ("student", "teacher"):
        try:
            from rtfuse.fusion.net import NetFuser
        except ModuleNotFoundError as e:
            raise InputError(
                f"the {backend} backend needs PyTorch: pip install 'rtfuse[torch]' ({e})"
            ) from None
        if path is None:
            if backend == "teacher":
                raise InputError(
                    "the teacher is not shipped: pass the teacher checkpoint you trained "
                    "(e.g. runs/teacher/teacher.pt, from `rtfuse train teacher`) as the weights"
                )
            path = WEIGHTS_DIR / SHIPPED_NETS[backend]
        allowed = {"device", "prompt"} if backend == "teacher" else {"device"}
        unknown = set(options) - allowed
        if unknown:
            raise InputError(
                f"backend {backend!r} takes only the options {sorted(allowed)}, got {sorted(unknown)}"
            )
        return NetFuser(path, name=backend, **options)
    raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
