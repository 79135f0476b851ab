"""Numba kernels against independent numpy references and invariants."""

import cv2
import numpy as np
import pytest

from conftest import random_pair, real_pairs
from rtfuse.fusion import kernels
from rtfuse.fusion.bake import bake
from rtfuse.fusion.initial import analytic_lut
from rtfuse.fusion.lut import LutFuser


def _luma_of(vis):
    """The kernels' luma, read back through a LUT whose output is its IR input (= pass-through)."""
    m = analytic_lut("3d", n_lum=256)
    m.table[:] = np.linspace(0, 1, 256, dtype=np.float32)[:, None, None]  # Y' = Y
    m2 = analytic_lut("3d", n_lum=256)
    m2.table[:] = 128 / 255  # Y' = 128: out = vis + 128 - Y, so Y = vis + 128 - out (no clipping here)
    out = np.empty_like(vis)
    kernels.fuse_lut3d(vis, np.zeros(vis.shape[:2], np.uint8), np.zeros((2, 2), np.float32), bake(m), out)
    assert np.array_equal(out, vis)  # identity LUT leaves the image untouched
    kernels.fuse_lut3d(vis, np.zeros(vis.shape[:2], np.uint8), np.zeros((2, 2), np.float32), bake(m2), out)
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


def test_bake_reproduces_nodes_and_is_exact_between_them():
    m = analytic_lut("3d")
    m.table = np.random.default_rng(0).random(m.table.shape, dtype=np.float32)
    t = bake(m)
    assert t.shape == (256, 256, 8) and t.dtype == np.uint16
    # Node n of a 17-node grid over 0..255 sits at input 255 n / 16; 0 and 255 are nodes.
    for y, n in ((0, 0), (255, 16)):
        for i, k in ((0, 0), (255, 16)):
            np.testing.assert_allclose(t[y, i] / (255 * 256), m.table[n, k], atol=1 / (255 * 256))
    # Between nodes: an explicit bilinear evaluation at an arbitrary integer input.
    y, i = 100, 37
    py, pi = y * 16 / 255, i * 16 / 255
    y0, i0 = int(py), int(pi)
    wy, wi = py - y0, pi - i0
    ref = (
        (1 - wy) * (1 - wi) * m.table[y0, i0]
        + wy * (1 - wi) * m.table[y0 + 1, i0]
        + (1 - wy) * wi * m.table[y0, i0 + 1]
        + wy * wi * m.table[y0 + 1, i0 + 1]
    )
    np.testing.assert_allclose(t[y, i] / (255 * 256), ref, atol=1 / (255 * 256))


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
