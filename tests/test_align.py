"""Calibration files and the Aligner."""

import cv2
import numpy as np
import pytest

from conftest import REPO
from rtfuse.align import Aligner, Calibration, load_calibration
from rtfuse.errors import CalibrationError


def test_shipped_identity_loads_and_passes_through(rng):
    c = load_calibration(REPO / "calibration" / "identity.yaml")
    assert c.is_identity and c.ir_size is None
    ir = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    a = Aligner(c, (64, 48), (64, 48))
    assert a.mode == "none" and a(ir) is ir


def test_identity_with_different_sizes_resizes(rng):
    ir = rng.integers(0, 256, (120, 160), dtype=np.uint8)
    out = Aligner(None, (160, 120), (640, 480))(ir)
    assert out.shape == (480, 640)
    np.testing.assert_array_equal(out, cv2.resize(ir, (640, 480), interpolation=cv2.INTER_LINEAR))


def test_homography_matches_warp_perspective(rng, tmp_path):
    h = np.array([[1.05, 0.02, 12.0], [-0.01, 0.98, -7.0], [1e-5, 2e-5, 1.0]])
    c = Calibration(h, (160, 128), (200, 150), method="test")
    c.save(tmp_path / "c.yaml")
    c2 = load_calibration(tmp_path / "c.yaml")
    np.testing.assert_allclose(c2.homography, h)
    assert (c2.ir_size, c2.vis_size, c2.method) == ((160, 128), (200, 150), "test")
    ir = cv2.GaussianBlur(rng.integers(0, 256, (128, 160), dtype=np.uint8), (0, 0), 2)
    out = Aligner(c2, (160, 128), (200, 150))(ir)
    ref = cv2.warpPerspective(ir, h, (200, 150), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    assert out.shape == (150, 200)
    # Fixed-point remap tables vs float warp: within a level or two, except at the border.
    assert np.percentile(np.abs(out.astype(int) - ref), 99) <= 2


def test_a_point_lands_where_the_homography_says():
    h = np.array([[1.0, 0.0, 20.0], [0.0, 1.0, 10.0], [0.0, 0.0, 1.0]])
    ir = np.zeros((100, 100), np.uint8)
    ir[30, 40] = 255
    out = Aligner(Calibration(h, (100, 100), (100, 100)), (100, 100), (100, 100))(ir)
    assert np.unravel_index(np.argmax(out), out.shape) == (40, 60)


@pytest.mark.parametrize(
    "text,match",
    [
        ("homography: [[1,0],[0,1]]", "invertible 3x3"),
        ("homography: [[0,0,0],[0,0,0],[0,0,1]]", "invertible"),
        ("homography: [[1,0,0],[0,1,0],[0,0,1]]\nir_size: [640]", "ir_size"),
        ("ir_size: [1, 2]", "no 'homography'"),
        ("homography: [[1,0,0],[0,1,0],[0,0,1]]\nversion: 7", "version 7"),
        (": : :\n\t- [", "not valid YAML"),
        ("!!python/object:os.system ['ls']", "not valid YAML"),
    ],
)
def test_malformed_calibrations(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(CalibrationError, match=match):
        load_calibration(p)


def test_size_mismatch_is_explained():
    c = Calibration(np.eye(3) + np.array([[0, 0, 3], [0, 0, 0], [0, 0, 0]]), (640, 512), (1280, 720))
    with pytest.raises(CalibrationError, match="made for IR frames of 640x512.*320x256"):
        Aligner(c, (320, 256), (1280, 720))
