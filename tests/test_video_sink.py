"""The video file sink: odd sizes, frame rate and count in every container, output checks before any
work, no ``.part`` file left by any path, and an idempotent close. Real PyAV/FFmpeg and OpenCV."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import REPO, read_video, run_cli, write_video
from rtfuse.errors import RtfuseError
from rtfuse.sinks.base import Fused
from rtfuse.sinks.video import VideoSink
from rtfuse.synthetic import SyntheticScene

COMBOS = [
    (".mp4", "h264"),
    (".mp4", "ffv1"),
    (".mkv", "h264"),
    (".mkv", "ffv1"),
    (".mov", "h264"),
    (".avi", "h264"),
    (".avi", "ffv1"),
]


def _item(t: float, img: np.ndarray, i: int = 0) -> Fused:
    return Fused(t, i, img, img, img[..., 0])


def _write(path, frames, times, codec="h264", fps=None) -> VideoSink:
    sink = VideoSink(path, codec=codec)
    h, w = frames[0].shape[:2]
    sink.open((w, h), fps)
    for i, (img, t) in enumerate(zip(frames, times)):
        sink.write(_item(t, img, i))
    return sink


def _pyav(path):
    """(average fps, frames in the header or 0, decoded frames as BGR, pts in seconds)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return (
            float(s.average_rate),
            s.frames,
            [f.to_ndarray(format="bgr24") for f in frames],
            [float(f.pts * f.time_base) for f in frames],
        )


def _opencv(path):
    cap = cv2.VideoCapture(str(path))
    try:
        return cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part"))


# -- 1. odd sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".avi"])
def test_odd_size_h264_is_padded_by_repeating_the_last_row_and_column(tmp_path, ext):
    img = np.zeros((329, 501, 3), np.uint8)
    img[-1], img[:, -1] = 200, 100  # a last row and column unlike their neighbours
    out = tmp_path / f"o{ext}"
    summary = _write(out, [img] * 5, [i / 25 for i in range(5)], fps=25).close()
    assert summary.splitlines() == [
        f"wrote {out} (5 frames, h264)",
        (
            "note: 501x329 is odd; H.264 yuv420p needs even sizes, so the video is 502x330 (last row and column "
            "repeated); the FFV1 codec keeps the exact size"
        ),
    ]
    _, _, frames, _ = _pyav(out)
    assert len(frames) == 5 and frames[0].shape == (330, 502, 3)
    f = frames[-1].astype(int)
    assert abs(f[329, :500].mean() - 200) < 12 and abs(f[:328, 501].mean() - 100) < 12  # repeated, lossy
    assert f[:320, :490].mean() < 8  # the picture itself is unchanged
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize("ext", [".mkv", ".avi", ".mp4"])
def test_odd_size_ffv1_keeps_the_exact_size_and_pixels(tmp_path, rng, ext):
    frames = [rng.integers(0, 256, (329, 501, 3), dtype=np.uint8) for _ in range(3)]
    out = tmp_path / f"o{ext}"
    assert (
        _write(out, frames, [0, 0.04, 0.08], codec="ffv1", fps=25).close() == f"wrote {out} (3 frames, ffv1)"
    )
    _, _, got, _ = _pyav(out)
    assert len(got) == 3 and all(np.array_equal(a, b) for a, b in zip(got, frames))


def test_odd_size_note_reaches_the_cli(tmp_path):
    scene = SyntheticScene(500, 329, seed=2, fps=22)
    vis = write_video(tmp_path / "vis.mkv", [scene.render_vis(i) for i in range(12)], 22)
    ir = write_video(tmp_path / "ir.mkv", [scene.render_ir(i) for i in range(12)], 22)
    code, text = run_cli("fuse", "--vis", vis, "--ir", ir, "-o", tmp_path / "out.mp4")
    assert code == 0, text
    assert (
        "note: 500x329 is odd; H.264 yuv420p needs even sizes, so the video is 500x330 (last row repeated); "
        "the FFV1 codec keeps the exact size"
    ) in text
    _, _, frames, _ = _pyav(tmp_path / "out.mp4")
    assert len(frames) == 12 and frames[0].shape == (330, 500, 3)
    code, text = run_cli("fuse", "--vis", vis, "--ir", ir, "-o", tmp_path / "out.mkv", "--codec", "ffv1")
    assert code == 0 and "is odd" not in text, text
    _, _, frames, _ = _pyav(tmp_path / "out.mkv")
    assert len(frames) == 12 and frames[0].shape == (329, 500, 3)


