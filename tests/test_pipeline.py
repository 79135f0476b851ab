"""The threaded pipeline end to end on files and synthetic sources."""

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

import rtfuse
from conftest import DATA, REPO, read_video, run_cli, write_video
from rtfuse.errors import PipelineError, SourceError
from rtfuse.pipeline import Pipeline
from rtfuse.sinks.base import NullSink
from rtfuse.sinks.video import VideoSink
from rtfuse.sources import open_source
from rtfuse.synthetic import SyntheticScene

VIDEO = DATA / "video"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Lossless synthetic clips: visible 30 fps (60 frames), IR 9 fps (18 frames), IR 30 fps (45 frames).

    ``vis_avi`` is the visible clip in AVI, whose header declares its frame count (Matroska declares
    only a duration, so rtfuse cannot count the frames it never read from ``vis``)."""
    d = tmp_path_factory.mktemp("clips")
    scene = SyntheticScene(96, 64, seed=4, fps=30)
    vis = [scene.render_vis(i) for i in range(60)]
    ir30 = [scene.render_ir(i) for i in range(45)]
    ir9 = [scene.render_ir(round(i * 30 / 9)) for i in range(18)]
    return {
        "vis": write_video(d / "vis.mkv", vis, 30),
        "vis_avi": write_video(d / "vis.avi", vis, 30),
        "ir30": write_video(d / "ir30.mkv", ir30, 30),
        "ir9": write_video(d / "ir9.mkv", ir9, 9),
        "dir": d,
    }


def visible_accounting(text):
    """The run report's count of every visible frame: fused, or not fused and why (0 when absent)."""
    import re

    def count(pattern):
        m = re.findall(pattern, text)
        assert len(m) <= 1, (pattern, text)
        return int(m[0]) if m else 0

    assert "the rest of the visible stream (length unknown)" not in text, text
    return {
        "fused": count(r"frames out (\d+)"),
        "before IR": count(r"(\d+) visible frame\(s\) before the IR stream starts were not fused"),
        "after IR": count(r"(\d+) visible frame\(s\) after the IR stream ended were not fused"),
        "gap in IR": count(r"(\d+) visible frame\(s\) had no IR frame within the tolerance"),
        "not read": count(r"(\d+) more visible frame\(s\) were not used: the IR stream had ended"),
    }


def test_real_pair_fuses_151_frames_at_30fps(tmp_path):
    if not (VIDEO / "0111_1716_vis.mp4").is_file():
        pytest.skip(f"real video absent under {VIDEO}")
    out = tmp_path / "fused.mp4"
    code, text = run_cli(
        "fuse", "--vis", VIDEO / "0111_1716_vis.mp4", "--ir", VIDEO / "0111_1716_ir.mp4", "-o", out
    )
    assert code == 0, text
    frames, fps, ts = read_video(out)
    assert len(frames) == 151 and fps == 30.0
    np.testing.assert_allclose(ts, np.arange(151) / 30, atol=1e-3)
    import av

    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"


def test_ffv1_output_equals_fuser_on_decoded_inputs(clips, tmp_path):
    out = tmp_path / "fused.mkv"
    code, text = run_cli(
        "fuse",
        "--vis",
        clips["vis_avi"],
        "--ir",
        clips["ir30"],
        "-o",
        out,
        "--codec",
        "ffv1",
        "--backend",
        "lut4d",
        "--no-temporal",  # each frame exactly as the fuser makes it (tests/test_temporal.py: the filter)
    )
    assert code == 0, text
    got, fps, _ = read_video(out)
    vis, _, _ = read_video(clips["vis_avi"])
    ir, _, _ = read_video(clips["ir30"])
    fuser = rtfuse.load_fuser("lut4d")
    assert len(got) == 45 and fps == 30.0  # the overlap: IR has 45 frames
    for k in range(45):
        assert np.array_equal(got[k], fuser(vis[k], cv2.cvtColor(ir[k], cv2.COLOR_BGR2GRAY)))
    # Visible frame 45 (t = 1.5 s) is 1/30 s after the last IR frame (44/30 s), beyond the tolerance
    # (half a period): it is the one frame after the IR's end; the pairing stops there, so the other 14
    # are never taken from the file. 45 + 1 + 14 = the clip's 60 frames.
    acc = visible_accounting(text)
    assert acc == {"fused": 45, "before IR": 0, "after IR": 1, "gap in IR": 0, "not read": 14}, text
    assert sum(acc.values()) == 60


