"""The temporal filter of fused streams (rtfuse/temporal.py): less flicker on a noisy still scene,
motion and scene cuts pass at once, stills are untouched, and the Numba filter matches a reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import run_cli, write_video
from rtfuse.fusion.registry import load_fuser
from rtfuse.stage import FusionStage
from rtfuse.temporal import HI, KMIN, LO, TemporalFilter
from rtfuse.temporal_metrics import estimate_motion, flicker

H, W = 96, 128


def _scene(seed: int, blur: int = 9) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vis = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (blur, blur), 0)
    ir = cv2.GaussianBlur(rng.integers(0, 256, (H, W), dtype=np.uint8), (blur, blur), 0)
    return vis, ir


def _noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def _reference(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The filter in numpy (no scene cut in these frames): an integer (uint8) state, each step
    rounded and at least one level once the change is 1.5 levels, as the kernels keep it."""

    def y(f):
        f = f.astype(np.int64)
        return (3735 * f[..., 0] + 19235 * f[..., 1] + 9798 * f[..., 2] + 16384) >> 15

    state = y(frames[0]).astype(np.float64)
    out = [frames[0]]
    for f in frames[1:]:
        lum = y(f)
        d = lum - state
        k = np.clip((np.abs(d) - LO) / (HI - LO), 0, 1) * (1 - KMIN) + KMIN
        step = np.where(np.abs(d) >= 1.5, np.sign(d) * np.maximum(np.abs(k * d), 1.0), k * d)
        state = np.floor(state + step + 0.5)
        dd = state.astype(np.int64) - lum
        out.append(np.clip(f.astype(np.int64) + dd[..., None], 0, 255).astype(np.uint8))
    return out


def test_the_numba_filter_matches_the_reference():
    rng = np.random.default_rng(0)
    vis, _ = _scene(1)
    frames = [_noisy(vis, rng, 6.0) for _ in range(8)]
    frames[5][20:40, 30:60] = 255 - frames[5][20:40, 30:60]  # a large change in part of one frame
    want = _reference(frames)
    f = TemporalFilter()
    got = [f(x.copy(), x) for x in frames]
    for g, w in zip(got, want):
        assert np.abs(g.astype(int) - w.astype(int)).max() <= 1
    assert f.cuts == 0


def test_a_noisy_still_scene_flickers_less_and_keeps_its_detail():
    rng = np.random.default_rng(1)
    vis, ir = _scene(2)
    lut = load_fuser("lut")
    plain, steady = FusionStage(lut), FusionStage(lut, temporal=TemporalFilter())
    a, b = [], []
    for _ in range(12):
        v, i = _noisy(vis, rng), _noisy(ir, rng)
        a.append(plain(v, i)[0])
        b.append(steady(v, i)[0])
    still = estimate_motion(vis, vis)
    fa = np.mean([flicker(p, c, still) for p, c in zip(a[1:], a[2:])])
    fb = np.mean([flicker(p, c, still) for p, c in zip(b[1:], b[2:])])
    assert fb < 0.6 * fa
    clean = lut(vis, ir).astype(float)
    # averaging noise brings the frames closer to the noise-free fusion, not away from it
    assert np.abs(b[-1] - clean).mean() < np.abs(a[-1] - clean).mean()


@pytest.mark.parametrize("backend", ["lut", "lut3d"])
def test_the_lut_kernels_filter_as_the_separate_pass_does(backend):
    """The lut backends run the filter inside their kernel; any other fuser gets the pass."""
    rng = np.random.default_rng(11)
    vis, ir = _scene(12)
    lut = load_fuser(backend)
    inside = FusionStage(lut, temporal=TemporalFilter())
    apart = FusionStage(lambda v, i: lut(v, i), temporal=TemporalFilter())  # not a LutFuser: the pass
    for t in range(10):
        v, i = _noisy(vis, rng, 4.0), _noisy(ir, rng, 4.0)
        a, b = inside(v, i)[0].astype(int), apart(v, i)[0].astype(int)
        if t == 0:
            assert np.array_equal(a, b)
        # the kernel filters the luma before rounding, the pass the luma of the rounded output; the
        # integer state's dead band (a step under half a level is not taken) can keep that apart
        assert np.abs(a - b).max() <= 3 and np.abs(a - b).mean() < 0.15


def test_motion_with_contrast_passes_in_the_same_frame():
    f = TemporalFilter()
    base = np.full((H, W, 3), 60, np.uint8)
    for t in range(6):
        frame = base.copy()
        frame[30:60, 10 + 8 * t : 40 + 8 * t] = 200  # a bright square moving 8 px a frame
        out = f(frame.copy(), frame)
        assert np.array_equal(out, frame)  # every change is 140 levels: nothing is held back


