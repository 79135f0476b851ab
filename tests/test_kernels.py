"""Numba kernels against independent numpy references and invariants."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO, random_pair, real_pairs
from rtfuse.fusion import kernels
from rtfuse.fusion.bake import bake, ir_grid, pair_view
from rtfuse.fusion.initial import analytic_lut
from rtfuse.fusion.lut import LutFuser
from rtfuse.fusion.lutfile import load_lut
from rtfuse.fusion.registry import WEIGHTS_DIR

OFF = (kernels.NO_STATE, 0, kernels.NO_STEADY)  # the kernels' temporal filter off


def _luma_of(vis):
    """The kernels' luma, read back through a LUT whose output is its IR input (= pass-through)."""
    m = analytic_lut("3d", n_lum=256)
    m.table[:] = np.linspace(0, 1, 256, dtype=np.float32)[:, None, None]  # Y' = Y
    m2 = analytic_lut("3d", n_lum=256)
    m2.table[:] = 128 / 255  # Y' = 128: out = vis + 128 - Y, so Y = vis + 128 - out (no clipping here)
    out = np.empty_like(vis)
    ir, ctx = np.zeros(vis.shape[:2], np.uint8), np.zeros((2, 2), np.float32)
    t, t2 = bake(m), bake(m2)
    kernels.fuse_lut3d(vis, ir, ctx, t, pair_view(t), *ir_grid(m), out, *OFF)
    assert np.array_equal(out, vis)  # identity LUT leaves the image untouched
    kernels.fuse_lut3d(vis, ir, ctx, t2, pair_view(t2), *ir_grid(m2), out, *OFF)
    return vis.astype(int) + 128 - out


