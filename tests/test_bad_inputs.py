"""Bad inputs: each gets one clear line before any work, and no input is ever overwritten.

Every case here was reproduced as a defect first (issue 11); docs/bad-inputs.md lists them with
their messages.
"""

import hashlib
import os
import re

import cv2
import numpy as np
import pytest

from conftest import read_video, run_cli, write_video
from rtfuse.synthetic import SyntheticScene


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(text):
    """The error output is a single line (no usage block, no traceback)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert "Traceback" not in text and "usage:" not in text, text
    return lines


@pytest.fixture
def clips(tmp_path):
    scene = SyntheticScene(96, 64, seed=3)
    frames = [scene.render(i) for i in range(12)]
    write_video(tmp_path / "v.mp4", [f[0] for f in frames], 10)
    write_video(tmp_path / "i.mp4", [f[1] for f in frames], 10)
    (tmp_path / "vis").mkdir()
    (tmp_path / "ir").mkdir()
    for k, (vis, ir) in enumerate(frames[:2]):
        cv2.imwrite(str(tmp_path / "vis" / f"p{k}.png"), vis)
        cv2.imwrite(str(tmp_path / "ir" / f"p{k}.png"), ir)
    return tmp_path


# -- 1. an output equal to an input is refused before any work ---------------------------------------
@pytest.mark.parametrize("how", ["same", "dot", "symlink", "ir"])
def test_video_output_equal_to_an_input_is_refused(clips, how):
    before = {p: _digest(clips / p) for p in ("v.mp4", "i.mp4")}
    if how == "symlink":
        os.symlink(clips / "v.mp4", clips / "link.mp4")
    out = {"same": clips / "v.mp4", "dot": "./v.mp4", "symlink": clips / "link.mp4", "ir": clips / "i.mp4"}[
        how
    ]
    code, text = run_cli("fuse", "--vis", "v.mp4", "--ir", clips / "i.mp4", "-o", out, cwd=clips)
    assert code == 1, text
    assert ("is the visible input" if how != "ir" else "is the IR input") in text
    assert len(_one_line(text)) == 1
    assert {p: _digest(clips / p) for p in before} == before
    assert not list(clips.glob(".*.part"))


def test_image_output_equal_to_an_input_is_refused(clips):
    before = _digest(clips / "vis/p0.png"), _digest(clips / "ir/p0.png")
    for out in (clips / "vis/p0.png", clips / "ir/p0.png"):
        code, text = run_cli("fuse", "--vis", clips / "vis/p0.png", "--ir", clips / "ir/p0.png", "-o", out)
        assert code == 1 and "rtfuse never writes over an input" in text, text
    assert (_digest(clips / "vis/p0.png"), _digest(clips / "ir/p0.png")) == before


@pytest.mark.parametrize("side", ["vis", "ir"])
def test_folder_output_equal_to_an_input_folder_is_refused(clips, side):
    names = sorted(p.name for p in (clips / side).iterdir())
    code, text = run_cli("fuse", "--vis", clips / "vis", "--ir", clips / "ir", "-o", clips / side / ".")
    assert code == 1 and "never writes over an input" in text, text
    assert sorted(p.name for p in (clips / side).iterdir()) == names


def test_run_recording_over_an_input_is_refused(clips):
    before = _digest(clips / "v.mp4")
    code, text = run_cli(
        "run", "--vis", clips / "v.mp4", "--ir", clips / "i.mp4", "--no-display", "--out", clips / "v.mp4"
    )
    assert code == 1 and "is the visible input" in text, text
    assert _digest(clips / "v.mp4") == before


# -- 8. one line, before the work ------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        ["eval", "--vis", "{d}/vis", "--ir", "{d}/ir", "--csv", "{d}/missing/m.csv"],
        ["eval", "--vis", "{d}/vis", "--ir", "{d}/ir", "--json", "{d}/v.mp4/m.json"],
        ["bench", "--sizes", "64x64", "--frames", "2", "--json", "{d}/missing/b.json"],
    ],
)
def test_results_into_a_missing_or_unwritable_folder_fail_before_the_work(clips, command):
    code, text = run_cli(*[c.format(d=clips) for c in command])
    assert code == 1, text
    lines = _one_line(text)
    assert len(lines) == 1 and ("does not exist" in text or "is not a folder" in text)
    assert "pairs" not in text and "bench:" not in text  # no metrics table, no benchmark rows: nothing ran


def test_video_output_naming_a_folder_fails_before_the_work(clips):
    (clips / "d.mp4").mkdir()
    code, text = run_cli("fuse", "--vis", clips / "v.mp4", "--ir", clips / "i.mp4", "-o", clips / "d.mp4")
    assert code == 1 and "is a folder" in text, text
    assert len(_one_line(text)) == 1 and not list(clips.rglob("*.part"))


@pytest.mark.parametrize("spec", ["synthetic:8x8", "synthetic:0x0", "synthetic:100000x100000", "synthetic@0"])
def test_impossible_synthetic_sources(spec):
    code, text = run_cli("run", "--vis", spec, "--ir", "synthetic", "--no-display", "--synthetic-frames", "3")
    assert code == 1, text
    assert [ln for ln in _one_line(text) if ln.startswith("rtfuse: error")] and "MiB" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["demo", "--fps", "0"],
        ["bench", "--live", "--rates", "0"],
        ["bench", "--frames", "0"],
        ["run", "--vis", "synthetic", "--ir", "synthetic", "--ir-hold", "-1"],
        ["run", "--vis", "synthetic", "--ir", "synthetic", "--reconnect-timeout", "-1"],
        ["run", "--vis", "synthetic", "--ir", "synthetic", "--cam-buffer", "-1"],
        ["run", "--vis", "synthetic", "--ir", "synthetic", "--vis-fps", "0"],
        ["run", "--vis", "synthetic", "--ir", "synthetic", "--ir-offset", "nan"],
        ["run", "--vis", "synthetic", "--ir", "synthetic", "--ir-agc", "fixed:9:5"],
        ["fuse", "--vis", "a", "--ir", "b", "-o", "c.mp4", "--preset", "fastest"],
        ["fuse", "--vis", "a", "--ir", "b", "-o", "c.mp4", "--crf", "99"],
    ],
)
def test_bad_option_values_get_one_line(args):
    code, text = run_cli(*args)
    assert code in (1, 2), text  # 2: argparse's usage error; 1: refused by the component that owns the value
    lines = _one_line(text)
    assert len(lines) == 1 and "error: " in lines[0], text


def test_bench_checks_every_backend_before_measuring(tmp_path):
    code, text = run_cli("bench", "--sizes", "64x64", "--frames", "3", "--backends", "lut,teacher")
    assert code == 1, text
    assert "teacher" in text and "rtfuse bench: pipeline" not in text  # failed before the lut row
    assert len(_one_line(text)) == 1


# -- 9. messages and paths are printed as they are -------------------------------------------------
def test_paths_with_brackets_and_colons_are_printed_verbatim(clips):
    odd = clips / "br[red]"
    odd.mkdir()
    code, text = run_cli("fuse", "--vis", clips / "v.mp4", "--ir", clips / "i.mp4", "-o", odd / "x[bold].mp4")
    assert code == 0, text
    assert "br[red]/x[bold].mp4" in text
    calib = clips / "c.yaml"
    calib.write_text("homography: [[1,0,0],[0,1,0],[0,0,1]]\nir_size: 7\nvis_size: [96, 64]\n")
    code, text = run_cli(
        "fuse", "--vis", clips / "v.mp4", "--ir", clips / "i.mp4", "-o", clips / "o.mp4", "--calib", calib
    )
    assert code == 1 and "[width, height]" in text, text
    code, text = run_cli("run", "--vis", "synthetic", "--ir", "synthetic16", "--ir-agc", "fixed:100:50")
    assert "fixed:100:50" in text and "💯" not in text


# -- 6. a file mixed with a live source is played on the live clock ----------------------------------
def test_file_with_live_camera_is_played_in_real_time(clips):
    out = clips / "mixed.mp4"
    code, text = run_cli(
        "run",
        "--vis",
        "synthetic:96x64@10",
        "--realtime",
        "--ir",
        clips / "i.mp4",
        "--no-display",
        "--out",
        out,
        timeout=120,
    )
    assert code == 0, text
    assert "played in real time" in text and "no frame for" not in text
    n = int(re.search(r"wrote .* \((\d+) frames", text).group(1))
    assert n >= 8 and len(read_video(out)[0]) == n  # 12 IR frames at 10 fps: about 1.2 s of pairs
    skew = re.search(r"pair skew \|t_vis - t_ir\|\s*│\s*\d+\s*│\s*([\d.]+)", text)
    assert skew and float(skew.group(1)) < 100, text  # ms, on one clock (it was 1,267,895 ms)


# -- 7. every unused frame is reported, on both sides ------------------------------------------------
def test_ir_frames_left_after_the_visible_clip_are_reported(tmp_path):
    scene = SyntheticScene(64, 48, seed=5)
    write_video(tmp_path / "v.mp4", [scene.render_vis(0)], 30)
    write_video(tmp_path / "i.mp4", [scene.render_ir(k) for k in range(40)], 30)
    code, text = run_cli(
        "fuse", "--vis", tmp_path / "v.mp4", "--ir", tmp_path / "i.mp4", "-o", tmp_path / "o.mp4"
    )
    assert code == 0, text
    after = int(re.search(r"(\d+) IR frame\(s\) after the visible stream ended", text).group(1))
    unread = int(
        re.search(r"(\d+) more IR frame\(s\) were not used: the visible stream had ended", text).group(1)
    )
    assert after + unread == 39  # 40 IR frames, one of them fused


def test_visible_frames_left_after_the_ir_clip_are_reported(tmp_path):
    scene = SyntheticScene(64, 48, seed=5)
    write_video(tmp_path / "v.mp4", [scene.render_vis(k) for k in range(30)], 30)
    write_video(tmp_path / "i.mp4", [scene.render_ir(k) for k in range(10)], 30)
    code, text = run_cli(
        "fuse", "--vis", tmp_path / "v.mp4", "--ir", tmp_path / "i.mp4", "-o", tmp_path / "o.mp4"
    )
    assert code == 0, text
    fused = len(read_video(tmp_path / "o.mp4")[0])
    after = int(re.search(r"(\d+) visible frame\(s\) after the IR stream ended", text).group(1))
    unread = re.search(r"(\d+) more visible frame\(s\) were not used: the IR stream had ended", text)
    assert fused + after + (int(unread.group(1)) if unread else 0) == 30, text


# -- 10. the small ones ----------------------------------------------------------------------------
def test_the_statistics_table_is_printed_after_an_error(tmp_path):
    scene = SyntheticScene(64, 48, seed=5)
    (tmp_path / "vis").mkdir()
    (tmp_path / "ir").mkdir()
    for k in range(6):
        vis, ir = scene.render(k)
        cv2.imwrite(str(tmp_path / "vis" / f"{k}.png"), vis)
        cv2.imwrite(str(tmp_path / "ir" / f"{k}.png"), ir if k != 3 else np.zeros((20, 20), np.uint8))
    code, text = run_cli(
        "run", "--vis", tmp_path / "vis", "--ir", tmp_path / "ir", "--no-display", "--out", tmp_path / "o.mp4"
    )
    assert code == 1, text
    assert "median ms" in text and "rtfuse: error" in text and "started at 64x48" in text
    n = int(re.search(r"wrote .* \((\d+) frames", text).group(1))
    assert len(read_video(tmp_path / "o.mp4")[0]) == n


def test_help_shows_required_options_and_camera_options_only_on_run():
    code, text = run_cli("fuse", "--help")
    assert code == 0 and re.search(r"usage: rtfuse fuse \[-h\] --vis VIS --ir IR -o OUTPUT", text), text
    assert "--cam-buffer" not in text and "--ir-hold" not in text
    for cmd in ("demo", "bench"):
        assert "--cam-buffer" not in run_cli(cmd, "--help")[1]
    code, text = run_cli("run", "--help")
    assert "--cam-buffer" in text and re.search(r"--vis SRC --ir SRC", text)


def test_required_options_may_come_from_the_config_file(clips):
    cfg = clips / "c.yaml"
    cfg.write_text(
        f"vis: {clips / 'v.mp4'}\nir: {clips / 'i.mp4'}\noutput: {clips / 'cfg.mp4'}\ncodec: ffv1\n"
    )
    code, text = run_cli("fuse", "--config", cfg)
    assert code == 0, text
    assert "ffv1" in text and (clips / "cfg.mkv").exists() is False and (clips / "cfg.mp4").exists()
    cfg.write_text("vis: a\nir: b\noutput: c.mp4\ncrf: loud\n")
    code, text = run_cli("fuse", "--config", cfg)
    assert code == 2 and f"options from {cfg} included" in text and len(_one_line(text)) == 1


# -- found in review -------------------------------------------------------------------------------
def test_more_ways_an_input_could_be_overwritten_are_refused(clips):
    before = {p: _digest(p) for p in sorted((clips / "vis").iterdir()) + sorted((clips / "ir").iterdir())}
    cases = [
        [
            "run",
            "--vis",
            f"{clips}/vis/*.png",
            "--ir",
            f"{clips}/ir/*.png",
            "--no-display",
            "--images-out",
            clips / "vis",
        ],
        ["eval", "--vis", clips / "vis", "--ir", clips / "ir", "--json", clips / "ir/p0.png"],
        [
            "calibrate",
            "auto",
            "--ir",
            clips / "ir/p0.png",
            "--vis",
            clips / "vis/p0.png",
            "-o",
            clips / "c.yaml",
            "--preview",
            clips / "ir/p0.png",
        ],
        ["fuse", "--vis", clips / ".o.mp4.part", "--ir", clips / "i.mp4", "-o", clips / "o.mp4"],
    ]
    (clips / ".o.mp4.part").write_bytes((clips / "v.mp4").read_bytes())  # a clip someone named so
    for args in cases:
        code, text = run_cli(*args)
        assert code == 1 and "never writes over an input" in text, (args, text)
    assert {p: _digest(p) for p in before} == before
    assert (clips / ".o.mp4.part").read_bytes() == (clips / "v.mp4").read_bytes()


def test_two_outputs_on_one_path_are_refused_before_the_work(clips):
    code, text = run_cli(
        "run",
        "--vis",
        clips / "v.mp4",
        "--ir",
        clips / "i.mp4",
        "--no-display",
        "--out",
        clips / "x.mp4",
        "--images-out",
        clips / "x.mp4",
    )
    assert code == 1 and "are the same path" in text, text
    assert not (clips / "x.mp4").exists()


def test_a_video_whose_name_looks_like_a_glob_is_read_as_a_file(clips):
    odd = clips / "br[red]"
    odd.mkdir()
    (odd / "x[bold].mp4").write_bytes((clips / "v.mp4").read_bytes())
    code, text = run_cli("fuse", "--vis", odd / "x[bold].mp4", "--ir", clips / "i.mp4", "-o", clips / "g.mp4")
    assert code == 0, text
    assert len(read_video(clips / "g.mp4")[0]) == 12


def test_accounting_adds_up_after_a_frame_limit(clips):
    code, text = run_cli(
        "run",
        "--vis",
        clips / "v.mp4",
        "--ir",
        clips / "i.mp4",
        "--no-display",
        "--max-frames",
        "5",
        "--out",
        clips / "m.mp4",
    )
    assert code == 0, text
    n = int(re.search(r"wrote .* \((\d+) frames", text).group(1))
    vis_rest = int(re.search(r"(\d+) more visible frame\(s\) were not used: the run stopped", text).group(1))
    ir_rest = int(re.search(r"(\d+) more IR frame\(s\) were not used: the run stopped", text).group(1))
    assert n == 5 and n + vis_rest == 12 and n + ir_rest == 12, text


def test_a_camera_option_in_a_shared_config_is_skipped_by_fuse(clips):
    cfg = clips / "shared.yaml"
    cfg.write_text("ir-hold: 2\ncam-buffer: 2\ncodec: ffv1\n")
    code, text = run_cli(
        "fuse", "--config", cfg, "--vis", clips / "v.mp4", "--ir", clips / "i.mp4", "-o", clips / "s.mkv"
    )
    assert code == 0, text
    assert "--ir-hold is a camera option of `rtfuse run`" in text and "ffv1" in text


SIGNAL_IN_CLOSE = """
import os, signal, sys
from rtfuse import interrupt
from rtfuse.pipeline import Pipeline
from rtfuse.sinks.video import VideoSink
from rtfuse.synthetic import SyntheticSource
import rtfuse

class SignalledSink(VideoSink):
    def close(self):
        os.kill(os.getpid(), signal.SIGTERM)  # a service manager's stop, landing in the flush
        os.kill(os.getpid(), signal.SIGINT)   # and an impatient second Ctrl-C
        return super().close()

interrupt.install()
out = sys.argv[1]
pipe = Pipeline(SyntheticSource("vis", 96, 64, count=20), SyntheticSource("ir", 96, 64, count=20),
                rtfuse.load_fuser("blend"), [SignalledSink(out)])
report = pipe.run()
print(report.sink_notes[0], report.interrupted)
"""


def test_a_signal_during_the_encoder_flush_does_not_lose_the_recording(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "o.mp4"
    r = subprocess.run(
        [sys.executable, "-c", SIGNAL_IN_CLOSE, str(out)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "wrote" in r.stdout and r.stdout.strip().endswith("True"), r.stdout
    assert len(read_video(out)[0]) == 20 and not list(tmp_path.glob(".*.part"))
