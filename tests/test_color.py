"""The single luma and luma-replacement definitions agree across numpy, OpenCV, torch and the kernels."""

import cv2
import numpy as np
import pytest

from rtfuse import color


def test_fixed_point_weights_are_bt601_summing_to_one():
    assert (color.LUMA_Q_B, color.LUMA_Q_G, color.LUMA_Q_R) == (3735, 19235, 9798)  # OpenCV 5's integers
    assert color.LUMA_Q_B + color.LUMA_Q_G + color.LUMA_Q_R == 1 << color.LUMA_SHIFT
    grey = np.arange(256, dtype=np.uint8)[:, None, None].repeat(3, 2)
    assert np.array_equal(color.luma_u8(grey)[:, 0], np.arange(256))


def test_luma_u8_is_the_fixed_point_formula_within_a_level_of_the_float_one(rng):
    vis = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    y = color.luma_u8(vis)
    assert y.dtype == np.uint8 and np.array_equal(y, color._luma_u8_numpy(vis))
    exact = vis.astype(np.float64) @ np.array([color.LUMA_B, color.LUMA_G, color.LUMA_R])
    assert np.abs(y - exact).max() <= 1.0
    if int(cv2.__version__.split(".")[0]) >= 5:
        assert color._opencv_matches()  # the fast path is taken where OpenCV computes the same integers


def test_replace_luma_keeps_chroma(rng):
    vis = rng.integers(40, 216, (16, 16, 3), dtype=np.uint8)
    y = color.luma_u8(vis).astype(np.float32)
    out = color.replace_luma(vis, y, y + 20.4)
    assert np.array_equal(out.astype(int) - vis, np.full(vis.shape, 20))  # same shift on B, G, R


def test_torch_versions_match_numpy(rng):
    torch = pytest.importorskip("torch")
    vis = rng.integers(0, 256, (2, 3, 17, 23), dtype=np.uint8)
    t = torch.from_numpy(vis)
    fixed = color.luma_fixed_nchw(t)
    assert fixed.dtype == torch.int32
    for k in range(2):
        assert np.array_equal(fixed[k, 0].numpy(), color.luma_u8(vis[k].transpose(1, 2, 0).copy()))
    f = t.float() / 255.0
    y = color.luma_nchw(f)
    assert torch.allclose(y * 255.0, fixed.float(), atol=1.0)
    out = color.replace_luma_nchw(f, y, y + 0.1)
    assert out.max() <= 1.0 and torch.allclose((out - f)[f < 0.85], torch.tensor(0.1), atol=1e-6)