def test_luma_is_bt601():
    # Gray-ish colours so that vis - Y never clips and the luma can be read back exactly.
    b, g, r = np.meshgrid(
        np.arange(100, 200, 3), np.arange(100, 200, 3), np.arange(100, 200, 3), indexing="ij"
    )
    vis = np.stack([b, g, r], -1).reshape(-1, 34, 3).astype(np.uint8)
    y = _luma_of(vis)
    assert np.all(y == y[..., :1])
    ref = vis[..., 0] * 0.114 + vis[..., 1] * 0.587 + vis[..., 2] * 0.299
    assert np.abs(y[..., 0] - ref).max() <= 0.5 + 1e-3
    if int(cv2.__version__.split(".")[0]) >= 5:
        assert np.array_equal(y[..., 0], cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
def test_ir_table_puts_ir_into_luma_and_keeps_chroma(rng, kind):
    """A table returning IR: the output's luma is the IR and B-G, R-G (chroma) are the visible's."""
    m = analytic_lut(kind)
    ir_axis = m.axes.index("ir")
    shape = [1] * m.table.ndim
    shape[ir_axis] = m.table.shape[ir_axis]
    m.table[:] = np.linspace(0, 1, m.table.shape[ir_axis], dtype=np.float32).reshape(shape)
    vis = rng.integers(100, 161, (90, 70, 3), dtype=np.uint8)  # mid-range: vis + IR - Y never clips
    ir = rng.integers(110, 151, (90, 70), dtype=np.uint8)
    out = LutFuser(m)(vis, ir)
    y_out = out @ np.array([0.114, 0.587, 0.299])
    assert np.abs(y_out - ir).max() <= 1
    d_out = out.astype(int) - out[..., 1:2]
    d_vis = vis.astype(int) - vis[..., 1:2]
    assert np.array_equal(d_out, d_vis)


def test_detail_table_is_unsharp_masking_of_the_max():
    """A 4d-detail table F = Y + d (d: signed detail of M = max(Y, IR)) gives 2 M - mean of 4 neighbours
    where the visible is brighter. F is linear in Y and d, so interpolation on the grid is exact."""
    m = analytic_lut("4d-detail")
    n_y, n_d = m.table.shape[:2]
    lo, hi = m.axis_range("max_detail")
    y = np.linspace(0, 1, n_y, dtype=np.float32)[:, None, None, None]
    d = np.linspace(lo, hi, n_d, dtype=np.float32)[None, :, None, None] / 255
    m.table[:] = y + d  # the same for every context and IR node
    vis = np.full((40, 50, 3), 100, np.uint8)
    vis[:, 25:] = 120  # a vertical step edge in the visible; the IR is darker everywhere, so M = Y
    ir = np.full((40, 50), 30, np.uint8)
    out = LutFuser(m)(vis, ir)[..., 1].astype(int)  # gray input: the G channel is the fused luma
    assert out[20, 24] == 2 * 100 - (3 * 100 + 120) // 4 and out[20, 25] == 2 * 120 - (3 * 120 + 100) // 4
    assert (out[:, :24] == 100).all() and (out[:, 26:] == 120).all()  # flat areas unchanged


def test_context_stats_match_numpy(rng):
    h, w, s = 45, 70, 8
    vis, ir = random_pair(rng, h, w)
    y = np.floor(vis @ np.array([3735, 19235, 9798]) / 32768 + 0.5)
    padded = kernels.context_stats(vis, ir, s)
    assert padded.shape == (4, 8, 11)
    np.testing.assert_array_equal(
        padded, np.pad(padded[:, 1:-1, 1:-1], ((0, 0), (1, 1), (1, 1)), mode="edge")
    )
    got = padded[:, 1:-1, 1:-1]
    for by in range(6):
        for bx in range(9):
            blk_y = y[by * s : (by + 1) * s : 2, bx * s : (bx + 1) * s : 2]
            blk_i = ir[by * s : (by + 1) * s : 2, bx * s : (bx + 1) * s : 2].astype(np.float64)
            ref = [blk_y.mean() / 255, blk_i.mean() / 255, blk_y.std() / 127.5, blk_i.std() / 127.5]
            np.testing.assert_allclose(got[:, by, bx], ref, atol=1e-5)


def test_conv_matches_numpy_reference(rng):
    x = rng.standard_normal((3, 11, 13)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    ref = np.zeros((5, 11, 13))
    for ky in range(3):
        for kx in range(3):
            ref += np.einsum("oc,chw->ohw", w[:, :, ky, kx], xp[:, ky : ky + 11, kx : kx + 13])
    ref += b[:, None, None]

    def conv(act):
        out = kernels.conv2d_replicate(xp, w, b, act)
        np.testing.assert_array_equal(out, np.pad(out[:, 1:-1, 1:-1], ((0, 0), (1, 1), (1, 1)), mode="edge"))
        return out[:, 1:-1, 1:-1]

    np.testing.assert_allclose(conv(0), ref, atol=1e-4)
    np.testing.assert_allclose(conv(1), np.where(ref < 0, 0.1 * ref, ref), atol=1e-4)
    np.testing.assert_allclose(conv(2), 1 / (1 + np.exp(-ref)), atol=1e-5)
    w1 = rng.standard_normal((4, 3, 1, 1)).astype(np.float32)
    out1 = kernels.conv2d_replicate(xp, w1, b[:4], 0)[:, 1:-1, 1:-1]
    np.testing.assert_allclose(
        out1, np.einsum("oc,chw->ohw", w1[:, :, 0, 0], x) + b[:4, None, None], atol=1e-4
    )


def test_context_is_low_resolution_and_bounded(rng):
    f = LutFuser(analytic_lut("3d"))
    vis, ir = random_pair(rng, 481, 641)
    c = f.context(vis, ir)
    assert c.shape == (61, 81) and c.dtype == np.float32
    assert 0.0 <= c.min() and c.max() <= 1.0


@pytest.mark.parametrize("kind", ["3d", "4d-detail"])
def test_bake_keeps_ir_nodes_and_is_exact_between_y_nodes(kind):
    m = analytic_lut(kind)
    m.table = np.random.default_rng(0).random(m.table.shape, dtype=np.float32)
    t = bake(m)
    # [Y integer, IR node, (second node,) context node], as native (vis_y, ir, context) or (vis_y, g, c, ir).
    native = m.table if kind == "3d" else m.table.transpose(0, 3, 1, 2)
    assert t.shape == (256, *native.shape[1:]) and t.dtype == np.uint16 and t.flags.c_contiguous
    assert t.nbytes <= 1 << 20  # fits a core's L2 cache on the benchmark machine
    q = 1 / (255 * 256)  # the Q8.8 step, in [0, 1] units
    # Node n of a 17-node grid over 0..255 sits at input 255 n / 16; 0 and 255 are nodes.
    np.testing.assert_allclose(t[0] * q, native[0], atol=q)
    np.testing.assert_allclose(t[255] * q, native[16], atol=q)
    # Between Y nodes: explicit linear interpolation at an arbitrary integer input.
    y = 100
    py = y * 16 / 255
    y0 = int(py)
    ref = (1 - (py - y0)) * native[y0] + (py - y0) * native[y0 + 1]
    np.testing.assert_allclose(t[y] * q, ref, atol=q)
    assert ir_grid(m) == (16 / 255, 0.0)


def test_gradient_scale_is_fixed_not_per_frame(rng):
    """LUT-Fuse min-max normalises the gradient per frame, so an edge appearing anywhere changes
    every pixel. Ours uses a fixed scale: pixels far from a new edge stay identical."""
    f = LutFuser(analytic_lut("4d"))
    vis = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
    ir = cv2.GaussianBlur(rng.integers(0, 256, (240, 320), dtype=np.uint8), (0, 0), 3)
    a = f(vis, ir)
    vis2 = vis.copy()
    vis2[:40, :40] = 0
    vis2[:40, :20] = 255  # a very strong edge in one corner
    b = f(vis2, ir)
    assert not np.array_equal(a[:40, :40], b[:40, :40])
    # Beyond the context net's reach (a few 8-px cells), nothing changes.
    assert np.array_equal(a[100:, 100:], b[100:, 100:])


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
def test_real_pairs_fuse_sensibly(kind):
    """On real pairs the untrained LUT keeps the visible luma where IR is darker and brightens hot areas."""
    f = LutFuser(analytic_lut(kind))
    for _, vis, ir in real_pairs("msrs"):
        out = f(vis, ir)
        y_vis = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY).astype(int)
        y_out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(int)
        cold = ir.astype(int) < y_vis - 10
        hot = ir.astype(int) > y_vis + 60
        assert np.median(np.abs(y_out[cold] - y_vis[cold])) <= 2
        assert np.mean(y_out[hot] - y_vis[hot]) > 20


def test_pair_view_packs_neighbours_without_copying():
    t = bake(analytic_lut("4d-detail"))
    p = pair_view(t)
    flat = t.reshape(-1).astype(np.uint32)
    assert p.shape == (t.size - 1,) and np.shares_memory(p, t)
    np.testing.assert_array_equal(p, flat[:-1] | flat[1:] << 16)
    with pytest.raises(ValueError, match="C-contiguous uint16"):
        pair_view(t[:, ::2])


# --- The kernels against a float64 multilinear interpolation of the *raw* (unbaked) table ------------


def _grid(v, lo, hi, n):
    """Lower node and weight of values ``v`` on an ``n``-node grid over [lo, hi], clipped (float64)."""
    p = np.clip((np.asarray(v, np.float64) - lo) / (hi - lo), 0.0, 1.0) * (n - 1)
    i0 = np.minimum(np.floor(p).astype(np.int64), n - 2)
    return i0, p - i0


def _upsample(ctx, h, w):
    """Bilinear resize of the context map, PyTorch ``align_corners=False`` rule, in float64."""

    def axis(n_out, n_in):
        s = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), s - i0

    y0, y1, wy = axis(h, ctx.shape[0])
    x0, x1, wx = axis(w, ctx.shape[1])
    c = ctx.astype(np.float64)
    rows = c[y0] + (c[y1] - c[y0]) * wy[:, None]
    return rows[:, x0] + (rows[:, x1] - rows[:, x0]) * wx[None, :]