def test_ir_at_9fps_visible_at_30fps(clips, tmp_path):
    out = tmp_path / "fused.mkv"
    args = ("--vis", clips["vis"], "--ir", clips["ir9"], "--codec", "ffv1", "--no-temporal")
    code, text = run_cli("fuse", *args, "-o", out)
    assert code == 0, text
    got, fps, ts = read_video(out)
    vis, _, _ = read_video(clips["vis"])
    ir, _, _ = read_video(clips["ir9"])
    assert fps == 30.0
    # IR covers 0 .. 17/9 s (+ half an IR period): visible frames up to t = 17/9 + 1/18 are fused.
    n = sum(1 for k in range(60) if k / 30 <= 17 / 9 + 0.5 / 9 + 1e-9)
    assert len(got) == n == 59
    # Frame 59 (t = 59/30 s) is past the last IR frame's reach; the visible file was read to its end.
    acc = visible_accounting(text)
    assert acc == {"fused": 59, "before IR": 0, "after IR": 1, "gap in IR": 0, "not read": 0}, text
    assert sum(acc.values()) == 60
    fuser = rtfuse.load_fuser("lut")
    for k in (0, 7, 20, n - 1):
        j = int(np.argmin(np.abs(np.arange(18) / 9 - k / 30)))
        assert np.array_equal(got[k], fuser(vis[k], cv2.cvtColor(ir[j], cv2.COLOR_BGR2GRAY)))
    np.testing.assert_allclose(ts, np.arange(n) / 30, atol=1e-3)


class _FailingFuser:
    def __init__(self, at):
        self.inner, self.at, self.n = rtfuse.load_fuser("lut"), at, 0

    def __call__(self, vis, ir):
        self.n += 1
        if self.n > self.at:
            raise RuntimeError("injected failure")
        return self.inner(vis, ir)


@pytest.mark.parametrize("codec,ext", [("h264", ".mp4"), ("ffv1", ".mkv")])
def test_exception_mid_run_leaves_a_playable_file(clips, tmp_path, codec, ext):
    out = tmp_path / f"fused{ext}"
    pipe = Pipeline(
        open_source(str(clips["vis"]), "vis"),
        open_source(str(clips["ir30"]), "ir"),
        _FailingFuser(20),
        [VideoSink(out, codec=codec)],
    )
    with pytest.raises(PipelineError, match="fusing failed: RuntimeError: injected failure"):
        pipe.run()
    frames, fps, _ = read_video(out)
    assert len(frames) == 20 and fps == 30.0
    assert not list(tmp_path.glob(".*.part"))
    assert any("20 frames" in n for n in pipe.report.sink_notes)


def test_errors_in_a_sink_stop_the_run(clips, tmp_path):
    class Broken(NullSink):
        def write(self, item):
            if item.index == 5:
                raise OSError("disk full")
            return True

    pipe = Pipeline(
        open_source(str(clips["vis"]), "vis"),
        open_source(str(clips["ir30"]), "ir"),
        rtfuse.load_fuser("blend"),
        [Broken()],
    )
    t0 = time.monotonic()
    with pytest.raises(PipelineError, match="writing to null failed: OSError: disk full"):
        pipe.run()
    assert time.monotonic() - t0 < 10


