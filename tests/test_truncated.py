"""Video files cut short of their declared length: one clear error, or a warning with --allow-truncated."""

import re

import numpy as np
import pytest

from conftest import DATA, read_video, run_cli, write_video
from rtfuse.errors import SourceError
from rtfuse.sources import open_source
from rtfuse.sources.video import VideoFileSource

N = 120  # frames of every generated clip, 30 fps: 4 s


def _frames(seed: int, n: int = N) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def _h264(path, frames, options=None):
    """H.264 (libx264, B-frames) at 30 fps; ``options`` go to the muxer, e.g. movflags."""
    return write_video(path, frames, 30, codec="libx264", options=options)


def _cut(src, dst, share=0.5):
    """The first ``share`` of the bytes: an interrupted copy or download."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("truncated")
    faststart = {"movflags": "+faststart"}
    out = {
        "vis.mp4": _h264(d / "vis.mp4", _frames(1), faststart),
        "ir.mp4": _h264(d / "ir.mp4", _frames(2), faststart),
        "vis.mkv": _h264(d / "vis.mkv", _frames(1)),
        "ir.mkv": _h264(d / "ir.mkv", _frames(2)),
        "moov_last.mp4": _h264(d / "moov_last.mp4", _frames(3)),
        "ffv1.mkv": write_video(d / "ffv1.mkv", _frames(4), 30, codec="ffv1"),
        "ffv1.avi": write_video(d / "ffv1.avi", _frames(5), 30, codec="ffv1"),
    }
    for name in list(out):
        out["cut_" + name] = _cut(out[name], d / ("cut_" + name))
    return out


def _error_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("rtfuse: error:")]


def _written(out: str, path) -> int:
    """The frame count the run reported for its output file."""
    m = re.search(rf"{re.escape(str(path))}\D*?\((\d+) frames", out)
    assert m, out
    return int(m[1])


def test_truncated_ir_mp4_is_an_error_and_the_output_is_finalised(clips, tmp_path):
    out_file = tmp_path / "fused.mp4"
    rc, out = run_cli("fuse", "--vis", clips["vis.mp4"], "--ir", clips["cut_ir.mp4"], "-o", out_file)
    assert rc == 1, out
    assert "Traceback" not in out
    errors = _error_lines(out)
    assert len(errors) == 1, out
    m = re.search(
        r"cut_ir\.mp4: the file is truncated: decoded (\d+) of 120 frames the header declares "
        r"\(([\d.]+) of 4\.0 s\); allow truncated input .*\(--allow-truncated\)$",
        errors[0],
    )
    assert m, errors[0]
    decoded = int(m[1])
    assert 40 < decoded < 80 and abs(float(m[2]) - decoded / 30) < 0.1
    # The frames fused before the error are in a finalised, playable file, as many as reported.
    written = _written(out, out_file)
    frames, fps, _ = read_video(out_file)
    assert len(frames) == written and 0 < written <= decoded and fps == 30


def test_truncated_visible_mkv_is_reported_too(clips, tmp_path):
    """The visible stream drives the pairing; its cut must be found as well (no frame count in MKV)."""
    out_file = tmp_path / "fused.mp4"
    rc, out = run_cli("fuse", "--vis", clips["cut_vis.mkv"], "--ir", clips["ir.mkv"], "-o", out_file)
    assert rc == 1 and "Traceback" not in out, out
    errors = _error_lines(out)
    assert len(errors) == 1, out
    assert re.search(
        r"cut_vis\.mkv: the file is truncated: decoded \d+ frames, [\d.]+ of the 4\.0 s the "
        r"header declares; allow truncated input .*\(--allow-truncated\)$",
        errors[0],
    ), errors[0]
    assert len(read_video(out_file)[0]) == _written(out, out_file) > 0


def test_allow_truncated_warns_and_fuses_the_frames_before_the_cut(clips, tmp_path):
    out_file = tmp_path / "fused.mp4"
    rc, out = run_cli(
        "fuse", "--vis", clips["vis.mp4"], "--ir", clips["cut_ir.mp4"], "-o", out_file, "--allow-truncated"
    )
    assert rc == 0, out
    assert not _error_lines(out)
    m = re.search(
        r"warning: \S*cut_ir\.mp4: the file is truncated: decoded (\d+) of 120 frames the header "
        r"declares \([\d.]+ of 4\.0 s\); used the frames before the cut",
        out,
    )
    assert m, out
    written = _written(out, out_file)
    assert len(read_video(out_file)[0]) == written
    # Every visible frame up to the IR's last one is fused (the next one may still pair with it).
    assert int(m[1]) <= written <= int(m[1]) + 1


def test_mp4_without_its_index_is_one_clear_line(clips, tmp_path):
    """Cut before the 'moov' at its end, an MP4 cannot be opened at all: say why, and no flag helps."""
    rc, out = run_cli(
        "fuse",
        "--vis",
        clips["cut_moov_last.mp4"],
        "--ir",
        clips["ir.mp4"],
        "-o",
        tmp_path / "fused.mp4",
        "--allow-truncated",
    )
    assert rc == 1 and "Traceback" not in out, out
    errors = _error_lines(out)
    assert len(errors) == 1, out
    assert (
        "cut_moov_last.mp4: the MP4/MOV file is truncated or was never finalised: its 'moov' index"
        in errors[0]
    )
    assert "--allow-truncated" not in errors[0]


def test_complete_files_run_clean(clips, tmp_path):
    out_file = tmp_path / "fused.mkv"
    rc, out = run_cli(
        "fuse", "--vis", clips["vis.mkv"], "--ir", clips["ir.mkv"], "-o", out_file, "--codec", "ffv1"
    )
    assert rc == 0, out
    assert "truncated" not in out
    assert len(read_video(out_file)[0]) == _written(out, out_file) == N


def _read_all(path, allow_truncated=True) -> tuple[int, VideoFileSource]:
    src = open_source(str(path), "vis", allow_truncated=allow_truncated)
    with src:
        n = sum(1 for _ in src.frames())
    return n, src


@pytest.mark.parametrize("name", ["cut_ffv1.mkv", "cut_ffv1.avi", "cut_vis.mp4", "cut_vis.mkv"])
def test_cut_files_of_each_container_are_detected(clips, name):
    n, src = _read_all(clips[name])
    assert 30 < n < 90
    assert len(src.warnings) == 1 and "the file is truncated: decoded" in src.warnings[0], src.warnings
    assert src.frame_count == n  # the real length, for the run's accounting
    with pytest.raises(SourceError, match=r"the file is truncated: decoded \d+ .*allow truncated input") as e:
        _read_all(clips[name], allow_truncated=False)
    assert e.value.option == "allow_truncated"  # the CLI names its flag: --allow-truncated


@pytest.mark.parametrize(
    "codec, container",
    [
        ("libx264", "mp4"),
        ("libx264", "mkv"),
        ("libx264", "mov"),
        ("libx264", "avi"),
        ("ffv1", "mp4"),
        ("ffv1", "mkv"),
        ("ffv1", "avi"),
    ],
)
def test_complete_files_are_not_flagged(tmp_path, codec, container):
    """At 29.97 fps, whose timestamps do not round evenly (FFV1 cannot go into MOV)."""
    path = write_video(tmp_path / f"clip.{container}", _frames(6, 45), 30000 / 1001, codec=codec)
    n, src = _read_all(path, allow_truncated=False)
    assert n == 45 and src.warnings == []


def test_the_real_clip_is_not_flagged():
    path = DATA / "video" / "0111_1716_vis.mp4"
    if not path.is_file():
        pytest.skip(f"real data {path} is absent (set RTFUSE_DATA to the shared data folder)")
    n, src = _read_all(path, allow_truncated=False)
    assert n == 151 and src.warnings == []
