"""Analytic starting LUTs: usable before any training, and labelled *untrained*.

Rule: keep the visible luma and bring in IR where it is brighter (hot targets),
``Y' = Y + max(IR - Y, 0) * (0.2 + 0.8 c) [* (1 - 0.5 g)]``, where the context ``c`` rises where
the IR is locally brighter and more structured than the visible, and the normalised visible
gradient ``g`` (4-D only) keeps visible edges; the ``4d-detail`` table instead adds half the
per-pixel max's signed detail (mild unsharp masking). These are hand-set, not fitted to anything.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from rtfuse.fusion.lutfile import AXES_3D, AXES_4D, AXES_4D_DETAIL, CONTEXT_INPUTS, KINDS, LutModel

GRAD_HI = 64.0  # L1-Sobel/8 units: a 100-level step edge gives 50
DETAIL_HI = 32.0  # max_detail in levels: a 100-level step edge gives +-25 beside it


def analytic_context(hidden: tuple[int, int] = (4, 8)) -> list[tuple[np.ndarray, np.ndarray]]:
    """Context layers (3x3 4->4, 1x1 4->8, 3x3 8->1) computing sigmoid(8 lrelu(mIR - mY) + 4 sIR - 2).

    The shape is the default context net: sized so that the context costs at most about a fifth
    of a frame's fusion time (see benchmarks/RESULTS.md), with a 5x5-cell receptive field.
    """
    h0, h1 = hidden
    w0 = np.zeros((h0, CONTEXT_INPUTS, 3, 3), np.float32)
    w0[0, 1, 1, 1], w0[0, 0, 1, 1] = 1.0, -1.0  # mIR - mY
    w0[1, 3, 1, 1] = 1.0  # sIR (>= 0, passes LeakyReLU unchanged)
    w1 = np.zeros((h1, h0, 1, 1), np.float32)
    w1[0, 0], w1[1, 1] = 1.0, 1.0
    w2 = np.zeros((1, h1, 3, 3), np.float32)
    w2[0, 0, 1, 1], w2[0, 1, 1, 1] = 8.0, 4.0
    return [
        (w0, np.zeros(h0, np.float32)),
        (w1, np.zeros(h1, np.float32)),
        (w2, np.array([-2.0], np.float32)),
    ]


def analytic_lut(
    kind: str = "3d", n_lum: int = 17, n_ctx: int = 8, n_grad: int = 8, stride: int = 8, n_detail: int = 9
) -> LutModel:
    """An untrained LUT of the given kind (``"3d"``, ``"4d"`` or ``"4d-detail"``) with ``n_lum`` nodes on Y and IR.

    ``n_detail`` is odd so that a node sits at zero detail.
    """
    y = np.linspace(0.0, 1.0, n_lum)
    c = np.linspace(0.0, 1.0, n_ctx)
    if kind == "3d":
        yy, ii, cc = np.meshgrid(y, y, c, indexing="ij")
        table = yy + np.maximum(ii - yy, 0.0) * (0.2 + 0.8 * cc)
        axes, ranges = AXES_3D, [[0, 255], [0, 255], [0, 1]]
    elif kind == "4d":
        g = np.linspace(0.0, 1.0, n_grad)
        yy, gg, cc, ii = np.meshgrid(y, g, c, y, indexing="ij")
        table = yy + np.maximum(ii - yy, 0.0) * (0.2 + 0.8 * cc) * (1.0 - 0.5 * gg)
        axes, ranges = AXES_4D, [[0, 255], [0, GRAD_HI], [0, 1], [0, 255]]
    elif kind == "4d-detail":
        d = np.linspace(-DETAIL_HI, DETAIL_HI, n_detail) / 255.0
        yy, dd, cc, ii = np.meshgrid(y, d, c, y, indexing="ij")
        base = yy + np.maximum(ii - yy, 0.0) * (0.2 + 0.8 * cc)
        table = np.clip(base + 0.5 * dd, 0.0, 1.0)  # mild unsharp masking of the per-pixel max's detail
        axes, ranges = AXES_4D_DETAIL, [[0, 255], [-DETAIL_HI, DETAIL_HI], [0, 1], [0, 255]]
    else:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    meta = {
        "untrained": True,
        "method": "analytic initial LUT (rtfuse.fusion.initial), not fitted to any data",
        "created": _dt.date.today().isoformat(),
    }
    return LutModel(
        table.astype(np.float32), axes, np.array(ranges, np.float32), stride, analytic_context(), meta
    )