def test_bad_inputs_each_get_their_message(clips, tmp_path):
    (tmp_path / "notes.mp4").write_text("this is not a video\n" * 50)
    empty = tmp_path / "empty.mp4"
    import av

    c = av.open(str(empty), "w")  # an encoder opened and flushed without a single frame
    s = c.add_stream("libx264", rate=30)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    c.start_encoding()
    for p in s.encode():
        c.mux(p)
    c.close()
    assert empty.stat().st_size > 0
    (tmp_path / "zero.mp4").write_bytes(b"")
    calib = tmp_path / "calib.yaml"
    calib.write_text("homography: [[1,0,5],[0,1,0],[0,0,1]]\nir_size: [640, 512]\nvis_size: [96, 64]\n")
    vis = str(clips["vis"])
    cases = [
        (["--vis", tmp_path / "missing.mp4", "--ir", vis], "no such file"),
        (["--vis", vis, "--ir", tmp_path / "notes.mp4"], "not a video file FFmpeg can read"),
        (["--vis", vis, "--ir", empty], "no video stream (a zero-length"),
        (["--vis", vis, "--ir", tmp_path / "zero.mp4"], "zero-length"),
        (["--vis", vis, "--ir", clips["ir30"], "--calib", calib], "made for IR frames of 640x512"),
        (["--vis", vis, "--ir", clips["ir30"], "--calib", tmp_path / "nope.yaml"], "does not exist"),
    ]
    for args, match in cases:
        out = tmp_path / "o.mp4"
        code, text = run_cli("fuse", *args, "-o", out)
        assert code == 1, (args, text)
        assert match in text, (match, text)
        assert "Traceback" not in text
        assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_source_errors_are_raised_before_threads_start(tmp_path):
    with pytest.raises(SourceError, match="holds no images"):
        open_source(str(tmp_path), "vis").open()
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(SourceError, match="single image"):
        open_source(str(tmp_path / "one.png"), "vis").open()
    with pytest.raises(SourceError, match="not a video file"):
        open_source(__file__, "vis").open()


def test_synthetic_run_to_image_folder_and_video(tmp_path):
    code, text = run_cli(
        "run",
        "--vis",
        "synthetic:160x120@30",
        "--ir",
        "synthetic16:160x120@30",
        "--no-display",
        "--max-frames",
        "12",
        "--out",
        tmp_path / "o.mp4",
        "--images-out",
        tmp_path / "imgs",
    )
    assert code == 0, text
    assert len(list((tmp_path / "imgs").glob("fused_*.png"))) == 12
    frames, fps, _ = read_video(tmp_path / "o.mp4")
    assert len(frames) == 12 and fps == 30.0
    assert "frames out 12" in text


def test_image_folder_sources_with_fps(tmp_path):
    scene = SyntheticScene(64, 48, seed=2)
    for d in ("v", "i"):
        (tmp_path / d).mkdir()
    for k in range(10):
        cv2.imwrite(str(tmp_path / "v" / f"f{k}.png"), scene.render_vis(k))
    for k in range(5):  # IR at half the rate: 5 frames cover the same second
        cv2.imwrite(str(tmp_path / "i" / f"f{k}.png"), scene.render_ir16(2 * k))  # 16-bit: AGC path
    pipe = Pipeline(
        open_source(str(tmp_path / "v"), "vis", fps=10),
        open_source(str(tmp_path / "i"), "ir", fps=5),
        rtfuse.load_fuser("lut"),
        [NullSink()],
    )
    report = pipe.run()
    assert report.stats.frames_out == 10
    assert pipe.pairing.ir_unused == 0


def test_a_stop_before_any_frame_is_a_stop_not_a_pairing_error(clips):
    """A stop that lands before the IR's first frame (the pipeline's finish event, as a Ctrl-C sets
    it) leaves that stream empty: the run ends as stopped, not with "the IR stream delivered no
    frames" (which an empty stream without a stop still gets: tests/test_sync.py)."""
    ir = open_source(str(clips["ir30"]), "ir")
    pipe = Pipeline(open_source(str(clips["vis"]), "vis"), ir, rtfuse.load_fuser("lut"), [NullSink()])

    def stopped_before_the_first_frame():
        pipe._finish.set()  # the signal lands while the IR reader waits for its first frame
        return
        yield

    ir.frames = stopped_before_the_first_frame
    pipe.run()
    assert pipe.stats.frames_out == 0 and pipe.pairing.stopped_early and pipe.pairing.ir_seen == 0


def test_ctrl_c_finalises_the_output(tmp_path):
    out = tmp_path / "live.mp4"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtfuse._entry",
            "run",
            "--vis",
            "synthetic:160x120@30",
            "--ir",
            "synthetic:160x120@30",
            "--realtime",
            "--no-display",
            "--out",
            str(out),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    time.sleep(4.0)
    proc.send_signal(signal.SIGINT)
    text = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130, text
    assert "stopped by Ctrl-C; outputs were finalised" in text and "Traceback" not in text
    frames, fps, ts = read_video(out)
    # Live: the file carries the real capture times (frames the encoder could not take are
    # dropped, not delayed), so the average rate is at most the camera's.
    assert len(frames) > 10 and 15.0 <= fps <= 30.5
    assert all(b > a for a, b in zip(ts, ts[1:]))