@pytest.mark.parametrize("cut_at", [5, 9])
def test_a_scene_cut_is_shown_at_once(cut_at):
    rng = np.random.default_rng(3)
    (va, ia), (vb, ib) = _scene(4, blur=3), _scene(5, blur=3)  # two scenes of ordinary contrast
    lut = load_fuser("lut")
    stage = FusionStage(lut, temporal=TemporalFilter())
    for t in range(cut_at + 3):
        v, i = (va, ia) if t < cut_at else (vb, ib)
        v, i = _noisy(v, rng), _noisy(i, rng)
        out = stage(v, i)[0]
        if t == cut_at:  # the filter restarts: the new scene exactly as fused
            assert np.array_equal(out, lut(v, i))
        if t >= cut_at:  # and no trace of the old scene after it
            assert np.abs(out.astype(int) - lut(v, i).astype(int)).max() <= LO + 1
    assert stage.temporal.cuts == 1


def test_stills_and_a_reset_are_untouched(tmp_path):
    vis, ir = _scene(6)
    lut = load_fuser("lut")
    stage = FusionStage(lut, temporal=TemporalFilter())
    stage(*_scene(7))
    stage.reset()
    assert np.array_equal(stage(vis, ir)[0], lut(vis, ir))
    cv2.imwrite(str(tmp_path / "v.png"), vis)
    cv2.imwrite(str(tmp_path / "i.png"), ir)
    code, text = run_cli(
        "fuse", "--vis", tmp_path / "v.png", "--ir", tmp_path / "i.png", "-o", tmp_path / "f.png"
    )
    assert code == 0, text
    assert np.array_equal(cv2.imread(str(tmp_path / "f.png")), lut(vis, ir))


def test_bad_settings_and_frames_are_refused():
    with pytest.raises(ValueError):
        TemporalFilter(lo=10, hi=5)
    with pytest.raises(ValueError):
        TemporalFilter(kmin=0)
    with pytest.raises(ValueError):
        TemporalFilter()(np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint8))


def test_fuse_video_is_steadied_unless_no_temporal(tmp_path):
    rng = np.random.default_rng(8)
    vis, ir = _scene(9)
    n = 10
    write_video(tmp_path / "v.mkv", [_noisy(vis, rng) for _ in range(n)], 30)
    write_video(tmp_path / "i.mkv", [np.repeat(_noisy(ir, rng)[..., None], 3, 2) for _ in range(n)], 30)
    args = ("--vis", tmp_path / "v.mkv", "--ir", tmp_path / "i.mkv", "--codec", "ffv1")
    assert run_cli("fuse", *args, "-o", tmp_path / "a.mkv")[0] == 0
    assert run_cli("fuse", *args, "-o", tmp_path / "b.mkv", "--no-temporal")[0] == 0
    import av

    def frames(p):
        with av.open(str(p)) as c:
            return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]

    a, b = frames(tmp_path / "a.mkv"), frames(tmp_path / "b.mkv")
    assert len(a) == len(b) == n
    assert np.array_equal(a[0], b[0])  # the first frame starts the filter
    # the stream is exactly the stage's, frame after frame, on the decoded inputs
    stage = FusionStage(load_fuser("lut"), temporal=TemporalFilter())
    for got, v, i in zip(a, frames(tmp_path / "v.mkv"), frames(tmp_path / "i.mkv")):
        assert np.array_equal(got, stage(v, i)[0])
    still = estimate_motion(vis, vis)
    fa = np.mean([flicker(p, c, still) for p, c in zip(a, a[1:])])
    fb = np.mean([flicker(p, c, still) for p, c in zip(b, b[1:])])
    assert fa < 0.75 * fb


@pytest.mark.parametrize("to", [102, 106, 94, 97])
def test_a_still_pixel_settles_within_one_level_of_its_new_value(to):
    """The integer state takes steps of at least one level, so it does not stop 2 levels short."""
    f = TemporalFilter()
    f(np.full((32, 32, 3), 100, np.uint8), np.full((32, 32, 3), 100, np.uint8))
    for _ in range(30):
        frame = np.full((32, 32, 3), to, np.uint8)
        out = f(frame.copy(), frame)
    assert f.cuts == 0 and abs(int(out[0, 0, 0]) - to) <= 1


@pytest.mark.parametrize("backend", ["lut", "lut3d"])
def test_a_filter_that_keeps_nothing_changes_nothing(backend):
    """KMIN 1 takes every change whole, so the kernels' rounding of the steps must give exactly the
    plain fusion, small and large changes alike."""
    rng = np.random.default_rng(21)
    vis, ir = _scene(22)
    lut = load_fuser(backend)
    plain, steady = FusionStage(lut), FusionStage(lut, temporal=TemporalFilter(kmin=1.0))
    for _ in range(6):
        v, i = _noisy(vis, rng, 6.0), _noisy(ir, rng, 6.0)
        assert np.array_equal(plain(v, i)[0], steady(v, i)[0])
