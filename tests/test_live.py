"""The live path without hardware: OpenCV capture on files, Y16, AGC, live pairing, watchdog, window."""

import time

import cv2
import numpy as np
import pytest

import rtfuse
from conftest import read_video, write_video
from rtfuse.agc import Agc
from rtfuse.errors import InputError, PipelineError, SourceError
from rtfuse.pipeline import Pipeline
from rtfuse.sinks.base import Fused, NullSink
from rtfuse.sinks.video import VideoSink
from rtfuse.sources.base import Frame, Source
from rtfuse.sources.camera import CameraSource, as_y16
from rtfuse.sync import LivePairer
from rtfuse.synthetic import SyntheticScene, SyntheticSource


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("cam")
    scene = SyntheticScene(96, 64, seed=9)
    write_video(d / "vis.mp4", [scene.render_vis(i) for i in range(20)], 30, codec="libx264")
    write_video(d / "ir.mp4", [scene.render_ir(i) for i in range(20)], 30, codec="libx264")
    return d


# -- camera source through the real cv2.VideoCapture code ---------------------------------------


def test_camera_source_reads_through_videocapture(clip):
    cam = CameraSource(str(clip / "vis.mp4")).open()
    assert cam.live and cam.size == (96, 64)
    frames = []
    t_before = time.monotonic()
    for f in cam.frames():
        frames.append(f)
        if len(frames) == 10:
            break
    cam.close()
    assert [f.index for f in frames] == list(range(10))
    assert all(t_before - 1 <= f.t <= time.monotonic() for f in frames), (
        "capture times on the monotonic clock"
    )
    assert frames[0].image.shape == (64, 96, 3)


def test_camera_reconnects_with_backoff_after_a_failure(clip):
    """End of file is a failed read: the source reopens the capture (a replugged camera)."""
    cam = CameraSource(str(clip / "ir.mp4"), reconnect_timeout=5.0).open()
    n = 0
    for _ in cam.frames():
        n += 1
        if n == 45:
            break
    cam.close()
    assert cam.reconnects >= 2


def test_camera_gone_for_good_ends_with_a_clear_error(clip, tmp_path):
    path = tmp_path / "cam.mp4"
    path.write_bytes((clip / "ir.mp4").read_bytes())
    cam = CameraSource(str(path), reconnect_timeout=0.8).open()
    path.unlink()  # "unplugged"
    t0 = time.monotonic()
    with pytest.raises(SourceError, match="delivered no frame for .* could not be reopened"):
        for _ in cam.frames():
            pass
    assert time.monotonic() - t0 < 5


def test_missing_device_lists_available_ones():
    with pytest.raises(SourceError, match=r"/dev/video99 does not exist; (available devices|no /dev/video)"):
        CameraSource("/dev/video99").open()
    with pytest.raises(SourceError, match="cannot open camera"):
        CameraSource("/nonexistent/stream.mp4").open()


def test_live_pipeline_on_opencv_captures(clip, tmp_path):
    out = tmp_path / "live.mkv"
    pipe = Pipeline(
        CameraSource(str(clip / "vis.mp4")),
        CameraSource(str(clip / "ir.mp4")),
        rtfuse.load_fuser("lut"),
        [VideoSink(out, codec="ffv1")],
        max_frames=15,
    )
    report = pipe.run()
    # Files read as cameras run faster than real time; live output drops what the sink cannot take.
    out_n = report.stats.frames_out
    assert out_n + report.stats.counters.get("dropped out", 0) == 15 and out_n >= 1
    frames, _, _ = read_video(out)
    assert len(frames) == out_n


# -- 16-bit thermal -----------------------------------------------------------------------------


def test_y16_layouts_from_opencv():
    img = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    assert np.array_equal(as_y16(img.reshape(1, -1), (4, 3)), img)  # flat uint16 (OpenCV 4.11 V4L2)
    assert np.array_equal(as_y16(img.view(np.uint8).reshape(1, -1), (4, 3)), img)  # flat bytes
    assert np.array_equal(as_y16(img.view(np.uint8).reshape(3, 4, 2), (4, 3)), img)
    assert np.array_equal(as_y16(img, (4, 3)), img)
    with pytest.raises(SourceError, match="set the camera size to match") as e:
        as_y16(img.reshape(1, -1), (5, 3))
    assert e.value.option == "ir_size"  # the CLI names --ir-size


