import numpy as np
import pytest

from rtfuse.synthetic import IR16_GAIN, IR16_OFFSET, SyntheticScene


def test_deterministic_and_moving():
    a = SyntheticScene(200, 150, seed=5)
    b = SyntheticScene(200, 150, seed=5)
    v0, i0 = a.render(0)
    assert all(np.array_equal(x, y) for x, y in zip((v0, i0), b.render(0)))
    v1, i1 = a.render(15)
    assert not np.array_equal(i0, i1), "targets move"
    assert (
        v0.shape == (150, 200, 3) and v0.dtype == np.uint8 and i0.shape == (150, 200) and i0.dtype == np.uint8
    )


def test_targets_are_hot_in_ir_and_dim_in_visible():
    s = SyntheticScene(320, 240, seed=0)
    vis, ir = s.render(3)
    hot = ir > 180
    assert hot.mean() > 0.01
    y = vis.mean(axis=2)
    assert y[hot].mean() < 90


def test_ir16_is_consistent_with_ir8():
    s = SyntheticScene(64, 48, seed=2)
    _, ir8 = s.render(4)
    ir16 = s.render_ir16(4)
    assert ir16.dtype == np.uint16
    back = (ir16.astype(np.float64) - IR16_OFFSET) / IR16_GAIN
    assert np.abs(back - ir8).max() <= 1.0


def test_bad_sizes():
    with pytest.raises(ValueError):
        SyntheticScene(8, 8)