# -- 2. frame rate and count in every container -------------------------------------------------


@pytest.mark.parametrize("fps", [22, 30000 / 1001, 25], ids=["22", "29.97", "25"])
@pytest.mark.parametrize("ext,codec", COMBOS)
def test_rate_and_frame_count_as_pyav_and_opencv_read_them(tmp_path, ext, codec, fps):
    n = 205
    img = np.zeros((48, 64, 3), np.uint8)
    frames = [np.roll(img + np.uint8(i % 200), i, axis=1) for i in range(n)]
    times = [round(i / fps, 3) for i in range(n)]  # as an input container rounds them, to ms
    out = tmp_path / f"o{ext}"
    _write(out, frames, times, codec=codec, fps=fps).close()
    rate, header_frames, decoded, ts = _pyav(out)
    cv_fps, cv_count = _opencv(out)
    assert len(decoded) == n and header_frames in (0, n)  # Matroska states no count
    assert abs(rate - fps) < 0.01 and abs(cv_fps - fps) < 0.01, (rate, cv_fps)
    assert cv_count == n
    np.testing.assert_allclose(np.diff(ts), 1 / fps, atol=1.5e-3)
    # FFmpeg guesses H.264 pts in AVI (no pts there) one frame late; elsewhere the first frame is at 0.
    assert ts[0] == pytest.approx(1 / fps if (ext, codec) == (".avi", "h264") else 0, abs=1e-3)


def test_avi_stores_frames_back_to_back_and_its_header_counts_them(tmp_path, rng):
    """A live run drops frames: AVI has no timestamps, so the header must count what is stored."""
    fps = 25
    slots = [0, 1, 2, 3, 5, 6, 7, 7, 9, 30]  # 4 dropped, 7 twice, a long stall before 30
    times = [s / fps + d for s, d in zip(slots, rng.uniform(-0.3, 0.3, len(slots)) / fps)]
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in slots]
    out = tmp_path / "o.avi"
    sink = _write(out, frames, times, codec="ffv1", fps=fps)
    summary = sink.close()
    _, _, got, ts = _pyav(out)
    assert [round(t * fps) for t in ts] == list(range(len(slots)))  # never a pts twice, no holes
    assert all(np.array_equal(a, b) for a, b in zip(got, frames))
    assert _opencv(out) == (fps, len(slots))  # the header's count is the frames stored
    assert "stores no timestamps" in summary


def test_low_or_missing_fps_does_not_break_the_encoder(tmp_path):
    for i, fps in enumerate([0.0, math.nan, 1e-9]):
        out = tmp_path / f"o{i}.mp4"
        _write(out, [np.zeros((48, 64, 3), np.uint8)] * 2, [0, 1], fps=fps).close()
        assert len(_pyav(out)[2]) == 2
    assert not _leftovers(tmp_path)


# -- 3. output checks before any work -----------------------------------------------------------


