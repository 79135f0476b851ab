"""--vis-sharpen (rtfuse/vissharpen.py): a soft visible's edges come back, its noise is not amplified,
its chroma stays, and the degraded-input scores take the captured visible as the truth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import run_cli
from rtfuse import metrics
from rtfuse.color import luma_u8
from rtfuse.evaluate import evaluate_degraded
from rtfuse.fusion.registry import load_fuser
from rtfuse.stage import FusionStage
from rtfuse.synthetic import SyntheticScene
from rtfuse.vissharpen import VisSharpener, sharpen_visible


def _gray3(y: np.ndarray) -> np.ndarray:
    return cv2.merge([y, y, y])


def test_a_blurred_scene_comes_back_closer_to_the_sharp_one():
    sharp, _ = SyntheticScene(320, 240, seed=3).render(0)
    soft = cv2.GaussianBlur(sharp, (0, 0), 2.0)
    out = sharpen_visible(soft, 2.0)
    err = [np.abs(luma_u8(x).astype(float) - luma_u8(sharp)).mean() for x in (soft, out)]
    assert err[1] < 0.9 * err[0]
    grad = [cv2.Laplacian(luma_u8(x), cv2.CV_32F).std() for x in (soft, out, sharp)]
    assert grad[0] < grad[1] <= 1.5 * grad[2]


def test_noise_below_twice_its_level_is_left_alone():
    rng = np.random.default_rng(1)
    flat = np.clip(np.rint(128 + rng.normal(0, 5, (240, 320))), 0, 255).astype(np.uint8)
    out = luma_u8(sharpen_visible(_gray3(flat), 2.0)).astype(float)
    plain = flat + 2.0 * (flat - cv2.GaussianBlur(flat.astype(float), (0, 0), 2.0))  # no coring
    assert out.std() < 1.25 * flat.std() < plain.std()


def test_the_chroma_stays():
    rng = np.random.default_rng(2)
    vis = cv2.GaussianBlur(rng.integers(60, 200, (96, 128, 3), dtype=np.uint8), (0, 0), 1.5)
    d = sharpen_visible(vis, 2.0).astype(int) - vis
    assert d.any() and (d[..., 0] == d[..., 1]).all() and (d[..., 1] == d[..., 2]).all()


def test_contracts():
    vis = np.full((8, 8, 3), 100, np.uint8)
    out = sharpen_visible(vis, 0.0)
    assert out is not vis and np.array_equal(out, vis)
    for bad in (np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32)):
        with pytest.raises(ValueError, match="uint8"):
            sharpen_visible(bad, 1.0)
    with pytest.raises(ValueError, match="amount"):
        sharpen_visible(vis, -1.0)
    with pytest.raises(ValueError, match="amount"):
        VisSharpener(0.0)


def test_degraded_scores_take_the_captured_visible_as_the_truth(tmp_path):
    vis, ir = SyntheticScene(128, 96, seed=5).render(0)
    for d, img in (("vis", vis), ("ir", ir), ("vis_blur", cv2.GaussianBlur(vis, (0, 0), 2.0))):
        (tmp_path / d).mkdir()
        cv2.imwrite(str(tmp_path / d / "p.png"), img)
    lut = load_fuser("lut")
    stage = FusionStage(lut, resize_ir=False, vis_sharpen=VisSharpener(2.0))
    row = evaluate_degraded(tmp_path / "vis", tmp_path / "ir", tmp_path / "vis_blur", None, stage)["p"]
    fused = lut(sharpen_visible(cv2.GaussianBlur(vis, (0, 0), 2.0), 2.0), ir)
    want = metrics.qabf(*(metrics.to_gray(x) for x in (fused, ir, vis)))
    assert row["Qabf"] == pytest.approx(want, abs=1e-9)


def test_cli_sharpens_only_when_asked(tmp_path):
    vis, ir = SyntheticScene(128, 96, seed=4).render(0)
    cv2.imwrite(str(tmp_path / "v.png"), cv2.GaussianBlur(vis, (0, 0), 2.0))
    cv2.imwrite(str(tmp_path / "i.png"), ir)
    outs = {}
    for name, extra in (("plain", []), ("sharp", ["--vis-sharpen", "2"])):
        code, log = run_cli("fuse", "--vis", tmp_path / "v.png", "--ir", tmp_path / "i.png",
                            "-o", tmp_path / f"{name}.png", *extra)  # fmt: skip
        assert code == 0, log
        outs[name] = cv2.imread(str(tmp_path / f"{name}.png"))
    assert not np.array_equal(outs["plain"], outs["sharp"])
    code, log = run_cli("fuse", "--vis", tmp_path / "v.png", "--ir", tmp_path / "i.png",
                        "-o", tmp_path / "x.png", "--vis-sharpen", "-1")  # fmt: skip
    assert code == 2 and "--vis-sharpen" in log and "Traceback" not in log