def _reference_fusion(m, vis, ir, ctx):
    """Fused BGR of the LUT ``m`` by the float64 multilinear interpolation of its raw table.

    The per-pixel axis values are computed here independently: fixed-point BT.601 luma, the
    Sobel or max-detail axis with replicate borders, the context map upsampled bilinearly.
    Returns (BGR uint8, exact fused luma float64 in levels).
    """
    b, g, r = (vis[..., c].astype(np.int64) for c in range(3))
    y = (3735 * b + 19235 * g + 9798 * r + 16384) >> 15
    values = {"vis_y": y, "ir": ir.astype(np.int64), "context": _upsample(ctx, *ir.shape)}
    if "max_detail" in m.axes:
        mp = np.pad(np.maximum(y, ir), 1, mode="edge").astype(np.float64)
        values["max_detail"] = mp[1:-1, 1:-1] - 0.25 * (
            mp[:-2, 1:-1] + mp[2:, 1:-1] + mp[1:-1, :-2] + mp[1:-1, 2:]
        )
    if "vis_grad" in m.axes:
        yp = np.pad(y, 1, mode="edge").astype(np.float64)
        gx = (yp[:-2, 2:] + 2 * yp[1:-1, 2:] + yp[2:, 2:]) - (yp[:-2, :-2] + 2 * yp[1:-1, :-2] + yp[2:, :-2])
        gy = (yp[2:, :-2] + 2 * yp[2:, 1:-1] + yp[2:, 2:]) - (yp[:-2, :-2] + 2 * yp[:-2, 1:-1] + yp[:-2, 2:])
        values["vis_grad"] = (np.abs(gx) + np.abs(gy)) / 8.0
    coords = [_grid(values[a], *m.axis_range(a), n) for a, n in zip(m.axes, m.table.shape)]
    t = m.table.astype(np.float64)
    fused = np.zeros(ir.shape)
    for corner in range(1 << t.ndim):
        idx, wgt = [], np.ones(ir.shape)
        for d, (i0, w) in enumerate(coords):
            bit = (corner >> d) & 1
            idx.append(i0 + bit)
            wgt = wgt * (w if bit else 1.0 - w)
        fused += wgt * t[tuple(idx)]
    fused *= 255.0
    out = np.clip(vis.astype(np.int64) + (np.floor(fused + 0.5).astype(np.int64) - y)[..., None], 0, 255)
    return out.astype(np.uint8), fused


