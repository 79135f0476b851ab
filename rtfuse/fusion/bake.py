"""Expand a LUT's visible-Y axis to every integer input, ready for the Numba kernels.

Y is an integer 0..255, so evaluating the linear interpolation along Y once for all 256 values
is exact; the IR axis stays at its native nodes (17 in the shipped tables), and per frame the
kernels interpolate IR, context (and the gradient/detail axis) per pixel. Baking Y alone keeps
the table small enough for a core's L2 cache (the 4-D default: 256 x 17 x 9 x 8 uint16 = 627 KB,
where baking both Y and IR gave 9.4 MB), so the time per frame does not depend on how many
different (Y, IR) cells a frame touches. Values are ``uint16`` Q8.8 (fused luma * 256), at most
1/512 of a level off.
"""

from __future__ import annotations

import sys

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
    """Baked table, C-contiguous uint16 Q8.8, indexed [Y 0..255, IR node, (second-axis node,) context node].

    Shape (256, Ni, Nc) for 3-D, (256, Ni, Ng, Nc) for 4-D; the context axis is innermost so the
    two context neighbours a pixel reads are adjacent.
    """
    ay = interp_matrix(model.table.shape[model.axes.index("vis_y")], *model.axis_range("vis_y"))
    t = model.table.astype(np.float64)
    if model.kind == "3d":  # native axes (vis_y, ir, context)
        dense = np.einsum("yn,nic->yic", ay, t, optimize=True)
    else:  # native axes (vis_y, second, context, ir)
        dense = np.einsum("yn,ngci->yigc", ay, t, optimize=True)
    q = np.rint(np.clip(dense, 0.0, 1.0) * (255.0 * 256.0))
    return np.ascontiguousarray(q.astype(np.uint16))


def ir_grid(model: LutModel) -> tuple[float, float]:
    """``(ir_scale, ir_lo)``: the kernels place IR value ``v`` at grid position ``(v - lo) * scale``, clipped."""
    lo, hi = model.axis_range("ir")
    return (model.table.shape[model.axes.index("ir")] - 1) / (hi - lo), lo


def pair_view(table: np.ndarray) -> np.ndarray:
    """A uint32 view of a C-contiguous uint16 ``table`` in which element ``i`` packs ``flat[i]``
    (low 16 bits) and ``flat[i + 1]`` (high): one load reads two neighbouring context nodes.

    Shape (table.size - 1,), stride 2 bytes (unaligned loads, fine on x86-64 and ARM64); it shares
    the table's memory, so the table stays the size it is. Little-endian machines only.
    """
    if sys.byteorder != "little":
        raise RuntimeError("the packed table reads need a little-endian machine")
    if table.dtype != np.uint16 or not table.flags.c_contiguous:
        raise ValueError("pair_view needs a C-contiguous uint16 table")
    return np.ndarray((table.size - 1,), np.uint32, buffer=table, strides=(2,))
