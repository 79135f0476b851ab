"""CUDA kernel of the ``lut`` backend (``numba.cuda``), for ``LutFuser(..., device="cuda")``.

The same baked table (:func:`rtfuse.fusion.bake.bake`: Y expanded to its 256 integers, IR at its
native nodes, uint16 Q8.8) and the same per-pixel rules as :mod:`rtfuse.fusion.kernels`: fixed-point
BT.601 luma, context sampled bilinearly (PyTorch ``align_corners=False``), the Sobel or max-detail
second axis with replicate borders, ``out = clip(BGR + round(Y') - Y)``. One thread per pixel; the
context map (1/8 resolution) is computed on the CPU and copied over with the frame.

Imported only when a CUDA fuser is asked for. ``NUMBA_ENABLE_CUDASIM=1`` runs it on Numba's CUDA
simulator (tests/test_kernels.py checks it against the CPU kernel that way).
"""

from __future__ import annotations

import numpy as np
from numba import cuda, int32

from rtfuse.fusion.kernels import axis_coords

_BLOCK = (32, 8)  # threads per block (x, y): a warp reads 32 consecutive pixels of a row

MODE_3D, MODE_GRAD, MODE_DETAIL = 0, 1, 2


def available() -> bool:
    """Whether Numba sees a CUDA device (or runs the simulator)."""
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver install reads as "no device"
        return False


@cuda.jit(device=True)
def _luma(vis, y, x):
    b = int32(vis[y, x, 0])
    g = int32(vis[y, x, 1])
    r = int32(vis[y, x, 2])
    return (3735 * b + 19235 * g + 9798 * r + 16384) >> 15


@cuda.jit(device=True)
def _max_at(vis, ir, y, x):
    return max(_luma(vis, y, x), int32(ir[y, x]))


@cuda.jit
def _fuse(vis, ir, ctx, table, cy0, cy1, cwy, cx0, cx1, cwx, params, mode, out):
    """One pixel. ``table`` (256, Ni, Ng, Nc) uint16 (Ng = 1 for 3-D); ``params`` float32: the
    grid position of IR value v is ``v * params[0] + params[1]``, of the second axis' raw
    neighbourhood value d (4 x detail or 8 x gradient) ``d * params[2] + params[3]``."""
    x, y = cuda.grid(2)
    h, w = ir.shape
    if y >= h or x >= w:
        return
    ni, ng, nc = table.shape[1], table.shape[2], table.shape[3]
    lum = _luma(vis, y, x)
    # Context: rows first, then columns, in float32, as kernels._context_row.
    wy = cwy[y]
    r0, r1 = cy0[y], cy1[y]
    a0 = ctx[r0, cx0[x]]
    a = a0 + (ctx[r1, cx0[x]] - a0) * wy
    b0 = ctx[r0, cx1[x]]
    b = b0 + (ctx[r1, cx1[x]] - b0) * wy
    p = (a + (b - a) * cwx[x]) * np.float32(nc - 1)
    k = min(int32(p), nc - 2)
    wk = p - np.float32(k)
    pi = min(max(np.float32(ir[y, x]) * params[0] + params[1], np.float32(0.0)), np.float32(ni - 1))
    i0 = min(int32(pi), ni - 2)
    wi = pi - np.float32(i0)
    j = 0
    wj = np.float32(0.0)
    if mode != MODE_3D:
        yu, yd = max(y - 1, 0), min(y + 1, h - 1)
        xl, xr = max(x - 1, 0), min(x + 1, w - 1)
        if mode == MODE_DETAIL:
            d = 4 * _max_at(vis, ir, y, x) - (
                _max_at(vis, ir, yu, x)
                + _max_at(vis, ir, yd, x)
                + _max_at(vis, ir, y, xl)
                + _max_at(vis, ir, y, xr)
            )
            gp = min(max(np.float32(d) * params[2] + params[3], np.float32(0.0)), np.float32(ng - 1))
        else:
            ul, uc, ur = _luma(vis, yu, xl), _luma(vis, yu, x), _luma(vis, yu, xr)
            ml, mr = _luma(vis, y, xl), _luma(vis, y, xr)
            dl, dc, dr = _luma(vis, yd, xl), _luma(vis, yd, x), _luma(vis, yd, xr)
            gx = (ur + 2 * mr + dr) - (ul + 2 * ml + dl)
            gy = (dl + 2 * dc + dr) - (ul + 2 * uc + ur)
            gp = min(np.float32(abs(gx) + abs(gy)) * params[2], np.float32(ng - 1))
        j = min(int32(gp), ng - 2)
        wj = gp - np.float32(j)
    v = np.float32(0.0)
    for di in range(2):
        s = np.float32(0.0)
        for dj in range(2 if mode != MODE_3D else 1):
            t0 = np.float32(table[lum, i0 + di, j + dj, k])
            t = t0 + (np.float32(table[lum, i0 + di, j + dj, k + 1]) - t0) * wk
            s = t if dj == 0 else s + (t - s) * wj
        v = s if di == 0 else v + (s - v) * wi
    dy = int32(v * np.float32(1.0 / 256.0) + np.float32(0.5)) - lum
    for c in range(3):
        out[y, x, c] = min(max(int32(vis[y, x, c]) + dy, 0), 255)


class CudaLutKernel:
    """The baked table on the device and a launcher: ``kernel(vis, ir, ctx, out)``, arrays on the host.

    ``table`` as from :func:`rtfuse.fusion.bake.bake` (3-D or 4-D); ``ir_grid`` (scale, lo);
    ``axis`` (scale, lo, detail) of the second axis for 4-D, None for 3-D.
    """

    def __init__(self, table: np.ndarray, ir_grid: tuple[float, float], axis: tuple | None) -> None:
        if not available():
            raise RuntimeError(
                "device='cuda' needs a CUDA device and Numba sees none (numba.cuda.is_available())"
            )
        t4 = table[:, :, None, :] if table.ndim == 3 else table
        self.mode = MODE_3D if axis is None else (MODE_DETAIL if axis[2] else MODE_GRAD)
        # The CPU kernels' float32 constants, so that both compute the same positions.
        scale, lo = (0.0, 0.0) if axis is None else (axis[0], axis[1])
        gs = scale / (4.0 if self.mode == MODE_DETAIL else 8.0)
        params = [ir_grid[0], -ir_grid[1] * ir_grid[0], gs, -lo * scale]
        self.params = cuda.to_device(np.array(params, np.float32))
        self.table = cuda.to_device(np.ascontiguousarray(t4))
        self._coords: dict[tuple[int, int, int, int], tuple] = {}

    def _axes(self, h: int, w: int, hc: int, wc: int) -> tuple:
        key = (h, w, hc, wc)
        if key not in self._coords:  # per frame geometry, once
            self._coords[key] = tuple(cuda.to_device(a) for a in (*axis_coords(h, hc), *axis_coords(w, wc)))
        return self._coords[key]

    def __call__(self, vis: np.ndarray, ir: np.ndarray, ctx: np.ndarray, out: np.ndarray) -> None:
        h, w = ir.shape
        coords = self._axes(h, w, *ctx.shape)
        d_out = cuda.device_array((h, w, 3), np.uint8)
        grid = ((w + _BLOCK[0] - 1) // _BLOCK[0], (h + _BLOCK[1] - 1) // _BLOCK[1])
        _fuse[grid, _BLOCK](
            cuda.to_device(vis),
            cuda.to_device(ir),
            cuda.to_device(np.ascontiguousarray(ctx)),
            self.table,
            *coords,
            self.params,
            self.mode,
            d_out,
        )
        d_out.copy_to_host(out)