def _kernel_fusion(m, vis, ir, ctx):
    """The Numba kernel of ``LutFuser(m)`` on a given context map (bypassing the context net)."""
    f = LutFuser(m)
    out = np.empty_like(vis)
    if m.kind == "3d":
        kernels.fuse_lut3d(vis, ir, ctx, f.table, f.pairs, *f.ir_grid, out, *OFF)
    else:
        kernels.fuse_lut4d(vis, ir, ctx, f.table, f.pairs, *f.ir_grid, *f.axis, out, *OFF)
    return out


def _hard_inputs(rng, h, w):
    """Random frames with the edge cases: flat and noisy halves (detail inside and clipped at both
    ends), Y and IR at exactly 0 and 255, and a context map with exact 0 and 1 regions."""
    vis = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    vis[: h // 2] = cv2.GaussianBlur(vis[: h // 2], (0, 0), 4)  # smooth: detail within range
    ir = rng.integers(0, 256, (h, w), dtype=np.uint8)
    ir[: h // 2] = cv2.GaussianBlur(ir[: h // 2], (0, 0), 4)
    vis[:, :6], vis[:, 6:12] = 0, 255  # Y = 0 and Y = 255 columns
    ir[:8], ir[8:16] = 0, 255  # IR = 0 and IR = 255 rows, crossing the Y edge columns
    ir[-4:, ::2] = 255  # a 0/255 checkerboard in the IR: detail far beyond both clip ends
    ir[-4:, 1::2] = 0
    ctx = rng.random((h // 8 + 1, w // 8 + 1)).astype(np.float32)
    ctx[:3], ctx[-3:] = 0.0, 1.0  # the context grid's two end nodes, exactly
    ctx[:, :2] = 1.0
    return vis, ir, ctx


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
@pytest.mark.parametrize("seed", [0, 1])
def test_kernel_matches_float64_multilinear_of_the_raw_table(kind, seed):
    rng = np.random.default_rng(seed)
    m = analytic_lut(kind)
    m.table = rng.random(m.table.shape).astype(np.float32)  # every cell and slope random
    vis, ir, ctx = _hard_inputs(rng, 97, 203)
    ref, fused = _reference_fusion(m, vis, ir, ctx)
    got = _kernel_fusion(m, vis, ir, ctx)
    diff = np.abs(got.astype(int) - ref)
    assert diff.max() <= 1
    # The kernel's fused luma is within ~1/100 level of the exact one: it rounds the other way only
    # where the exact value sits next to a half level.
    frac = np.abs(fused - np.floor(fused) - 0.5)
    assert np.all(frac[(diff > 0).any(-1)] < 0.02)


@pytest.mark.parametrize("name", ["lut3d", "lut4d", "lut4d_detail"])
def test_shipped_tables_on_real_frames_match_the_reference(name):
    """Every shipped table on real pairs: within 1 level of the float64 multilinear reference, as the
    previous (Y x IR fully baked) layout was, so results stay within 1 level of those before."""
    m = load_lut(WEIGHTS_DIR / f"{name}.npz")
    f = LutFuser(m)
    for _, vis, ir in real_pairs("msrs", 2) + real_pairs("roadscene", 2):
        ctx = f.context(vis, ir)
        ref, fused = _reference_fusion(m, vis, ir, ctx)
        got = f(vis, ir)
        diff = np.abs(got.astype(int) - ref)
        assert diff.max() <= 1
        frac = np.abs(fused - np.floor(fused) - 0.5)
        assert np.all(frac[(diff > 0).any(-1)] < 0.02)


# --- The CUDA kernel (device="cuda"), on Numba's CUDA simulator --------------------------------------

_CUDASIM_CHECK = """
import cv2, numpy as np
from rtfuse.fusion.initial import analytic_lut
from rtfuse.fusion.lut import LutFuser
rng = np.random.default_rng(0)
for kind in ("3d", "4d", "4d-detail"):
    m = analytic_lut(kind)
    m.table = rng.random(m.table.shape).astype(np.float32)
    vis = rng.integers(0, 256, (21, 37, 3), dtype=np.uint8)
    ir = rng.integers(0, 256, (21, 37), dtype=np.uint8)
    vis[:10] = cv2.GaussianBlur(vis[:10], (0, 0), 3)  # smooth rows: detail and gradient inside the grid
    ir[:10] = cv2.GaussianBlur(ir[:10], (0, 0), 3)
    vis[:, :3], ir[-3:] = 255, 0  # edge values
    cpu, gpu = LutFuser(m)(vis, ir), LutFuser(m, device="cuda")(vis, ir)
    print(kind, int(np.abs(cpu.astype(int) - gpu).max()), int((cpu != gpu).sum()))
"""


def test_cuda_kernel_matches_the_cpu_kernel_on_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    r = subprocess.run(
        [sys.executable, "-c", _CUDASIM_CHECK], env=env, cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {k: (int(d), int(n)) for k, d, n in (line.split() for line in r.stdout.splitlines())}
    assert set(rows) == {"3d", "4d", "4d-detail"}
    assert all(d <= 1 for d, _ in rows.values()), rows
    assert all(n <= 21 * 37 * 3 // 100 for _, n in rows.values()), rows  # off by one only at rare half levels


def test_cuda_device_without_a_gpu_is_refused_in_one_line():
    from rtfuse.fusion import kernels_cuda

    if kernels_cuda.available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        LutFuser(analytic_lut("3d"), device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        LutFuser(analytic_lut("3d"), device="gpu")
