"""Assemble and run a pipeline from command-line options (shared by run, fuse, demo and bench)."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Callable, ContextManager

from rich.console import Console

from rtfuse import interrupt
from rtfuse.agc import Agc
from rtfuse.align import load_calibration
from rtfuse.argtypes import COUNT, FINITE, FPS, NON_NEGATIVE, POSITIVE, number, size_arg
from rtfuse.errors import PipelineError
from rtfuse.messages import note, warning
from rtfuse.pipeline import Pipeline, RunReport
from rtfuse.sinks.base import Sink
from rtfuse.sources import open_source
from rtfuse.sources.base import DEFAULT_FPS
from rtfuse.stage import FusionStage
from rtfuse.vissharpen import MAX_AMOUNT, MAX_SIGMA, SIGMA, VisSharpener

# Camera defaults: one definition, used by the options and by commands that have no camera options.
CAMERA_DEFAULTS = {
    "cam_buffer": 1,  # frames in the driver's queue: 1 gives the lowest latency
    "ir_hold": 3.0,  # seconds a stalled IR is held: covers a Lepton's flat-field-correction freeze
    "reconnect_timeout": 10.0,  # seconds without frames before a camera is given up
    "vis_size": None,
    "ir_size": None,
    "vis_fourcc": None,
    "ir_fourcc": None,
}


# Threads of each video decoder and of the encoder for one pipeline alone on the machine (`rtfuse fuse`,
# `run`): 0 lets FFmpeg and x264 choose. `rtfuse batch` sizes them per worker (batch.codec_threads_for).
CODEC_THREADS = 0

# Share of the cores for the fusion kernels' Numba threads when a pipeline writes a video (`--kernel-threads
# 0`): the two decoders and the encoder run at the same time and need the rest (docs/scaling.md).
KERNEL_CORE_SHARE = 4  # one kernel thread per this many cores, at least one

# Source defaults, for commands without the source options (demo): the same values as the options'.
SOURCE_DEFAULTS = {
    "vis_fps": None,
    "ir_fps": None,
    "ir_offset": 0.0,
    "tolerance_ms": None,
    "seed": 0,
    "allow_truncated": False,
}


def add_source_args(p: argparse.ArgumentParser) -> None:
    """How recorded or synthetic streams are read and paired (every command that reads two streams)."""
    g = p.add_argument_group("sources")
    g.add_argument(
        "--vis-fps",
        type=FPS,
        help=f"frame rate of an image-folder visible source (default {DEFAULT_FPS:g}), "
        "or the rate requested from a visible camera",
    )
    g.add_argument(
        "--ir-fps",
        type=FPS,
        help=f"frame rate of an image-folder IR source (default {DEFAULT_FPS:g}), "
        "or the rate requested from an IR camera",
    )
    g.add_argument(
        "--ir-offset",
        type=FINITE,
        default=SOURCE_DEFAULTS["ir_offset"],
        help="seconds added to IR timestamps before pairing",
    )
    g.add_argument(
        "--tolerance-ms",
        type=POSITIVE,
        help="max |t_vis - t_ir| for a pair (default: half the slower stream's frame period)",
    )
    g.add_argument("--seed", type=int, default=SOURCE_DEFAULTS["seed"], help="synthetic scene seed")
    g.add_argument(
        "--allow-truncated",
        action="store_true",
        help="accept a video file cut short of the length its header declares (a warning, not an error)",
    )


def add_stage_args(p: argparse.ArgumentParser) -> None:
    """How a pair is prepared before fusion: the same for videos, cameras and stills (:mod:`rtfuse.stage`)."""
    g = p.add_argument_group("alignment, IR and visible")
    g.add_argument("--calib", type=Path, help="calibration YAML mapping IR to visible (default: identity)")
    g.add_argument(
        "--ir-agc",
        default="percentile",
        type=_agc_arg,
        help="16-bit IR to 8-bit: percentile | minmax | fixed:LO:HI (default percentile, smoothed)",
    )
    g.add_argument("--clahe", action="store_true", help="add CLAHE local contrast to 16-bit IR after AGC")
    g.add_argument(
        "--ir-clean",
        action="store_true",
        help="destripe and denoise the IR after AGC, before alignment (thermal cores with column/row "
        "stripe noise); the stripe estimate improves over a stream's frames",
    )
    g.add_argument(
        "--vis-sharpen",
        type=number(0.0, MAX_AMOUNT),
        default=0.0,
        metavar="AMOUNT",
        help="sharpen a soft or defocused visible image before fusion by this amount (1-2 for a soft "
        "lens, more for defocus; detail below twice the frame's noise is left alone; default 0: off; "
        "docs/vis-sharpen.md)",
    )
    g.add_argument(
        "--vis-sharpen-sigma",
        type=number(0.0, MAX_SIGMA, lo_open=True),
        default=SIGMA,
        metavar="PX",
        help=f"the blur radius --vis-sharpen undoes, in visible pixels (default {SIGMA:g})",
    )
    g.add_argument(
        "--no-temporal",
        action="store_true",
        help="videos and cameras: fuse every frame on its own, without steadying the fused luma over "
        "time (by default small frame-to-frame changes, i.e. noise, are averaged; docs/flicker.md)",
    )


def make_stage(args: argparse.Namespace, fuser, resize_ir: bool = True) -> FusionStage:
    """The fusion stage the options describe: ``--calib``, ``--ir-agc``, ``--clahe``, ``--ir-clean``,
    ``--vis-sharpen``, ``--no-temporal`` (the temporal filter is on unless that is given; stills
    reset it)."""
    calib = load_calibration(args.calib) if args.calib else None
    ir_clean = temporal = vis_sharpen = None
    if getattr(args, "vis_sharpen", 0.0) > 0:
        vis_sharpen = VisSharpener(args.vis_sharpen, getattr(args, "vis_sharpen_sigma", SIGMA))
    if getattr(args, "ir_clean", False):
        from rtfuse.irclean import IrCleaner

        ir_clean = IrCleaner()
    if fuser is not None and not getattr(args, "no_temporal", False):
        from rtfuse.temporal import TemporalFilter

        temporal = TemporalFilter()
    return FusionStage(
        fuser,
        calib=calib,
        agc=Agc(args.ir_agc, clahe=args.clahe),
        calib_name=str(args.calib or "calibration"),
        resize_ir=resize_ir,
        ir_clean=ir_clean,
        vis_sharpen=vis_sharpen,
        temporal=temporal,
    )


def add_camera_args(p: argparse.ArgumentParser) -> None:
    """Options only live cameras read (``rtfuse run``)."""
    d = CAMERA_DEFAULTS
    c = p.add_argument_group("cameras")
    c.add_argument("--vis-size", type=size_arg, help="size WxH requested from the visible camera")
    c.add_argument("--ir-size", type=size_arg, help="size WxH requested from the IR camera (needed for Y16)")
    c.add_argument("--vis-fourcc", help="pixel format requested from the visible camera, e.g. MJPG or YUYV")
    c.add_argument("--ir-fourcc", help="pixel format requested from the IR camera; Y16 = raw 16-bit thermal")
    c.add_argument(
        "--cam-buffer",
        type=COUNT,
        default=d["cam_buffer"],
        help=f"driver buffer size in frames (default {d['cam_buffer']}: lowest latency)",
    )
    c.add_argument(
        "--ir-hold",
        type=NON_NEGATIVE,
        default=d["ir_hold"],
        help=f"seconds a stalled IR keeps its last frame on screen (covers Lepton FFC freezes, "
        f"default {d['ir_hold']:g})",
    )
    c.add_argument(
        "--reconnect-timeout",
        type=POSITIVE,
        default=d["reconnect_timeout"],
        help=f"seconds without frames before a camera is given up and the run ends "
        f"(default {d['reconnect_timeout']:g})",
    )


def _agc_arg(text: str) -> str:
    """argparse type: an AGC mode the Agc class accepts (checked now, not at the first 16-bit frame)."""
    try:
        Agc(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument(
        "--codec",
        choices=("h264", "ffv1"),
        default="h264",
        help="h264 (yuv420p, default) or ffv1 (lossless; use .mkv or .mp4)",
    )
    g.add_argument(
        "--preset", default="veryfast", help="x264 preset (default veryfast: the encoder sets the pace)"
    )
    g.add_argument("--crf", type=int, default=20, help="x264 quality, 0 (lossless) .. 51 (default 20)")


def codec_threads(args: argparse.Namespace) -> int:
    """The decoders' and the encoder's threads: ``--codec-threads``, else :data:`CODEC_THREADS`."""
    n = getattr(args, "codec_threads", None)
    return CODEC_THREADS if n is None else n


def kernel_threads(args: argparse.Namespace) -> int:
    """Numba threads of the fusion kernels for a video output: ``--kernel-threads``, or with 0 or
    none given one per :data:`KERNEL_CORE_SHARE` cores of this process, at least 1."""
    from rtfuse import cpu

    n = getattr(args, "kernel_threads", None) or 0
    return n if n > 0 else max(1, cpu.available_cores() // KERNEL_CORE_SHARE)


def video_sink(path: Path, args: argparse.Namespace, console: Console | None = None) -> Sink:
    """The video file sink; its checks run now, before any work. With ``console``, its notes so far
    (a stale partial file removed) are printed now; later ones come with its close summary."""
    from rtfuse.sinks.video import VideoSink

    sink = VideoSink(path, codec=args.codec, preset=args.preset, crf=args.crf, threads=codec_threads(args))
    if console is not None:
        for line in sink.take_notes():
            note(console, line)
    return sink


def clip_options(args: argparse.Namespace) -> dict:
    """How two clips are read and paired, from the source options (defaults for commands without
    them): the keyword arguments of :func:`rtfuse.evaluate.evaluate_video`, which :func:`build`
    reads the same way. ``tolerance`` is in seconds."""
    src = {k: getattr(args, k, v) for k, v in SOURCE_DEFAULTS.items()}
    return {
        "vis_fps": src["vis_fps"],
        "ir_fps": src["ir_fps"],
        "tolerance": src["tolerance_ms"] / 1e3 if src["tolerance_ms"] is not None else None,
        "ir_offset": src["ir_offset"],
        "allow_truncated": src["allow_truncated"],
    }


def build(
    args: argparse.Namespace,
    vis_spec: str,
    ir_spec: str,
    sinks: list[Sink],
    fuser,
    count: int | None = None,
    size: tuple[int, int] = (640, 480),
    realtime: bool = False,
    on_frame=None,
    kernel_threads: int | None = None,
) -> Pipeline:
    cam = {k: getattr(args, k, v) for k, v in CAMERA_DEFAULTS.items()}
    src = {k: getattr(args, k, v) for k, v in SOURCE_DEFAULTS.items()}
    common = dict(
        seed=src["seed"],
        count=count,
        size=size,
        realtime=realtime,
        buffer_size=cam["cam_buffer"],
        reconnect_timeout=cam["reconnect_timeout"],
        allow_truncated=src["allow_truncated"],
        threads=codec_threads(args),
    )
    vis = open_source(
        vis_spec, "vis", fps=src["vis_fps"], camera_size=cam["vis_size"], fourcc=cam["vis_fourcc"], **common
    )
    ir = open_source(
        ir_spec, "ir", fps=src["ir_fps"], camera_size=cam["ir_size"], fourcc=cam["ir_fourcc"], **common
    )
    clip = clip_options(args)
    return Pipeline(
        vis,
        ir,
        make_stage(args, fuser),
        sinks,
        tolerance=clip["tolerance"],
        ir_offset=clip["ir_offset"],
        max_frames=getattr(args, "max_frames", None),
        on_frame=on_frame,
        hold=cam["ir_hold"],
        reconnect_timeout=cam["reconnect_timeout"],
        kernel_threads=kernel_threads,
    )


def run_and_report(
    pipe: Pipeline,
    console: Console,
    title: str,
    display: ContextManager | None = None,
    on_end: Callable[[RunReport], None] | None = None,
) -> RunReport:
    """Run ``pipe`` (inside ``display``, e.g. a progress bar) and print its summary.

    The summary (sources, statistics table, every frame not fused, the outputs finalised) is
    printed after every run: one that ended, was stopped by a signal, or failed (the error is
    re-raised after it, for the one-line message).
    """
    for line in pipe.notes:
        note(console, line)
    failure: PipelineError | None = None
    with interrupt.cooperative():  # a signal during the summary must not cut it short either
        with display or contextlib.nullcontext():
            try:
                report = pipe.run()
            except PipelineError as e:
                failure, report = e, pipe.report
            if on_end is not None:
                on_end(report)
        print_summary(pipe, report, console, title)
    if failure is not None:
        raise failure
    return report


def print_summary(pipe: Pipeline, report: RunReport, console: Console, title: str) -> None:
    """The sources, the statistics table, the pairing notes and the outputs written."""
    console.print(f"visible: {pipe.vis.describe()} | IR: {pipe.ir.describe()}")
    console.print(report.stats.table(title))
    for line in pipe.pairing.lines():
        note(console, line)
    for src in (pipe.vis, pipe.ir):  # a file cut short, accepted with --allow-truncated
        for line in src.warnings:
            warning(console, line)
    for line in report.sink_notes:
        console.print(line)
    if report.interrupted:
        console.print(f"stopped by {interrupt.name()}; outputs were finalised", style="yellow")
