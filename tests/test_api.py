"""The public API contract: rtfuse.load_fuser(...)(vis, ir)."""

import numpy as np
import pytest

import rtfuse
from conftest import REPO, random_pair


@pytest.fixture(scope="module", params=["lut", "lut3d", "lut4d", "lut4d-detail", "blend"])
def fuser(request):
    return rtfuse.load_fuser(request.param)


@pytest.mark.parametrize("h,w", [(1, 1), (7, 9), (17, 8), (480, 640), (361, 503)])
def test_output_contract(fuser, rng, h, w):
    vis, ir = random_pair(rng, h, w)
    out = fuser(vis, ir)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert not np.shares_memory(out, vis)


def test_inputs_are_not_modified(fuser, rng):
    vis, ir = random_pair(rng, 64, 48)
    v0, i0 = vis.copy(), ir.copy()
    fuser(vis, ir)
    assert np.array_equal(vis, v0) and np.array_equal(ir, i0)


def test_non_contiguous_inputs_match_contiguous(fuser, rng):
    vis, ir = random_pair(rng, 80, 120)
    ref = fuser(vis, ir)
    big_v = np.zeros((80, 240, 3), np.uint8)
    big_v[:, ::2] = vis
    big_i = np.zeros((80, 240), np.uint8)
    big_i[:, ::2] = ir
    assert np.array_equal(fuser(big_v[:, ::2], big_i[:, ::2]), ref)


@pytest.mark.parametrize(
    "vis_shape,vis_dtype,ir_shape,ir_dtype,match",
    [
        ((48, 64, 3), np.uint8, (48, 60), np.uint8, "sizes differ"),
        ((48, 64, 3), np.uint8, (64, 48), np.uint8, "sizes differ"),
        ((48, 64), np.uint8, (48, 64), np.uint8, "HxWx3"),
        ((48, 64, 4), np.uint8, (48, 64), np.uint8, "HxWx3"),
        ((48, 64, 3), np.uint8, (48, 64, 3), np.uint8, "single-channel"),
        ((48, 64, 3), np.float32, (48, 64), np.uint8, "uint8"),
        ((48, 64, 3), np.uint8, (48, 64), np.uint16, "AGC"),
    ],
)
def test_contract_violations_raise_value_error(fuser, vis_shape, vis_dtype, ir_shape, ir_dtype, match):
    with pytest.raises(ValueError, match=match):
        fuser(np.zeros(vis_shape, vis_dtype), np.zeros(ir_shape, ir_dtype))


def test_non_array_input_raises(fuser):
    with pytest.raises(ValueError, match="numpy arrays"):
        fuser([[0]], np.zeros((1, 1), np.uint8))


def test_shipped_luts_are_trained_and_the_analytic_ones_labelled_untrained():
    for name in ("lut", "lut3d", "lut4d", "lut4d-detail"):
        model = rtfuse.load_fuser(name).model
        assert not model.untrained and "distilled" in model.meta["method"], name
    for kind in ("3d", "4d"):
        model = rtfuse.load_fuser("lut", path=REPO / "rtfuse" / "weights" / f"lut{kind}_untrained.npz").model
        assert model.untrained and model.kind == kind


def test_unknown_backend_and_bad_options():
    with pytest.raises(ValueError, match="unknown backend"):
        rtfuse.load_fuser("nope")
    with pytest.raises(ValueError, match="alpha"):
        rtfuse.load_fuser("blend", alpha=2.0)
    with pytest.raises(ValueError, match="only the option .device."):
        rtfuse.load_fuser("lut", alpha=0.3)


def test_lut_path_loads_another_table(tmp_path, rng):
    from rtfuse.fusion.initial import analytic_lut
    from rtfuse.fusion.lutfile import save_lut

    m = analytic_lut("3d")
    m.table[:] = 0.0  # a LUT that paints every pixel's luma black
    save_lut(tmp_path / "black.npz", m)
    vis = np.full((32, 32, 3), 128, np.uint8)
    out = rtfuse.load_fuser("lut", path=tmp_path / "black.npz")(vis, np.full((32, 32), 200, np.uint8))
    assert out.max() == 0


def test_lut_backend_is_thread_safe(rng):
    from concurrent.futures import ThreadPoolExecutor

    fuser = rtfuse.load_fuser("lut4d")
    pairs = [random_pair(rng, 96, 128) for _ in range(6)]
    serial = [fuser(v, i) for v, i in pairs]
    with ThreadPoolExecutor(3) as ex:
        threaded = list(ex.map(lambda p: fuser(*p), pairs))
    assert all(np.array_equal(a, b) for a, b in zip(serial, threaded))