def test_unusable_outputs_fail_at_construction_naming_the_path(tmp_path):
    (tmp_path / "d.mp4").mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (tmp_path / "d.mp4", {}, f"{tmp_path / 'd.mp4'}: is a folder; give a file name for the video"),
        (tmp_path / "file.txt" / "o.mp4", {}, f"{tmp_path / 'file.txt'}: is not a folder"),
        (
            tmp_path / "missing" / "o.mp4",
            {},
            f"{tmp_path / 'missing'}: the folder for the video does not exist",
        ),
        (
            tmp_path / "o.mov",
            {"codec": "ffv1"},
            f"{tmp_path / 'o.mov'}: a .mov file cannot hold FFV1; use .mkv, .avi or .mp4 for FFV1",
        ),
        (tmp_path / "o.mp4", {"preset": "veryfastt"}, "'veryfastt' is not an x264 preset; choose one of"),
    ]
    for path, kw, msg in cases:
        with pytest.raises(RtfuseError) as e:
            VideoSink(path, **kw)
        assert msg in str(e.value), (path, str(e.value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.mp4", "file.txt"]


def test_a_folder_where_writing_really_fails(tmp_path):
    # Tests run as root, where os.access and chmod do not stop writes; sysfs refuses new files to
    # everyone. Without root, a folder without write permission is tested as well.
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(RtfuseError, match=f"^{re.escape(str(ro))}: cannot write the video there"):
            VideoSink(ro / "out.mp4")
    try:
        os.close(os.open("/sys/rtfuse-probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except OSError:
        pass
    else:
        os.unlink("/sys/rtfuse-probe")
        pytest.skip("/sys takes new files here")
    with pytest.raises(RtfuseError, match=r"^/sys: cannot write the video there \("):
        VideoSink("/sys/out.mp4")


def test_cli_refuses_a_folder_as_output_before_fusing(tmp_path):
    scene = SyntheticScene(64, 48, seed=3, fps=30)
    vis = write_video(tmp_path / "vis.mkv", [scene.render_vis(i) for i in range(30)], 30)
    ir = write_video(tmp_path / "ir.mkv", [scene.render_ir(i) for i in range(30)], 30)
    (tmp_path / "d.mp4").mkdir()
    code, text = run_cli("fuse", "--vis", vis, "--ir", ir, "-o", tmp_path / "d.mp4")
    assert code == 1 and f"{tmp_path / 'd.mp4'}: is a folder; give a file name for the video" in text, text
    assert "frames out" not in text and "Traceback" not in text  # nothing was fused
    assert not list((tmp_path / "d.mp4").iterdir()) and not _leftovers(tmp_path)


# -- 4. .part files -----------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_stale_part_of_a_killed_run_is_kept_if_it_plays_else_removed(tmp_path, ext):
    out = tmp_path / f"rec{ext}"
    part = tmp_path / f".rec{ext}.part"
    cmd = [
        sys.executable,
        "-m",
        "rtfuse._entry",
        "run",
        "--vis",
        "synthetic:64x48@30",
        "--ir",
        "synthetic16:64x48@30",
        "--no-display",
        "--realtime",
        "--codec",
        "ffv1",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (part.exists() and part.stat().st_size > 20000) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        # While it runs, a second run on the same output is refused: the partial file is locked.
        code, text = run_cli(
            "run",
            "--vis",
            "synthetic:64x48@30",
            "--ir",
            "synthetic16:64x48@30",
            "--no-display",
            "--max-frames",
            "5",
            "--out",
            out,
        )
        assert code == 1 and "another rtfuse process is writing this output" in text, text
    finally:
        proc.send_signal(signal.SIGKILL)  # nothing can be finalised
        proc.wait(30)
    assert part.exists() and not out.exists()
    playable = _decodable(part)
    code, text = run_cli(
        "run",
        "--vis",
        "synthetic:64x48@30",
        "--ir",
        "synthetic16:64x48@30",
        "--no-display",
        "--max-frames",
        "5",
        "--out",
        out,
    )
    assert code == 0, text
    assert not part.exists() and len(_pyav(out)[2]) == 5
    if playable:  # MKV keeps what was muxed; an MP4 without its index keeps nothing
        kept = tmp_path / f"rec.interrupted{ext}"
        assert f"note: kept the {playable} playable frames of an interrupted recording as {kept}" in text
        assert len(_pyav(kept)[2]) == playable
    else:
        assert f"note: removed an unplayable partial file {part} left by an interrupted run" in text
    assert ext == ".mp4" or playable > 0


def _decodable(path: Path) -> int:
    from rtfuse.sinks.video import _decodable_frames

    return _decodable_frames(path)


def test_encoder_open_failure_leaves_no_part(tmp_path):
    for name, codec in (("o.mp4", "h264"), ("o.mkv", "ffv1")):
        sink = VideoSink(tmp_path / name, codec=codec)
        with pytest.raises(RtfuseError, match=f"{tmp_path / name}: cannot open the video encoder"):
            sink.open((0, 0), 25)  # refused by avcodec_open2, now at open and not at the first frame
        assert sink.close() == f"{tmp_path / name}: not written"
    assert not list(tmp_path.iterdir())


# A subprocess with a file-size limit (RLIMIT_FSIZE, honoured for root too) makes the disk refuse
# writes: past ``before`` frames for the remaining writes ("write"), or only for close ("flush").
_FSIZE_SCRIPT = r"""
import json, os, resource, signal, sys
import numpy as np
from rtfuse.errors import RtfuseError
from rtfuse.sinks.base import Fused
from rtfuse.sinks.video import VideoSink

path, codec, before, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, writes fail with EFBIG instead of killing us
rng = np.random.default_rng(0)
sink = VideoSink(path, codec=codec)
sink.open((160, 120), 25)

def frame(i):
    img = rng.integers(0, 256, (120, 160, 3), np.uint8)
    return Fused(i / 25, i, img, img, img[..., 0])

for i in range(before):
    sink.write(frame(i))
tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.part")
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(tmp) + 1000, resource.RLIM_INFINITY))
out = {}
if mode == "write":
    try:
        for i in range(before, before + 100):
            sink.write(frame(i))
    except RtfuseError as e:
        out["write_error"] = str(e)
try:
    out["close"] = sink.close()
except RtfuseError as e:
    out["close_error"] = str(e)
out["close_again"] = sink.close()
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    "name,codec,before,mode,kept",
    [
        ("o.mp4", "h264", 0, "write", False),  # no moov without the trailer: nothing playable
        ("o.mkv", "ffv1", 150, "write", True),  # the clusters on disk still play
        ("o.avi", "h264", 60, "flush", True),  # x264's delayed frames fail to mux at close
        ("o.mp4", "h264", 3, "flush", False),
    ],
)
def test_disk_refusing_writes_leaves_a_playable_file_or_none(tmp_path, name, codec, before, mode, kept):
    out = tmp_path / name
    r = subprocess.run(
        [sys.executable, "-c", _FSIZE_SCRIPT, str(out), codec, str(before), mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[-1])
    if mode == "write":
        assert res["write_error"] == f"{out}: writing the video failed (File too large)"
    msg = res["close_error"]
    assert res["close_again"] == msg  # a second close answers the same, without raising
    assert not _leftovers(tmp_path)
    assert msg.startswith(f"{out}: finalising the video failed (File too large); ")
    if kept:
        m = re.search(r"; kept the (\d+) playable frames of the (\d+) written$", msg)
        assert m and 0 < int(m[1]) <= int(m[2]), msg
        assert len(_pyav(out)[2]) == int(m[1])
        cap = cv2.VideoCapture(str(out))
        assert cap.read()[0]
    else:
        assert msg.endswith("nothing playable was written, so the partial file was removed")
        assert not out.exists()


def test_rename_failure_keeps_the_recording_under_another_name(tmp_path):
    out = tmp_path / "o.mkv"
    sink = _write(out, [np.zeros((48, 64, 3), np.uint8)] * 3, [0, 0.04, 0.08], codec="ffv1", fps=25)
    (out / "x").mkdir(parents=True)  # a folder appears where the video goes
    rescue = tmp_path / "o.recovered.mkv"
    msg = f"{out}: cannot move the finished video into place (Is a directory); its 3 frames are in {rescue}"
    with pytest.raises(RtfuseError) as e:
        sink.close()
    assert str(e.value) == msg and sink.close() == msg
    assert len(read_video(rescue)[0]) == 3
    assert not list(tmp_path.glob(".*.part"))


# -- 5. close ----------------------------------------------------------------------------------


def test_close_is_idempotent(tmp_path):
    out = tmp_path / "o.mp4"
    sink = _write(out, [np.zeros((48, 64, 3), np.uint8)] * 4, [0, 0.04, 0.08, 0.12], fps=25)
    first = sink.close()
    assert first == f"wrote {out} (4 frames, h264)" and sink.close() == first
    never_opened = VideoSink(tmp_path / "n.mp4")
    assert never_opened.close() == never_opened.close() == f"{tmp_path / 'n.mp4'}: not written"
    empty = VideoSink(tmp_path / "e.mp4")
    empty.open((64, 48), 25)
    assert empty.close() == empty.close() == f"{tmp_path / 'e.mp4'}: not written (no frames)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]
