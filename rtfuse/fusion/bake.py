"""Expand a LUT's (visible Y, IR) axes to every integer input, ready for the Numba kernels.

Y and IR are integers 0..255, so evaluating the multilinear interpolation once for all 256
values of each axis is exact; per frame only the context (and gradient) axes are left to
interpolate. The result is ``uint16`` Q8.8 (fused luma * 256), at most 1/512 of a level off.
"""

from __future__ import annotations

import numpy as np

from rtfuse.fusion.lutfile import LutModel


def interp_matrix(n_nodes: int, lo: float, hi: float) -> np.ndarray:
    """(256, n_nodes) float64 weights of linear interpolation at inputs 0..255 on a grid over [lo, hi]."""
    pos = np.clip((np.arange(256, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0) * (n_nodes - 1)
    i0 = np.minimum(pos.astype(np.int64), n_nodes - 2)
    w = pos - i0
    m = np.zeros((256, n_nodes))
    rows = np.arange(256)
    m[rows, i0] = 1.0 - w
    m[rows, i0 + 1] += w
    return m


def bake(model: LutModel) -> np.ndarray:
    """Baked table: uint16 (256, 256, Nc) for 3-D, (256, 256, Ng, Nc) for 4-D, indexed [Y, IR, ...]."""
    ay = interp_matrix(model.table.shape[model.axes.index("vis_y")], *model.axis_range("vis_y"))
    ai = interp_matrix(model.table.shape[model.axes.index("ir")], *model.axis_range("ir"))
    t = model.table.astype(np.float64)
    if model.kind == "3d":
        dense = np.einsum("yn,im,nmc->yic", ay, ai, t, optimize=True)
    else:
        dense = np.einsum("yn,im,ngcm->yigc", ay, ai, t, optimize=True)
    q = np.rint(np.clip(dense, 0.0, 1.0) * (255.0 * 256.0))
    return np.ascontiguousarray(q.astype(np.uint16))