def test_synthetic_16bit_ir_through_the_pipeline():
    pipe = Pipeline(
        SyntheticSource("vis", 128, 96, count=20),
        SyntheticSource("ir16", 128, 96, count=20),
        rtfuse.load_fuser("lut"),
        [NullSink()],
    )
    assert pipe.run().stats.frames_out == 20
    lo, hi = pipe.stage.agc.limits()
    assert 7000 <= lo < hi <= 7000 + 24 * 256


def test_agc_smooths_limits_so_a_hot_object_does_not_pump():
    rng = np.random.default_rng(0)
    base = (rng.normal(8000, 100, (120, 160))).astype(np.uint16)
    hot = base.copy()
    hot[40:80, 60:100] = 12000
    agc = Agc("percentile", 1, 99, smoothing=0.9)
    a = agc(base)
    b = agc(hot)  # the hot object appears
    fresh = Agc("percentile", 1, 99, smoothing=0.0)(hot)
    # Background brightness barely changes with smoothing, but collapses without it.
    assert abs(float(b[:30].mean()) - float(a[:30].mean())) < 0.5 * abs(
        float(fresh[:30].mean()) - float(a[:30].mean())
    )


def test_agc_modes_and_errors():
    ir = np.linspace(7000, 9000, 100 * 100).astype(np.uint16).reshape(100, 100)
    out = Agc("fixed:7000:9000")(ir)
    assert out[0, 0] == 0 and out[-1, -1] == 255
    out = Agc("minmax", smoothing=0.0)(ir)
    assert out.min() == 0 and out.max() == 255
    assert Agc(clahe=True)(ir).dtype == np.uint8
    for bad in ("fixed:9:1", "fixed:a", "loud"):
        with pytest.raises(InputError):
            Agc(bad)
    with pytest.raises(InputError, match="uint16"):
        Agc()(np.zeros((4, 4), np.uint8))


# -- live pairing ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_live_pairing_9fps_ir_30fps_vis_with_jitter(seed):
    rng = np.random.default_rng(seed)
    vis_t = np.arange(300) / 30 + rng.normal(0, 0.003, 300)
    ir_t = np.sort(np.arange(90) / 9 + rng.normal(0, 0.005, 90))
    tol = 0.5 / 9 * 1.04
    pairer = LivePairer(tol, hold=3.0)
    j = 0
    for k, tv in enumerate(vis_t):
        while j < len(ir_t) and ir_t[j] <= tv:  # frames that have arrived by now
            pairer.offer_ir(Frame(float(ir_t[j]), None, j))
            j += 1
        ir, status, skew = pairer.match(Frame(float(tv), None, k))
        if ir is None:
            assert k < 3 and status == "waiting for IR"
            continue
        assert ir.index == j - 1, "the newest IR frame that has arrived"
        assert skew <= 1 / 9 + 0.03
        assert (status == "") == (skew <= tol)


def test_live_pairer_holds_then_loses_ir():
    p = LivePairer(0.05, hold=1.0)
    p.offer_ir(Frame(0.0, None, 0))
    assert p.match(Frame(0.01, None, 0))[1] == ""
    ir, status, _ = p.match(Frame(0.5, None, 1))
    assert ir is not None and "holding" in status
    ir, status, _ = p.match(Frame(1.5, None, 2))
    assert ir is None and "IR lost" in status
    assert p.report.pairs == 2 and p.report.vis_seen == 3  # the held frame counts as a pair, the lost one not


def test_live_pairer_applies_the_ir_offset():
    p = LivePairer(0.02, hold=1.0, ir_offset=0.5)
    p.offer_ir(Frame(0.0, None, 0))
    assert p.latest.t == 0.5 and p.match(Frame(0.51, None, 0))[1] == ""


# -- watchdog ----------------------------------------------------------------------------------


class StallingIR(Source):
    """A live IR camera at ``fps`` that freezes for ``stall`` s after ``at`` frames (forever if None)."""

    live = True

    def __init__(self, fps=30.0, at=15, stall=1.0, size=(128, 96)):
        self.scene = SyntheticScene(*size, seed=1)
        self.fps, self.at, self.stall, self.size = fps, at, stall, size
        self.name = "stalling IR"

    def frames(self):
        i = 0
        while True:
            if i == self.at:
                if self.stall is None:
                    while True:
                        time.sleep(0.05)
                time.sleep(self.stall)
            time.sleep(1 / self.fps)
            yield Frame(time.monotonic(), self.scene.render_ir(i), i)
            i += 1


