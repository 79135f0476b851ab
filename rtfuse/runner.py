"""Assemble and run a pipeline from command-line options (shared by run, fuse, demo and bench)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from rtfuse.agc import Agc
from rtfuse.align import load_calibration
from rtfuse.errors import PipelineError
from rtfuse.pipeline import Pipeline, RunReport
from rtfuse.sinks.base import Sink
from rtfuse.sources import open_source


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for WxH sizes."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return w, h


def add_source_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sources")
    g.add_argument("--vis-fps", type=float, help="frame rate of an image-folder visible source (default 30), "
                   "or the rate requested from a visible camera")
    g.add_argument("--ir-fps", type=float, help="frame rate of an image-folder IR source (default 30), "
                   "or the rate requested from an IR camera")
    g.add_argument("--ir-offset", type=float, default=0.0, help="seconds added to IR timestamps before pairing")
    g.add_argument("--tolerance-ms", type=float,
                   help="max |t_vis - t_ir| for a pair (default: half the slower stream's frame period)")
    g.add_argument("--ir-agc", default="percentile",
                   help="16-bit IR to 8-bit: percentile | minmax | fixed:LO:HI (default percentile, smoothed)")
    g.add_argument("--clahe", action="store_true", help="add CLAHE local contrast to 16-bit IR after AGC")
    g.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    g.add_argument("--calib", type=Path, help="calibration YAML mapping IR to visible (default: identity)")
    c = p.add_argument_group("cameras")
    c.add_argument("--vis-size", type=size_arg, help="size WxH requested from the visible camera")
    c.add_argument("--ir-size", type=size_arg, help="size WxH requested from the IR camera (needed for Y16)")
    c.add_argument("--vis-fourcc", help="pixel format requested from the visible camera, e.g. MJPG or YUYV")
    c.add_argument("--ir-fourcc", help="pixel format requested from the IR camera; Y16 = raw 16-bit thermal")
    c.add_argument("--cam-buffer", type=int, default=1, help="driver buffer size in frames (default 1: lowest latency)")
    c.add_argument("--ir-hold", type=float, default=3.0,
                   help="seconds a stalled IR keeps its last frame on screen (covers Lepton FFC freezes, default 3)")
    c.add_argument("--reconnect-timeout", type=float, default=10.0,
                   help="seconds without frames before a camera is given up and the run ends (default 10)")


def add_output_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--codec", choices=("h264", "ffv1"), default="h264",
                   help="h264 (yuv420p, default) or ffv1 (lossless; use .mkv or .mp4)")
    g.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast: the encoder sets the pace)")
    g.add_argument("--crf", type=int, default=20, help="x264 quality, 0 (lossless) .. 51 (default 20)")


def video_sink(path: Path, args: argparse.Namespace) -> Sink:
    from rtfuse.sinks.video import VideoSink

    return VideoSink(path, codec=args.codec, preset=args.preset, crf=args.crf)


def build(args: argparse.Namespace, vis_spec: str, ir_spec: str, sinks: list[Sink], fuser, count: int | None = None,
          size: tuple[int, int] = (640, 480), realtime: bool = False, on_frame=None) -> Pipeline:
    common = dict(seed=args.seed, count=count, size=size, realtime=realtime, buffer_size=args.cam_buffer,
                  reconnect_timeout=args.reconnect_timeout)
    vis = open_source(vis_spec, "vis", fps=args.vis_fps, camera_size=args.vis_size, fourcc=args.vis_fourcc, **common)
    ir = open_source(ir_spec, "ir", fps=args.ir_fps, camera_size=args.ir_size, fourcc=args.ir_fourcc, **common)
    calib = load_calibration(args.calib) if args.calib else None
    tol = args.tolerance_ms / 1e3 if args.tolerance_ms is not None else None
    return Pipeline(vis, ir, fuser, sinks, calib=calib, calib_name=str(args.calib or "calibration"),
                    agc=Agc(args.ir_agc, clahe=args.clahe), tolerance=tol, ir_offset=args.ir_offset,
                    max_frames=getattr(args, "max_frames", None), on_frame=on_frame, hold=args.ir_hold,
                    reconnect_timeout=args.reconnect_timeout)


def run_pipeline(pipe: Pipeline, console: Console) -> RunReport:
    """Run; after a failure, still print the pairing notes and what the sinks finalised."""
    try:
        return pipe.run()
    except PipelineError:
        _notes(pipe, console)
        raise


def print_summary(pipe: Pipeline, report: RunReport, console: Console, title: str) -> None:
    """The sources, the statistics table, the pairing notes and the outputs written."""
    console.print(f"visible: {pipe.vis.describe()} | IR: {pipe.ir.describe()}")
    console.print(report.stats.table(title))
    _notes(pipe, console)
    if report.interrupted:
        console.print("[yellow]interrupted (Ctrl-C); outputs were finalised[/]")


def run_and_report(pipe: Pipeline, console: Console, title: str) -> RunReport:
    report = run_pipeline(pipe, console)
    print_summary(pipe, report, console, title)
    return report


def _notes(pipe: Pipeline, console: Console) -> None:
    rep = pipe.pairing
    lines = rep.lines()
    if rep.vis_rest_unread and pipe.vis.frame_count:
        rest = pipe.vis.frame_count - rep.vis_seen
        lines = [ln.replace("(and the rest of the visible stream, not read)", f"(plus {rest} more not read)")
                 for ln in lines]
    for line in lines:
        console.print(f"[yellow]note:[/] {line}")
    report = getattr(pipe, "report", None)
    for note in report.sink_notes if report else []:
        console.print(note)