def test_config_file_sets_options_and_cli_overrides(clips, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"vis: {clips['vis']}\nir: {clips['ir30']}\ncodec: ffv1\nbackend: blend\n")
    out = tmp_path / "o.mkv"
    code, text = run_cli("fuse", "--config", cfg, "-o", out, "--backend", "lut", "--no-temporal")
    assert code == 0, text
    got, _, _ = read_video(out)
    vis, _, _ = read_video(clips["vis"])
    ir, _, _ = read_video(clips["ir30"])
    assert np.array_equal(got[3], rtfuse.load_fuser("lut")(vis[3], cv2.cvtColor(ir[3], cv2.COLOR_BGR2GRAY)))
    cfg.write_text("vis: a\nir: b\nfrobnicate: 3\n")
    code, text = run_cli("fuse", "--config", cfg, "-o", out)
    assert code == 1 and "unknown option 'frobnicate'" in text


def test_bench_json(tmp_path):
    import json

    code, text = run_cli(
        "bench",
        "--sizes",
        "160x120",
        "--backends",
        "lut,blend",
        "--frames",
        "20",
        "--json",
        tmp_path / "b.json",
    )
    assert code == 0, text
    data = json.loads((tmp_path / "b.json").read_text())
    assert [d["backend"] for d in data] == ["lut", "blend"]
    for d in data:
        assert d["frames"]["frames out"] == 20 and d["fps"] > 0
        assert set(d["stages"]) >= {"read vis", "read ir", "pair", "align", "fuse", "sinks"}
        assert 0 <= d["overhead_fraction"] < 1


@pytest.mark.parametrize(
    "gui,env,expected",
    [
        (
            "NONE",
            {"DISPLAY": ":0"},
            (False, "this OpenCV build has no GUI support (opencv-python-headless?)"),
        ),
        ("", {}, (False, "this OpenCV build has no GUI support (opencv-python-headless?)")),
        ("GTK3", {}, (False, "no display (DISPLAY/WAYLAND_DISPLAY unset)")),
        ("QT5", {"WAYLAND_DISPLAY": "wayland-0"}, (True, "")),
        ("GTK3", {"DISPLAY": ":1"}, (True, "")),
    ],
)
def test_has_display_says_why_not(monkeypatch, gui, env, expected):
    """The reason a window is skipped, from OpenCV's build information and the environment."""
    from rtfuse.sinks import window

    info = f"  Video I/O:\n  GUI:                           {gui}\n    GTK+:                        NO\n"
    monkeypatch.setattr(window.cv2, "getBuildInformation", lambda: info)
    monkeypatch.setattr(window.sys, "platform", "linux")
    for k in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert window.has_display() == expected


def test_demo_writes_video_without_display(tmp_path, monkeypatch):
    from rtfuse.sinks.window import has_display

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    for k in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(k, raising=False)
    ok, why = has_display()  # in this environment: headless OpenCV, or no display
    if ok:
        pytest.skip("a window opens here even without DISPLAY (not Linux)")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtfuse.cli",
            "demo",
            "--frames",
            "30",
            "--size",
            "160x120",
            "-o",
            str(tmp_path / "d.mp4"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert f"rtfuse demo: {why}; writing {tmp_path / 'd.mp4'}" in r.stdout + r.stderr, r.stdout + r.stderr
    frames, fps, _ = read_video(tmp_path / "d.mp4")
    assert len(frames) == 30 and fps == 30.0
    assert "UNTRAINED" not in r.stderr  # the shipped default is a trained table
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtfuse.cli",
            "demo",
            "--frames",
            "3",
            "--size",
            "64x48",
            "--weights",
            str(REPO / "rtfuse" / "weights" / "lut3d_untrained.npz"),
            "-o",
            str(tmp_path / "u.mp4"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0 and "uses the UNTRAINED initial LUT" in r.stderr, r.stderr