class Recorder(NullSink):
    def __init__(self):
        super().__init__()
        self.statuses = []

    def write(self, item: Fused) -> bool:
        self.statuses.append(item.status)
        return True


def test_watchdog_holds_a_stalled_ir_and_recovers():
    sink = Recorder()
    pipe = Pipeline(
        SyntheticSource("vis", 128, 96, fps=30, realtime=True),
        StallingIR(at=15, stall=1.0),
        rtfuse.load_fuser("lut"),
        [sink],
        max_frames=90,
        hold=3.0,
        reconnect_timeout=5.0,
    )
    report = pipe.run()
    assert report.stats.frames_out == 90, "the visible stream keeps the output going during the stall"
    held = [s for s in sink.statuses if "holding the last frame" in s]
    assert len(held) >= 20  # ~1 s at 30 fps
    assert sink.statuses[-1] == "", "back to normal after the IR resumes"
    assert report.stats.counters.get("IR held", 0) == len(held)


def test_watchdog_gives_up_after_the_reconnect_timeout_and_finalises(tmp_path):
    out = tmp_path / "o.mp4"
    pipe = Pipeline(
        SyntheticSource("vis", 128, 96, fps=30, realtime=True),
        StallingIR(at=10, stall=None),
        rtfuse.load_fuser("lut"),
        [VideoSink(out)],
        hold=0.5,
        reconnect_timeout=1.5,
    )
    t0 = time.monotonic()
    with pytest.raises(PipelineError, match="IR source .* delivered no frame for 1.[5-9] s"):
        pipe.run()
    assert time.monotonic() - t0 < 6
    frames, _, _ = read_video(out)
    assert len(frames) >= 40  # 1.5 s at 30 fps, held / visible-only frames included


def test_stalled_visible_source_is_detected(tmp_path):
    class StallingVis(StallingIR):
        def frames(self):
            for f in super().frames():
                yield Frame(f.t, cv2.cvtColor(f.image, cv2.COLOR_GRAY2BGR), f.index)

    pipe = Pipeline(
        StallingVis(at=5, stall=None),
        SyntheticSource("ir", 128, 96, fps=30, realtime=True),
        rtfuse.load_fuser("lut"),
        [NullSink()],
        reconnect_timeout=1.0,
    )
    with pytest.raises(PipelineError, match="visible source .* delivered no frame"):
        pipe.run()


# -- window (composition, keys, snapshots; no display needed) ----------------------------------


def test_window_views_colormaps_snapshots(tmp_path):
    from rtfuse.sinks.window import WindowSink

    scene = SyntheticScene(96, 64, seed=0)
    vis, ir = scene.render(3)
    item = Fused(0.0, 0, rtfuse.load_fuser("lut")(vis, ir), vis, ir, time.monotonic(), "")
    w = WindowSink(save_dir=tmp_path)
    w.hud = False
    assert np.array_equal(w.compose(item), item.fused)
    for key, shape in (("v", (64, 96, 3)), ("i", (64, 96, 3)), ("b", (64, 96, 3)), ("s", (64, 288, 3))):
        assert w.handle_key(ord(key), item, None)
        assert w.compose(item).shape == shape
    w.handle_key(ord("i"), item, None)
    inferno = w.compose(item)
    w.handle_key(ord("c"), item, None)
    assert w.colormap == "jet" and not np.array_equal(w.compose(item), inferno)
    w.handle_key(ord("p"), item, None)
    assert (
        len(list(tmp_path.glob("snapshot_*_fused.png"))) == 1 and len(list(tmp_path.glob("snapshot_*"))) == 3
    )
    w.hud = True
    plain = w.compose(item)
    warned = w.compose(Fused(0.0, 0, item.fused, vis, ir, time.monotonic(), "IR lost for 4.0 s"))
    assert not np.array_equal(plain, warned)
    assert not w.handle_key(ord("q"), item, None) and not w.handle_key(27, item, None)
