"""Differentiable PyTorch twin of the LUT fuser, for training (needs the ``torch`` extra).

Functional ops first, a thin :class:`LutFusion` module on top (kornia style). The math is that of
:mod:`rtfuse.fusion.kernels`, written independently: the twin interpolates the *native* table
multilinearly with explicit corner gathers, where the Numba path reads a baked table. Gradients
flow to the table and to the context net; the image inputs are integers and get none.

Tensor layout: ``vis`` (B, 3, H, W) BGR and ``ir`` (B, 1, H, W), values 0..255 (any dtype holding
integers). Outputs are float32 in 0..255.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ModuleNotFoundError as e:  # the lut runtime never gets here; training does
    raise ModuleNotFoundError(
        "this part of rtfuse needs PyTorch: pip install 'rtfuse[torch]' (pins torch==2.13.0)"
    ) from e

from rtfuse.color import luma_fixed_nchw, replace_luma_nchw
from rtfuse.fusion.lutfile import LutModel, kind_of

luma = luma_fixed_nchw  # BGR (B, 3, H, W) 0..255 -> int32 (B, 1, H, W), the kernels' fixed-point luma


def context_stats(y: torch.Tensor, ir: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, 4, ceil(H/s), ceil(W/s)) float32: mean Y/255, mean IR/255, std Y/127.5, std IR/127.5.

    Estimated from the even rows and columns of each block, as the kernel; partial edge blocks
    average over the samples they have. Computed in float64 (no gradient).
    """
    x = torch.cat([y, ir], 1)[..., ::2, ::2].to(torch.float64)
    s = stride // 2
    h, w = x.shape[-2:]
    pad = (0, (-w) % s, 0, (-h) % s)
    sums = F.avg_pool2d(F.pad(torch.cat([x, x * x], 1), pad), s, divisor_override=1)
    count = F.avg_pool2d(F.pad(torch.ones_like(x[:1, :1]), pad), s, divisor_override=1)
    mean = sums[:, :2] / count
    std = torch.sqrt(torch.clamp(sums[:, 2:] / count - mean * mean, min=0.0))
    return torch.cat([mean / 255.0, std / 127.5], 1).to(torch.float32)


