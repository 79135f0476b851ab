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


def add_source_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sources")
    g.add_argument("--vis-fps", type=float, help="frame rate of an image-folder visible source (default 30)")
    g.add_argument("--ir-fps", type=float, help="frame rate of an image-folder IR source (default 30)")
    g.add_argument("--ir-offset", type=float, default=0.0, help="seconds added to IR timestamps before pairing")
    g.add_argument("--tolerance-ms", type=float,
                   help="max |t_vis - t_ir| for a pair (default: half the slower stream's frame period)")
    g.add_argument("--ir-agc", default="percentile",
                   help="16-bit IR to 8-bit: percentile | minmax | fixed:LO:HI (default percentile, smoothed)")
    g.add_argument("--clahe", action="store_true", help="add CLAHE local contrast to 16-bit IR after AGC")
    g.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    g.add_argument("--calib", type=Path, help="calibration YAML mapping IR to visible (default: identity)")


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
    vis = open_source(vis_spec, "vis", fps=args.vis_fps, seed=args.seed, count=count, size=size, realtime=realtime)
    ir = open_source(ir_spec, "ir", fps=args.ir_fps, seed=args.seed, count=count, size=size, realtime=realtime)
    calib = load_calibration(args.calib) if args.calib else None
    tol = args.tolerance_ms / 1e3 if args.tolerance_ms is not None else None
    return Pipeline(vis, ir, fuser, sinks, calib=calib, calib_name=str(args.calib or "calibration"),
                    agc=Agc(args.ir_agc, clahe=args.clahe), tolerance=tol, ir_offset=args.ir_offset,
                    max_frames=getattr(args, "max_frames", None), on_frame=on_frame)


def run_and_report(pipe: Pipeline, console: Console, title: str, quiet: bool = False) -> RunReport:
    """Run; print the sources, statistics, pairing notes and outputs (also after a failure)."""
    try:
        report = pipe.run()
    except PipelineError:
        _notes(pipe, console)
        raise
    if not quiet:
        console.print(f"visible: {pipe.vis.describe()} | IR: {pipe.ir.describe()}")
        console.print(report.stats.table(title))
        _notes(pipe, console)
    if report.interrupted:
        console.print("[yellow]interrupted (Ctrl-C); outputs were finalised[/]")
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
