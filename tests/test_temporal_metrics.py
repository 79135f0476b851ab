"""The motion-compensated flicker metric (rtfuse/temporal_metrics.py) and `rtfuse eval --video`.

Synthetic sequences with known motion and injected flicker: the metric must ignore the motion and
find the flicker. No data needed, except the last test (the shared real clip, skipped without it).
"""

import json

import cv2
import numpy as np
import pytest

from conftest import DATA, write_video
from rtfuse import temporal_metrics as tm
from rtfuse.cli import main

H, W = 150, 200


def texture(h: int, w: int, sigma: float = 5.0, seed: int = 0) -> np.ndarray:
    """float32 (h, w) smooth random texture, mean 128, std ~40: Farneback can follow it."""
    noise = np.random.default_rng(seed).normal(0, 1, (h, w)).astype(np.float32)
    b = cv2.GaussianBlur(noise, (0, 0), sigma)
    return np.clip(128 + b / b.std() * 40, 0, 255).astype(np.float32)


def pan(step: tuple[float, float], n: int = 6, seed: int = 0, size: tuple[int, int] = (H, W)) -> list:
    """n uint8 BGR frames of a camera panning over a texture by ``step`` (dx, dy) px per frame."""
    h, w = size
    big = texture(h + 200, w + 200, seed=seed)
    out = []
    for t in range(n):
        m = np.float32([[1, 0, -(20 + step[0] * t)], [0, 1, -(20 + step[1] * t)]])
        g = cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_CUBIC)
        out.append(cv2.cvtColor(np.clip(np.round(g), 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return out


def with_flicker(frames: list, amplitude: float, seed: int = 1) -> list:
    """Each frame with its own random gain (1 +- amplitude %) and offset (+- amplitude levels)."""
    r = np.random.default_rng(seed)
    out = []
    for f in frames:
        gain, offset = 1 + r.uniform(-amplitude, amplitude) / 100, r.uniform(-amplitude, amplitude)
        out.append(np.clip(np.round(f.astype(np.float32) * gain + offset), 0, 255).astype(np.uint8))
    return out


def frame_change(frames: list) -> float:
    """The uncompensated measure: mean |Y_t - Y_t-1| over the whole frame."""
    return float(np.mean([np.abs(tm.luma(b) - tm.luma(a)).mean() for a, b in zip(frames, frames[1:])]))


@pytest.mark.parametrize("step", [(0.6, 0.3), (2.0, 1.0)], ids=["subpixel", "pixel"])
def test_motion_without_flicker_scores_near_zero(step):
    vis = pan(step)
    still = tm.score_sequence(vis, vis)
    flickering = tm.score_sequence(vis, with_flicker(vis, 5.0))
    assert still["flicker"] < 0.6  # bilinear resampling of a sub-pixel shift leaves a little
    assert flickering["flicker"] > 5 * still["flicker"]
    assert frame_change(vis) > 5 * still["flicker"]  # without compensation the motion would count
    assert still["frames"] == 6 and 0.6 < still["kept"] < 1


def test_injected_flicker_is_found_and_grows_with_its_amplitude():
    vis = pan((1.3, -0.7))
    rows = [tm.score_sequence(vis, with_flicker(vis, a)) for a in (0.0, 2.0, 5.0, 10.0)]
    flicker = [r["flicker"] for r in rows]
    flowd = [r["flowD"] for r in rows]
    assert flicker == sorted(flicker) and flowd == sorted(flowd)
    assert flicker[1] > 3 * flicker[0]
    assert flicker[3] > 3 * flicker[1]
    # An offset uniform in +-a changes by 2a/3 on average between frames: the same order.
    assert 0.4 * 10 < flicker[3] < 1.5 * 10


def test_static_scene_flicker_equals_the_mean_abs_frame_difference():
    vis = pan((0.0, 0.0), n=5)
    r = np.random.default_rng(2)
    fused = [np.clip(v + r.normal(0, 4, v.shape[:2])[..., None], 0, 255).astype(np.uint8) for v in vis]
    s = tm.score_sequence(vis, fused)
    b = tm.BORDER
    inner = [np.abs(tm.luma(y) - tm.luma(x))[b:-b, b:-b].mean() for x, y in zip(fused, fused[1:])]
    assert s["flicker"] == pytest.approx(np.mean(inner), rel=1e-3)
    assert s["kept"] == pytest.approx((H - 2 * b) * (W - 2 * b) / (H * W), abs=0.01)  # flow ~0, not exactly
    # Without the noise: nothing (Farneback's flow of a still scene is ~1e-3 px, not exactly 0).
    assert tm.score_sequence(vis, vis)["flicker"] == pytest.approx(0.0, abs=0.01)


def test_content_entering_the_view_is_masked():
    step = 12  # px per frame to the right: a 12 px strip at the right edge is new in every frame
    vis = pan((step, 0.0))
    for a, b in zip(vis, vis[1:]):
        m = tm.estimate_motion(a, b)
        assert not m.valid[:, W - step :].any()
        # Without the mask, the entering strip (no match in t-1) dominates the residual.
        d = np.abs(tm.luma(b) - tm.warp(tm.luma(a), m))
        assert d[:, W - step :].mean() > 10 * d[m.valid].mean()
    assert tm.score_sequence(vis, vis)["flicker"] < 0.6


def test_forward_backward_check_masks_what_has_no_match():
    a = cv2.cvtColor(np.round(texture(H, W, seed=7)).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    b = cv2.cvtColor(np.round(texture(H, W, seed=8)).astype(np.uint8), cv2.COLOR_GRAY2BGR)  # a cut
    checked = tm.estimate_motion(a, b).kept
    assert checked < 0.6 * tm.estimate_motion(a, b, occlusion=False).kept
    # A pure pan is consistent: the check keeps what the frame border keeps.
    p, q = pan((2.0, 1.0), n=2)
    assert tm.estimate_motion(p, q).kept == pytest.approx(
        tm.estimate_motion(p, q, occlusion=False).kept, abs=0.02
    )


def test_one_flow_per_frame_pair_shared_by_every_sequence(monkeypatch):
    calls = []
    real = tm.estimate_motion
    monkeypatch.setattr(tm, "estimate_motion", lambda *a, **k: calls.append(1) or real(*a, **k))
    vis = pan((1.0, 0.5), n=4)
    scorer = tm.TemporalScorer(reference="ref")
    for v, f in zip(vis, with_flicker(vis, 5.0)):
        scorer.add(v, {"fused": f, "ref": v, "gray": tm.luma(f).astype(np.uint8)})
    assert len(calls) == 3
    rows = scorer.results()
    assert rows["ref"]["flicker_ratio"] == 1.0
    assert rows["fused"]["flicker_ratio"] > 5
    # A gray frame is three equal channels for flowD, and the same luma for flicker.
    assert rows["gray"]["flicker"] == pytest.approx(rows["fused"]["flicker"], rel=0.05)


def test_contracts():
    vis = pan((1.0, 0.0), n=2)
    with pytest.raises(ValueError, match="differ in size"):
        tm.estimate_motion(vis[0], vis[1][:-2])
    ir = np.full((H, W), 200, np.uint8)
    ref = tm.max_reference(vis[0], ir)
    assert ref.dtype == np.uint8 and ref.shape == (H, W)
    assert np.array_equal(ref, np.maximum(tm.luma(vis[0]), 200).astype(np.uint8))


# -- rtfuse eval --video ------------------------------------------------------------------------


@pytest.fixture
def clips(tmp_path):
    vis = pan((1.5, 0.5), n=6, size=(96, 128))
    ir = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) // 2 + 60 for f in pan((1.5, 0.5), n=6, seed=3, size=(96, 128))]
    write_video(tmp_path / "vis.mkv", vis, 30)
    write_video(tmp_path / "ir.mkv", ir, 30)
    return tmp_path


def test_eval_video_cli_backends_and_fused_clip(clips, capsys):
    out = clips / "m.json"
    args = ["eval", "--video", "--vis", clips / "vis.mkv", "--ir", clips / "ir.mkv"]
    assert main([*map(str, args), "--backend", "lut,blend", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert list(rows) == ["lut", "blend", "max(Y, IR)", "visible"]
    assert all(r["frames"] == 6 for r in rows.values())
    assert rows["max(Y, IR)"]["flicker_ratio"] == 1.0
    assert all(r["flicker"] >= 0 and r["SF"] > 0 for r in rows.values())
    printed = capsys.readouterr().out
    assert "ratio to max(Y, IR)" in printed and "flowD" in printed

    # The same backend's video, written by `rtfuse fuse` (lossless), scores the same.
    assert main(["fuse", "--vis", str(clips / "vis.mkv"), "--ir", str(clips / "ir.mkv"), "-o",
                 str(clips / "fused.mkv"), "--codec", "ffv1"]) == 0  # fmt: skip
    out2 = clips / "f.json"
    assert main([*map(str, args), "--fused", str(clips / "fused.mkv"), "--json", str(out2)]) == 0
    fused = json.loads(out2.read_text())
    assert fused["fused.mkv"]["flicker"] == pytest.approx(rows["lut"]["flicker"], rel=1e-6)
    assert fused["fused.mkv"]["flowD"] == pytest.approx(rows["lut"]["flowD"], rel=1e-6)

    # Limited to N frames; CSV too.
    assert main([*map(str, args), "--frames", "3", "--csv", str(clips / "m.csv")]) == 0
    assert (clips / "m.csv").read_text().splitlines()[
        0
    ] == "sequence,flicker,flicker_ratio,flowD,SF,frames,kept"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--vis", "{d}/missing.mkv", "--ir", "{d}/ir.mkv"], "missing.mkv: no such file or folder"),
        (["--vis", "{d}/vis.mkv", "--ir", "{d}/small.mkv"], "no calibration maps one onto the other"),
        (["--vis", "{d}/vis.mkv", "--ir", "{d}/one.mkv"], "gave 1 paired frame"),
        (["--vis", "{d}/vis.mkv", "--ir", "{d}/ir.mkv", "--json", "{d}/ir.mkv"], "is the IR input"),
    ],
    ids=["missing", "sizes", "too-few", "overwrite"],
)
def test_eval_video_bad_inputs_are_one_line(clips, capsys, extra, message):
    write_video(clips / "small.mkv", [np.zeros((48, 64), np.uint8)] * 2, 30)
    write_video(clips / "one.mkv", [np.zeros((96, 128), np.uint8)], 30)
    assert main(["eval", "--video", *(e.format(d=clips) for e in extra)]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_eval_video_options_outside_video_are_refused(clips, capsys):
    assert main(["eval", "--vis", str(clips), "--ir", str(clips), "--frames", "3"]) == 1
    assert "--frames is for clips" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--video", "--vis", "a", "--ir", "b", "--frames", "1"])  # at least 2


def test_real_clip_lut_ratio_is_sane():
    from rtfuse.evaluate import REFERENCE, evaluate_video
    from rtfuse.fusion.registry import load_fuser
    from rtfuse.stage import FusionStage

    vis, ir = (DATA / "video" / f"0111_1716_{m}.mp4" for m in ("vis", "ir"))
    if not (vis.is_file() and ir.is_file()):
        pytest.skip(f"real clip {vis} is absent (set RTFUSE_DATA to the shared data folder)")
    rows = evaluate_video(vis, ir, {"lut": FusionStage(load_fuser("lut"), resize_ir=False)}, frames=30)
    assert rows["lut"]["frames"] == 30
    assert 0.8 < rows["lut"]["flicker_ratio"] < 2.5, rows  # a sanity range, not a target
    assert rows[REFERENCE]["flicker"] > 0
