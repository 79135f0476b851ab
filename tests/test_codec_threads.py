"""Codec threads: the setting reaches FFmpeg's codec contexts (and x264), outputs stay complete, and
`rtfuse batch` runs codecs on one thread each when it has a worker per core. No timing asserts."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import run_cli, write_video
from rtfuse.batch import codec_threads_for, worker_options
from rtfuse.errors import RtfuseError
from rtfuse.runner import CODEC_THREADS, build, codec_threads, kernel_threads, video_sink
from rtfuse.sinks.base import Fused
from rtfuse.sinks.video import VideoSink
from rtfuse.sources.video import VideoFileSource

N = 12
SIZE = (96, 64)


def _frames(n: int = N, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8)
    return [np.roll(base, 4 * k, axis=1) for k in range(n)]


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _encode(path: Path, threads: int, codec: str = "h264") -> VideoSink:
    sink = VideoSink(path, codec=codec, threads=threads)
    sink.open(SIZE, 30.0)
    for k, img in enumerate(_frames()):
        sink.write(Fused(k / 30, k, img, img, img[..., 0]))
    return sink


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


@pytest.mark.parametrize("codec", ["h264", "ffv1"])
@pytest.mark.parametrize("threads", [0, 1, 3])
def test_sink_threads_reach_the_encoder_and_every_frame_is_written(tmp_path, codec, threads):
    out = tmp_path / "out.mkv"
    sink = _encode(out, threads, codec)
    ctx = sink._stream.codec_context
    if threads:  # 0: FFmpeg's automatic choice, which it may resolve to a count when it opens the codec
        assert ctx.thread_count == threads
    if threads == 1:
        assert ctx.thread_type == av.codec.context.ThreadType.SLICE  # no frame threading
    else:  # x264's own choice, frame threads (PyAV alone would ask for slices)
        assert ctx.thread_type == av.codec.context.ThreadType.AUTO
    sink.close()
    assert len(_decoded(out)) == N


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
def test_one_thread_really_starts_no_x264_or_decoder_threads(tmp_path):
    """The count reaches x264 and the decoder themselves: they start no thread pool of their own."""
    src = write_video(tmp_path / "in.mkv", _frames(), 30)
    before = _os_threads()
    sink = _encode(tmp_path / "out.mp4", 1)
    source = VideoFileSource(src, threads=1).open()
    assert _os_threads() == before
    source.close()
    sink.close()
    if (os.cpu_count() or 1) > 1:  # the automatic choice does start threads on a multi-core machine
        auto = _encode(tmp_path / "auto.mp4", 0)
        assert _os_threads() > before
        auto.close()


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_source_threads_reach_the_decoder_and_frames_are_identical(tmp_path, threads):
    src = write_video(tmp_path / "in.mp4", _frames(), 30, codec="libx264")
    reference = _decoded(src)
    source = VideoFileSource(src, threads=threads).open()
    ctx = source._stream.codec_context
    if threads:
        assert ctx.thread_count == threads
    else:
        assert ctx.thread_type == av.codec.context.ThreadType.AUTO  # frame and slice threads, as before
    if threads == 1:
        assert ctx.thread_type == av.codec.context.ThreadType.SLICE
    got = [f.image for f in source.frames()]
    source.close()
    assert len(got) == len(reference) == N
    assert all(np.array_equal(a, b) for a, b in zip(got, reference))


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_thread_counts_are_refused_before_any_work(tmp_path, bad):
    with pytest.raises(RtfuseError, match="codec threads"):
        VideoSink(tmp_path / "out.mp4", threads=bad)
    with pytest.raises(RtfuseError, match="codec threads"):
        VideoFileSource(tmp_path / "in.mp4", threads=bad)


def test_options_reach_the_sink_and_both_decoders(tmp_path):
    vis = write_video(tmp_path / "v.mkv", _frames(), 30)
    ir = write_video(tmp_path / "i.mkv", _frames(seed=1), 30)
    args = argparse.Namespace(
        codec="h264", preset="veryfast", crf=20, calib=None, ir_agc="percentile", clahe=False, codec_threads=1
    )
    sink = video_sink(tmp_path / "out.mp4", args)
    pipe = build(args, str(vis), str(ir), [sink], lambda v, i: v)
    assert sink.threads == pipe.vis.threads == pipe.ir.threads == 1
    args.codec_threads = None  # not given: the single-pipeline default
    assert codec_threads(args) == CODEC_THREADS
    del args.codec_threads  # commands without the option (run, demo)
    assert codec_threads(args) == CODEC_THREADS


@pytest.mark.parametrize(
    ("workers", "cores", "threads"),
    [(2, 2, 1), (4, 2, 1), (16, 16, 1), (3, 4, 1), (2, 4, 1), (2, 8, 2), (2, 16, 4), (4, 64, 8)],
)
def test_batch_gives_one_codec_thread_when_workers_fill_the_cores(workers, cores, threads):
    assert codec_threads_for(workers, cores) == threads


@pytest.mark.parametrize("cores", [1, 2, 16])
def test_one_batch_worker_uses_the_fuse_default(cores):
    assert codec_threads_for(1, cores) == CODEC_THREADS


def test_batch_worker_options(monkeypatch):
    monkeypatch.setattr("rtfuse.cpu.available_cores", lambda: 2)
    assert worker_options({"crf": 20}, 2)["codec_threads"] == 1
    assert worker_options({"codec_threads": None}, 2)["codec_threads"] == 1
    assert worker_options({"codec_threads": 0}, 2)["codec_threads"] == 0  # the user's choice stands
    monkeypatch.setattr("rtfuse.cpu.available_cores", lambda: 64)
    assert worker_options({}, 4)["codec_threads"] == 8
    assert worker_options({}, 4, "local")["codec_threads"] == 8  # a local Ray with 4 CPUs
    assert worker_options({}, 1)["codec_threads"] == CODEC_THREADS
    assert worker_options({}, 4, "auto")["codec_threads"] == 1  # a cluster: Ray runs a task per CPU


def test_cli_codec_threads(tmp_path):
    vis = write_video(tmp_path / "v.mkv", _frames(), 30)
    ir = write_video(tmp_path / "i.mkv", _frames(seed=1), 30)
    code, text = run_cli("fuse", "--vis", vis, "--ir", ir, "-o", tmp_path / "f.mp4", "--codec-threads", "1")
    assert code == 0, text
    assert len(_decoded(tmp_path / "f.mp4")) == N
    code, text = run_cli("fuse", "--vis", vis, "--ir", ir, "-o", tmp_path / "g.mp4", "--codec-threads", "-1")
    assert code == 2 and "--codec-threads" in text
    archive = tmp_path / "archive"
    archive.mkdir()
    write_video(archive / "a_vis.mkv", _frames(), 30)
    write_video(archive / "a_ir.mkv", _frames(seed=1), 30)
    code, text = run_cli("batch", archive, "-o", tmp_path / "fused", "--workers", "1", "--codec-threads", "1")
    assert code == 0, text
    assert len(_decoded(tmp_path / "fused" / "a.mp4")) == N


@pytest.mark.parametrize(("given", "cores", "expected"), [(None, 2, 1), (0, 2, 1), (0, 16, 4), (3, 2, 3)])
def test_kernel_threads_for_a_video_output(monkeypatch, given, cores, expected):
    monkeypatch.setattr("rtfuse.cpu.available_cores", lambda: cores)
    assert kernel_threads(argparse.Namespace(kernel_threads=given)) == expected
    if given is None:
        assert kernel_threads(argparse.Namespace()) == expected  # commands without the option


def test_kernel_threads_limit_only_the_fusion_worker(tmp_path):
    import numba

    vis = write_video(tmp_path / "v.mkv", _frames(), 30)
    ir = write_video(tmp_path / "i.mkv", _frames(seed=1), 30)
    args = argparse.Namespace(
        codec="ffv1", preset="veryfast", crf=20, calib=None, ir_agc="percentile", clahe=False
    )
    seen: list[int] = []

    def fuser(v: np.ndarray, i: np.ndarray) -> np.ndarray:
        seen.append(numba.get_num_threads())
        return v

    before = numba.get_num_threads()
    for k, want in ((1, 1), (None, numba.config.NUMBA_NUM_THREADS), (10_000, numba.config.NUMBA_NUM_THREADS)):
        seen.clear()
        sink = video_sink(tmp_path / f"out{k}.mkv", args)
        build(args, str(vis), str(ir), [sink], fuser, kernel_threads=k).run()
        assert seen == [want] * N
    assert numba.get_num_threads() == before  # the caller's thread keeps its setting


def test_cli_kernel_threads(tmp_path):
    vis = write_video(tmp_path / "v.mkv", _frames(), 30)
    ir = write_video(tmp_path / "i.mkv", _frames(seed=1), 30)
    code, text = run_cli("fuse", "--vis", vis, "--ir", ir, "-o", tmp_path / "f.mp4", "--kernel-threads", "2")
    assert code == 0, text
    assert len(_decoded(tmp_path / "f.mp4")) == N
    code, text = run_cli("fuse", "--vis", vis, "--ir", ir, "-o", tmp_path / "g.mp4", "--kernel-threads", "-1")
    assert code == 2 and "--kernel-threads" in text