def context_net(stats: torch.Tensor, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Replicate-padded convs, LeakyReLU(0.1) between, sigmoid last: (B, 4, h, w) -> (B, 1, h, w)."""
    x = stats
    for i, (w, b) in enumerate(layers):
        r = w.shape[-1] // 2
        x = F.conv2d(F.pad(x, (r, r, r, r), mode="replicate") if r else x, w, b)
        x = torch.sigmoid(x) if i == len(layers) - 1 else F.leaky_relu(x, 0.1)
    return x


def sobel_l1(y: torch.Tensor) -> torch.Tensor:
    """(|Gx| + |Gy|) / 8 of luma (B, 1, H, W) with replicate border; range 0..255."""
    k = torch.tensor(
        [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float32, device=y.device
    )
    yp = F.pad(y.to(torch.float32), (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(yp, k.view(1, 1, 3, 3))
    gy = F.conv2d(yp, k.t().contiguous().view(1, 1, 3, 3))
    return (gx.abs() + gy.abs()) / 8.0


def max_detail(y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """Signed detail of M = max(Y, IR): M minus the mean of its 4 neighbours (replicate border).

    ``y``, ``ir`` integer (B, 1, H, W); float32 (B, 1, H, W) in levels, exact (quarters).
    """
    m = torch.maximum(y, ir).to(torch.float32)
    p = F.pad(m, (1, 1, 1, 1), mode="replicate")
    return m - 0.25 * (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:])


def _grid_pos(v: torch.Tensor, lo: float, hi: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower node index and weight of value ``v`` on an ``n``-node grid over [lo, hi] (clipped)."""
    p = torch.clamp((v.to(torch.float32) - lo) / (hi - lo), 0.0, 1.0) * (n - 1)
    i0 = torch.clamp(p.detach().floor().to(torch.int64), max=n - 2)
    return i0, p - i0.to(p.dtype)


def _gather_lerp(cells: torch.Tensor, cell_idx: torch.Tensor, coords) -> torch.Tensor:
    """Multilinear interpolation over the trailing axes of ``cells`` (N, *rest) at row ``cell_idx``."""
    rest = cells.shape[1:]
    strides = [1] * len(rest)
    for d in range(len(rest) - 2, -1, -1):
        strides[d] = strides[d + 1] * rest[d + 1]
    flat = cells.reshape(-1)
    row = cell_idx * int(np.prod(rest))
    out = torch.zeros_like(coords[0][1])
    for corner in range(1 << len(rest)):
        idx = row
        wgt = torch.ones_like(out)
        for d, (i0, w) in enumerate(coords):
            bit = (corner >> d) & 1
            idx = idx + (i0 + bit) * strides[d]
            wgt = wgt * (w if bit else 1.0 - w)
        out = out + wgt * flat[idx]
    return out


def multilinear(table: torch.Tensor, coords: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Interpolate ``table`` (D dims) at per-axis (index, weight) pairs of equal shape."""
    return _gather_lerp(table[None], torch.zeros_like(coords[0][0]), coords)


def bake_dense(table: torch.Tensor, axes: tuple[str, ...], ranges: list[tuple[float, float]]) -> torch.Tensor:
    """Differentiable bake: (256, 256, [Ng,] Nc) values at every integer (Y, IR) (the kernels bake Y only).

    Exact (Y and IR are integers), so :func:`fuse` with ``dense=True`` computes the same function
    as the multilinear path with 2 (3-D) or 4 (4-D) reads per pixel instead of 8 or 16.
    """
    from rtfuse.fusion.bake import interp_matrix

    iy, ii = axes.index("vis_y"), axes.index("ir")
    ay = torch.from_numpy(interp_matrix(table.shape[iy], *ranges[iy])).to(table)
    ai = torch.from_numpy(interp_matrix(table.shape[ii], *ranges[ii])).to(table)
    if len(axes) == 3:
        return torch.einsum("yn,im,nmc->yic", ay, ai, table)
    return torch.einsum("yn,im,ngcm->yigc", ay, ai, table)


def fuse(
    vis: torch.Tensor,
    ir: torch.Tensor,
    table: torch.Tensor,
    axes: tuple[str, ...],
    ranges: list[tuple[float, float]],
    ctx_layers: list[tuple[torch.Tensor, torch.Tensor]],
    ctx_stride: int,
    dense: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fuse a batch. Returns (BGR float (B, 3, H, W) in 0..255, fused luma float (B, 1, H, W) in 0..255).

    The BGR output is ``clip(vis + Y' - Y)``, not rounded; the Numba kernel rounds ``Y'``.
    ``dense`` reads a differentiably baked table (fast, for training) instead of interpolating
    the native table over all axes; both compute the same values.
    """
    y = luma(vis)
    ir_i = ir.to(torch.int32)
    ctx = context_net(context_stats(y, ir_i, ctx_stride), ctx_layers)
    ctx = F.interpolate(ctx, size=y.shape[-2:], mode="bilinear", align_corners=False)
    values = {"vis_y": y, "ir": ir_i, "context": ctx}
    if "vis_grad" in axes:
        values["vis_grad"] = sobel_l1(y)
    if "max_detail" in axes:
        values["max_detail"] = max_detail(y, ir_i)
    if dense:
        rest = [a for a in axes if a not in ("vis_y", "ir")]  # (context) or (vis_grad | max_detail, context)
        rest = sorted(rest, key=lambda a: ("vis_grad", "max_detail", "context").index(a))
        dense_t = bake_dense(table, axes, ranges)
        base = (y.long() * 256 + ir_i.long())[..., None]  # flat (Y, IR) cell, trailing axes follow
        coords = [_grid_pos(values[a], *ranges[axes.index(a)], table.shape[axes.index(a)]) for a in rest]
        cell = dense_t.reshape(256 * 256, *dense_t.shape[2:])
        y_new = _gather_lerp(cell, base[..., 0], coords) * 255.0
    else:
        coords = [_grid_pos(values[a], lo, hi, n) for a, (lo, hi), n in zip(axes, ranges, table.shape)]
        y_new = multilinear(table, coords) * 255.0
    bgr = replace_luma_nchw(vis.to(torch.float32), y.to(torch.float32), y_new, 255.0)
    return bgr, y_new


class LutFusion(nn.Module):
    """Trainable LUT + context net; ``forward(vis, ir) -> (bgr, fused_luma)`` as :func:`fuse`."""

    def __init__(self, model: LutModel) -> None:
        super().__init__()
        self.axes = model.axes
        self.ranges = [tuple(map(float, r)) for r in model.ranges]
        self.ctx_stride = int(model.ctx_stride)
        self.meta = dict(model.meta)
        self.table = nn.Parameter(torch.from_numpy(model.table.copy()))
        self.ctx_w = nn.ParameterList([nn.Parameter(torch.from_numpy(w.copy())) for w, _ in model.ctx_layers])
        self.ctx_b = nn.ParameterList([nn.Parameter(torch.from_numpy(b.copy())) for _, b in model.ctx_layers])

    @property
    def kind(self) -> str:
        return kind_of(self.axes)

    def forward(
        self, vis: torch.Tensor, ir: torch.Tensor, dense: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        layers = list(zip(self.ctx_w, self.ctx_b))
        return fuse(vis, ir, self.table, self.axes, self.ranges, layers, self.ctx_stride, dense)

    def to_model(self, **meta) -> LutModel:
        """Export to the ``.npz``-ready :class:`LutModel` (table clipped to [0, 1])."""
        return LutModel(
            table=self.table.detach().clamp(0.0, 1.0).cpu().numpy(),
            axes=self.axes,
            ranges=self.ranges,
            ctx_stride=self.ctx_stride,
            ctx_layers=[
                (w.detach().cpu().numpy(), b.detach().cpu().numpy()) for w, b in zip(self.ctx_w, self.ctx_b)
            ],
            meta={**self.meta, **meta},
        )
