"""The ``rtfuse`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rtfuse.calib.commands import add_parser as add_calibrate_parser
from rtfuse.errors import RtfuseError
from rtfuse.fusion.lutfile import KINDS
from rtfuse.runner import add_output_args, add_source_args, size_arg
from rtfuse.sinks.window import KEYS_HELP

def _number(lo: float, hi: float = float("inf"), lo_open: bool = False):
    """argparse type: a float within [lo, hi] (or (lo, hi] with ``lo_open``), else one clear message."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (v > lo if lo_open else v >= lo) or v > hi:
            where = f"{'above' if lo_open else 'at least'} {lo:g}" + (f" and at most {hi:g}" if hi < float("inf") else "")
            raise argparse.ArgumentTypeError(f"{text} must be {where}")
        return v

    return parse


POSITIVE, NON_NEGATIVE, SHARE = _number(0.0, lo_open=True), _number(0.0), _number(0.0, 1.0)

# Wide enough for the statistics tables when the output goes to a file or a pipe.
console = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    from rtfuse.fusion.registry import BACKENDS

    p.add_argument("--backend", default="lut", choices=BACKENDS, help="fusion backend (default: lut)")
    p.add_argument("--weights", "--lut", dest="weights", type=Path,
                   help="a LUT .npz (lut backends) or network .pt (student, teacher) instead of the shipped one")


def _fuser(args: argparse.Namespace):
    from rtfuse.fusion.registry import load_fuser

    return load_fuser(args.backend, path=args.weights)


def cmd_fuse(args: argparse.Namespace) -> int:
    from rtfuse.images import IMAGE_EXTS
    from rtfuse.stills import fuse_folder, fuse_pair

    vis, ir = Path(args.vis), Path(args.ir)
    for p in (vis, ir):
        if not p.exists():
            raise RtfuseError(f"{p}: no such file or directory")
    if vis.is_dir() != ir.is_dir():
        raise RtfuseError("--vis and --ir must both be files or both be folders")
    fuser = _fuser(args)
    if vis.is_dir():
        report = fuse_folder(vis, ir, Path(args.output), fuser, ext=args.ext, resize_ir=args.resize_ir, console=console)
        return 1 if report.failed else 0
    if vis.suffix.lower() in IMAGE_EXTS and ir.suffix.lower() in IMAGE_EXTS:
        fuse_pair(vis, ir, Path(args.output), fuser, resize_ir=args.resize_ir)
        console.print(f"wrote {args.output}")
        return 0
    return _fuse_videos(args, fuser)


def _fuse_videos(args: argparse.Namespace, fuser) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from rtfuse.runner import build, print_summary, run_pipeline, video_sink

    sink = video_sink(Path(args.output), args)
    pipe = build(args, args.vis, args.ir, [sink], fuser)
    pipe.vis.open()  # fail early, before the progress bar, and learn the frame count
    pipe.ir.open()
    columns = (TextColumn("fusing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("fuse", total=pipe.vis.frame_count, fps="")
        t0 = time.perf_counter()

        def on_frame(n: int) -> None:
            if n % 10 == 0:
                progress.update(task, completed=n, fps=f"{n / (time.perf_counter() - t0):.0f} fps")

        pipe.on_frame = on_frame
        report = run_pipeline(pipe, console)
        progress.update(task, completed=report.stats.frames_out)
    print_summary(pipe, report, console, "rtfuse fuse")
    return 130 if report.interrupted else 0


def cmd_run(args: argparse.Namespace) -> int:
    from rtfuse.runner import build, run_and_report, video_sink
    from rtfuse.sinks.window import WindowSink, has_display

    sinks = []
    if args.out:
        sinks.append(video_sink(Path(args.out), args))
    if args.images_out:
        from rtfuse.sinks.folder import ImageFolderSink

        sinks.append(ImageFolderSink(args.images_out))
    if not args.no_display:
        ok, why = has_display()
        if ok:
            sinks.append(WindowSink(save_dir=args.save_dir, codec=args.codec))
        else:
            console.print(f"[yellow]note:[/] window skipped: {why}")
    if not sinks:
        from rtfuse.sinks.base import NullSink

        console.print("[yellow]note:[/] no output: pass --out FILE.mp4 or --images-out DIR to keep the result")
        sinks.append(NullSink())
    pipe = build(args, args.vis, args.ir, sinks, _fuser(args), count=args.synthetic_frames, size=args.size,
                 realtime=args.realtime)
    report = run_and_report(pipe, console, "rtfuse run")
    return 130 if report.interrupted else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rtfuse.runner import build, run_and_report, video_sink
    from rtfuse.sinks.window import WindowSink, has_display

    ok, why = has_display()
    if ok and not args.no_display:
        sinks = [WindowSink("rtfuse demo")]
        console.print("rtfuse demo: synthetic scene in a window (keys: f v i s h, q quits)")
    else:
        sinks = [video_sink(Path(args.output), args)]
        console.print(f"rtfuse demo: {why or 'display disabled'}; writing {args.output}")
    fuser = _fuser(args)
    model = getattr(fuser, "model", None)
    if model is not None and model.untrained:
        console.print(f"[yellow]note:[/] backend {args.backend} uses the UNTRAINED initial LUT")
    spec = f"synthetic:{args.size[0]}x{args.size[1]}@{args.fps:g}"
    pipe = build(args, spec, spec, sinks, fuser, count=args.frames, realtime=ok and not args.no_display)
    report = run_and_report(pipe, console, "rtfuse demo")
    return 130 if report.interrupted else 0


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from rtfuse.fusion.registry import SHIPPED_LUTS, load_fuser
    from rtfuse.runner import build
    from rtfuse.sinks.base import NullSink

    if args.live:
        return _bench_live(args)
    given = args.vis is not None or args.ir is not None
    if given and (args.vis is None or args.ir is None):
        raise RtfuseError("bench takes both --vis and --ir, or neither (synthetic scenes)")
    sizes = [None] if given else args.sizes
    results = []
    table = Table(title="rtfuse bench: pipeline with the null sink")
    for col in ("input", "backend", "frames", "fps", "read vis", "read ir", "align", "fuse", "overhead"):
        table.add_column(col, justify="left" if col in ("input", "backend") else "right")
    for size in sizes:
        for backend in args.backends:
            takes_weights = backend in SHIPPED_LUTS or backend == "teacher"
            fuser = load_fuser(backend, path=args.weights if takes_weights else None)
            if given:
                vis_spec, ir_spec, label = args.vis, args.ir, f"{Path(args.vis).name} + {Path(args.ir).name}"
            else:
                vis_spec = ir_spec = f"synthetic:{size[0]}x{size[1]}@30"
                label = f"synthetic {size[0]}x{size[1]}"
            # Warm-up pass: JIT caches, first-touch allocations, decoder start-up.
            warm = build(args, vis_spec, ir_spec, [NullSink()], fuser, count=5)
            warm.max_frames = 5
            warm.run()
            pipe = build(args, vis_spec, ir_spec, [NullSink()], fuser, count=args.frames)
            pipe.max_frames = args.frames
            stats = pipe.run().stats
            d = stats.to_dict()
            ms = {k: v["median_ms"] for k, v in d["stages"].items()}
            table.add_row(label, backend, str(stats.frames_out), f"{stats.fps:.0f}",
                          *(f"{ms.get(k, float('nan')):.2f} ms" for k in ("read vis", "read ir", "align", "fuse")),
                          f"{100 * stats.overhead_fraction():.1f} %")
            results.append({"input": label, "backend": backend, **d})
    console.print(table)
    console.print("overhead: time the pipeline threads spend outside stages and blocked waits "
                  "(queue hand-offs, copies, bookkeeping), as a share of the sum of stage times")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        console.print(f"wrote {args.json}")
    return 0


def _rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _bench_live(args: argparse.Namespace) -> int:
    import json

    from rtfuse.fusion.registry import load_fuser
    from rtfuse.runner import build
    from rtfuse.sinks.base import NullSink
    from rtfuse.synthetic import SyntheticScene

    w, h = args.sizes[0]
    fuser = load_fuser(args.backends[0], path=args.weights)
    fuser(*SyntheticScene(w, h).render(0))  # compile / warm up before timing
    table = Table(title=f"rtfuse bench --live: synthetic cameras {w}x{h}, backend {args.backends[0]}, null sink")
    for col in ("camera fps", "frames", "out fps", "latency median", "latency p95", "budget", "vis dropped",
                "IR superseded", "RSS start", "RSS @1000", "RSS end"):
        table.add_column(col, justify="right")
    results = []
    for rate in args.rates:
        spec = f"synthetic:{w}x{h}@{rate:g}"
        pipe = build(args, spec, spec, [NullSink()], fuser, realtime=True)
        pipe.max_frames = args.frames
        rss_at: dict[int, float] = {}
        pipe.on_frame = lambda n: rss_at.setdefault(n, _rss_mb()) if n % 1000 == 0 else None
        rss0 = _rss_mb()
        stats = pipe.run().stats
        rss1 = _rss_mb()
        d = stats.to_dict()
        budget = 1e3 / rate + d["stages"]["fuse"]["median_ms"]
        c = stats.counters
        table.add_row(f"{rate:g}", str(stats.frames_out), f"{stats.fps:.1f}", f"{d['latency']['median_ms']:.1f} ms",
                      f"{d['latency']['p95_ms']:.1f} ms", f"{budget:.1f} ms",
                      str(c.get("dropped vis", 0) + c.get("dropped out", 0)), str(c.get("dropped ir", 0)),
                      f"{rss0:.0f} MB", f"{rss_at.get(1000, float('nan')):.0f} MB", f"{rss1:.0f} MB")
        results.append({"camera_fps": rate, "size": [w, h], "budget_ms": budget, "rss_start_mb": rss0,
                        "rss_mb_every_1000": rss_at, "rss_end_mb": rss1, **d})
    console.print(table)
    console.print("latency: capture timestamp to fused frame ready for display; budget: one visible frame "
                  "period + the median fusion time; IR superseded: IR frames replaced by a newer one before any "
                  "visible frame needed them (latest-frame-wins)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        console.print(f"wrote {args.json}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from rtfuse.evaluate import evaluate_folder, table, write

    fuser = None
    if args.fused is None:
        fuser = _fuser(args)
    with Progress(console=console, transient=True) as progress:
        rows = evaluate_folder(Path(args.vis), Path(args.ir), args.fused, fuser, args.reference, progress, args.split)
    what = str(args.fused) if args.fused else f"backend {args.backend}" + (f" ({args.weights})" if args.weights else "")
    Console(highlight=False, width=200).print(table(rows, f"rtfuse eval: {what} on {len(rows) - 1} pairs", args.per_image))
    write(rows, args.csv, args.json)
    for p in (args.csv, args.json):
        if p:
            console.print(f"wrote {p}")
    return 0


def _torch_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _train_config(args: argparse.Namespace):
    from rtfuse.training.train import TrainConfig

    _torch_threads(args)
    device = args.device
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise RtfuseError("--device cuda: no CUDA device is available to torch here")
    return TrainConfig(data=str(args.data), out=str(args.out), steps=args.steps, batch=args.batch, crop=args.crop,
                       lr=args.lr, seed=args.seed, device=device, detail=args.detail, detail_edges=args.detail_edges,
                       base_weight=args.base_weight, base_sigma=args.base_sigma, init=str(args.init or ""),
                       dark=args.dark, ir_dark=args.ir_dark, ship=str(getattr(args, "ship", "") or ""), teacher=str(getattr(args, "teacher", "") or ""))


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from rtfuse.training.train import train_teacher

    train_teacher(_train_config(args), console)
    return 0


def cmd_distill_student(args: argparse.Namespace) -> int:
    from rtfuse.training.train import distill_student

    distill_student(_train_config(args), console)
    return 0


def cmd_distill_lut(args: argparse.Namespace) -> int:
    from rtfuse.training.lutfit import LutFitConfig, fit_lut

    _torch_threads(args)
    fit_lut(LutFitConfig(teacher=str(args.teacher), data=[str(d) for d in args.data], out=str(args.output), kind=args.kind,
                         init=str(args.init or ""), steps=args.steps, batch=args.batch, crop=args.crop,
                         bank=args.bank, dark=args.dark, ir_dark=args.ir_dark, w_grad=args.grad_weight, detail=args.detail, ctx_bins=args.context_bins, seed=args.seed,
                         ckpt=str(args.ckpt or "")), console)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    return args.calib_func(args, console)


def cmd_lut_info(args: argparse.Namespace) -> int:
    from rtfuse.fusion.lutfile import load_lut

    m = load_lut(args.file)
    t = Table(title=str(args.file), show_header=False)
    t.add_row("kind", m.kind)
    t.add_row("state", "[bold red]UNTRAINED[/] initial LUT" if m.untrained else "trained")
    t.add_row("table", " x ".join(f"{a}[{n}]" for a, n in zip(m.axes, m.table.shape)))
    t.add_row("ranges", ", ".join(f"{a} {lo:g}..{hi:g}" for a, (lo, hi) in zip(m.axes, m.ranges)))
    t.add_row("context net", f"stride {m.ctx_stride}, layers " + " -> ".join(str(tuple(w.shape)) for w, _ in m.ctx_layers))
    for k, v in sorted(m.meta.items()):
        t.add_row(f"meta.{k}", str(v))
    Console(highlight=False).print(t)
    return 0


def cmd_lut_init(args: argparse.Namespace) -> int:
    from rtfuse.fusion.initial import analytic_lut
    from rtfuse.fusion.lutfile import save_lut

    save_lut(args.output, analytic_lut(args.kind))
    console.print(f"wrote {args.output} (analytic {args.kind} LUT, labelled UNTRAINED)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtfuse",
        description="Real-time infrared + visible fusion. Each command has its own --help.",
    )
    from rtfuse import __version__

    parser.add_argument("--version", action="version", version=f"rtfuse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "fuse",
        help="fuse two videos, an image pair, or two folders of images paired by file stem",
        description="Fuse --vis and --ir into -o. Video files: every visible frame in the overlap is fused, "
        "with the IR frame nearest in time, into a video (H.264 or FFV1), keeping the visible frame rate "
        "and timestamps. Image files: one pair. Folders: every pair sharing a file stem; unpaired or "
        "unreadable files are reported.",
    )
    p.add_argument("--vis", required=True, help="visible video, image file or folder")
    p.add_argument("--ir", required=True, help="infrared video, image file or folder (colour IR is converted to gray)")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4/.mkv/...), image file, or folder")
    p.add_argument("--ext", default=".png", help="output extension in folder mode (default .png)")
    p.add_argument("--resize-ir", action="store_true", help="stills: resize IR to the visible size when they differ")
    _add_backend_args(p)
    add_source_args(p)
    add_output_args(p)
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser(
        "run",
        help="live or file fusion: capture, pair, align, fuse, show and/or record",
        description="SRC is a camera (/dev/video1, an index, or an rtsp:// URL), a video file, an image folder "
        "or glob, or synthetic[16][:WxH][@FPS]. Live sources are paired by capture time; a stalled IR camera "
        "keeps its last frame for --ir-hold seconds and is reopened with back-off until --reconnect-timeout. "
        f"Window {KEYS_HELP}.",
    )
    p.add_argument("--vis", required=True, metavar="SRC", help="visible source")
    p.add_argument("--ir", required=True, metavar="SRC", help="infrared source")
    p.add_argument("--out", type=Path, help="record the fused stream to this video file")
    p.add_argument("--images-out", type=Path, help="write every fused frame as an image into this folder")
    p.add_argument("--no-display", action="store_true", help="no window")
    p.add_argument("--save-dir", type=Path, default=Path("."), help="where window snapshots and recordings go")
    p.add_argument("--max-frames", type=int, help="stop after this many fused frames")
    p.add_argument("--size", type=size_arg, default=(640, 480), help="synthetic sources: frame size (default 640x480)")
    p.add_argument("--synthetic-frames", type=int, help="synthetic sources: number of frames (default endless)")
    p.add_argument("--realtime", action="store_true", help="synthetic sources: pace frames at their fps")
    _add_backend_args(p)
    add_source_args(p)
    add_output_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="fuse a synthetic scene through the full pipeline (no camera or data needed)",
                       description="Synthetic visible + IR through the whole pipeline. Opens a window when a "
                       "display exists, otherwise writes demo_fused.mp4; prints the statistics.")
    p.add_argument("--size", type=size_arg, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--frames", type=int, default=300, help="frames to fuse (default 300)")
    p.add_argument("--fps", type=float, default=30.0, help="scene frame rate (default 30)")
    p.add_argument("--no-display", action="store_true", help="write the video even when a display exists")
    p.add_argument("-o", "--output", default="demo_fused.mp4", help="video written without a display")
    _add_backend_args(p)
    add_source_args(p)
    add_output_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="FPS harness: the pipeline with the null sink over sizes and backends",
                       description="Runs capture -> pair -> align -> fuse with the null sink on synthetic scenes "
                       "(or on --vis/--ir) and reports per-stage median ms, end-to-end fps and pipeline overhead.")
    p.add_argument("--vis", metavar="SRC", help="visible source instead of synthetic scenes")
    p.add_argument("--ir", metavar="SRC", help="infrared source instead of synthetic scenes")
    p.add_argument("--sizes", type=lambda s: [size_arg(v) for v in s.split(",")],
                   default=[(640, 480), (1280, 720), (1920, 1080)], help="comma-separated WxH list")
    p.add_argument("--backends", type=lambda s: s.split(","), default=["lut", "lut3d", "blend"],
                   help="comma-separated backends (default lut,lut3d,blend; lut is the 4d-detail table)")
    p.add_argument("--frames", type=int, default=300, help="frames per configuration (default 300)")
    p.add_argument("--live", action="store_true",
                   help="latency mode: real-time synthetic cameras at --rates, latest-frame-wins, RSS at start/end "
                   "(uses the first of --sizes and --backends)")
    p.add_argument("--rates", type=lambda s: [float(v) for v in s.split(",")], default=[30.0, 60.0],
                   help="camera frame rates for --live (default 30,60)")
    p.add_argument("--weights", "--lut", dest="weights", type=Path, help="LUT .npz or network .pt for the backends")
    p.add_argument("--json", type=Path, help="also write machine-readable results here")
    add_source_args(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("eval", help="fusion metrics (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, CC, PSNR) over pairs",
                       description="Metrics as the evaluator shared by recent papers computes them (see "
                       "rtfuse/metrics.py). Pairs are matched by file stem; fused images come from --fused or "
                       "are made with --backend. Also reports the visible-colour error (chroma) and, with "
                       "--reference, PSNR against reference images (e.g. a teacher's outputs).")
    p.add_argument("--vis", required=True, type=Path, help="folder of visible images")
    p.add_argument("--ir", required=True, type=Path, help="folder of infrared images")
    p.add_argument("--fused", type=Path, help="folder of fused images to score (else --backend fuses them)")
    p.add_argument("--reference", type=Path, help="folder of reference images for PSNR")
    p.add_argument("--per-image", action="store_true", help="print every image, not only the mean")
    p.add_argument("--split", choices=("all", "train", "heldout"), default="all",
                   help="score only the fixed training or held-out split of the pairs (as used by rtfuse train)")
    p.add_argument("--csv", type=Path, help="write all rows as CSV")
    p.add_argument("--json", type=Path, help="write all rows as JSON")
    _add_backend_args(p)
    p.set_defaults(func=cmd_eval)

    def training_args(q: argparse.ArgumentParser, steps: int, out: str) -> None:
        q.add_argument("--data", type=Path, default=Path("../shared/data/roadscene"),
                       help="folder with vis/ and ir/ registered pairs (a fixed 20 %% is held out)")
        q.add_argument("--out", type=Path, default=Path(out), help="run folder: last.pt (resumable) and the result")
        q.add_argument("--steps", type=int, default=steps, help=f"optimiser steps (default {steps})")
        q.add_argument("--batch", type=int, default=8)
        q.add_argument("--crop", type=int, default=128, help="square crop size (default 128)")
        q.add_argument("--lr", type=POSITIVE, default=5e-4)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--detail", type=POSITIVE, default=1.3,
                       help="gradient target = detail x the stronger source gradient (default 1.3)")
        q.add_argument("--detail-edges", type=NON_NEGATIVE, default=0.0,
                       help="apply --detail only where the stronger source's Sobel |Gx|+|Gy| (0..8) exceeds this")
        q.add_argument("--base-weight", type=NON_NEGATIVE, default=0.0,
                       help="weight of an L1 between the output's and the per-pixel max's base layers (Gaussian "
                       "sigma --base-sigma): keeps region intensities a function of the sources (default 0)")
        q.add_argument("--base-sigma", type=POSITIVE, default=4.0, help="Gaussian sigma of that base layer (default 4)")
        q.add_argument("--dark", type=SHARE, default=0.0,
                       help="share of crops with the visible darkened (gain 0.1-0.6), for night scenes (default 0)")
        q.add_argument("--ir-dark", type=SHARE, default=0.0,
                       help="share of crops with the IR darkened (gain 0.2-0.7), for cold scenes (default 0)")
        q.add_argument("--init", type=Path, metavar="CKPT",
                       help="start from this checkpoint's weights with a fresh optimiser and schedule "
                       "(fine-tuning); ignored when --out already holds last.pt, which resumes")
        q.add_argument("--device", default="cpu", help="cpu or cuda")
        q.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")

    p = sub.add_parser("train", help="train the fusion teacher (needs the torch extra)")
    tsub = p.add_subparsers(dest="train_command", required=True, metavar="MODEL")
    q = tsub.add_parser("teacher", help="unsupervised fusion teacher (~3 M parameters, degradation-conditioned)",
                        description="Trains on random crops of the training split with the fusion losses (SSIM to "
                        "both sources, L1 to the max intensity, L1 to the (detail x) max Sobel gradient, CbCr L1). "
                        "Re-running with the same --out resumes from last.pt.")
    training_args(q, 4000, "runs/teacher")
    q.set_defaults(func=cmd_train_teacher)

    p = sub.add_parser("distill", help="distill the teacher into the student or into LUTs (needs the torch extra)")
    dsub = p.add_subparsers(dest="distill_command", required=True, metavar="TARGET")
    q = dsub.add_parser("student", help="~10x smaller network without condition input (the student backend)",
                        description="Feature loss (learned 1x1 projection of the bottleneck), output L1 to the "
                        "teacher, and the base fusion loss. Resumable like train teacher.")
    training_args(q, 2000, "runs/student")
    q.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint (runs/teacher/teacher.pt)")
    q.add_argument("--ship", type=Path, metavar="FILE.pt",
                   help="also write the result with float16 weights (how weights/student.pt is made)")
    q.set_defaults(func=cmd_distill_student)
    q = dsub.add_parser("lut", help="fit a 3-D or 4-D LUT and its context net to the teacher (the lut backends)",
                        description="Fits the table and the context net through the PyTorch twin to the teacher's "
                        "outputs on training crops (L1 + SSIM, monotonicity and TV regularisers) and exports the "
                        ".npz the Numba kernel loads.")
    q.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint")
    q.add_argument("--kind", choices=tuple(KINDS), default="3d")
    q.add_argument("-o", "--output", type=Path, required=True, help="LUT .npz to write")
    q.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/roadscene")],
                   help="one or more folders with vis/ and ir/ pairs; the training split of each is used "
                   "(the teacher needs no labels, so any registered pairs help)")
    q.add_argument("--init", type=Path, help="start from this LUT (default: the analytic one)")
    q.add_argument("--ckpt", type=Path, help="resumable state: re-running the command continues from it "
                   "(default runs/lutfit/<output stem>.last.pt)")
    q.add_argument("--context-bins", type=int, default=8,
                   help="nodes on the table's context axis when starting fresh (default 8)")
    q.add_argument("--steps", type=int, default=1500)
    q.add_argument("--batch", type=int, default=8)
    q.add_argument("--crop", type=int, default=192)
    q.add_argument("--bank", type=int, default=320, help="crops whose teacher outputs are computed once")
    q.add_argument("--dark", type=SHARE, default=0.5, help="share of crops darkened to cover night scenes (default 0.5)")
    q.add_argument("--grad-weight", type=NON_NEGATIVE, default=1.0,
                   help="weight of the Sobel-gradient L1 to the teacher (keeps its detail; default 1.0)")
    q.add_argument("--detail", type=POSITIVE, default=1.0,
                   help="gradient target = detail x the teacher's Sobel gradient (> 1: the table adds local "
                   "contrast the teacher lacks; default 1.0)")
    q.add_argument("--ir-dark", type=SHARE, default=0.5,
                   help="share of crops with the IR darkened (gain 0.2-0.7) to cover cold scenes (default 0.5)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
    q.set_defaults(func=cmd_distill_lut)

    add_calibrate_parser(sub, size_arg)
    sub.choices["calibrate"].set_defaults(func=cmd_calibrate)

    p = sub.add_parser("lut", help="inspect or create LUT files")
    lsub = p.add_subparsers(dest="lut_command", required=True, metavar="ACTION")
    q = lsub.add_parser("info", help="print a LUT file's axes, ranges, context net and metadata")
    q.add_argument("file", type=Path)
    q.set_defaults(func=cmd_lut_info)
    q = lsub.add_parser("init", help="write the analytic (UNTRAINED) starting LUT")
    q.add_argument("--kind", choices=tuple(KINDS), default="3d")
    q.add_argument("-o", "--output", type=Path, required=True)
    q.set_defaults(func=cmd_lut_init)
    parser.subcommands = sub.choices
    for name in ("fuse", "run", "demo", "bench"):
        sp = sub.choices[name]
        sp.add_argument("--config", type=Path, metavar="FILE.yaml",
                        help="read options from YAML (keys are option names); CLI flags override")
        for action in sp._actions:
            if action.required:  # may come from the config file: checked after it is read
                action.required, action.needed = False, True
    return parser


def _explicit_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Options the user typed on the command line (these override the config file)."""
    given = set()
    for action in parser._actions:
        for opt in action.option_strings:
            if any(a == opt or a.startswith(opt + "=") for a in argv):
                given.add(action.dest)
    return given


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> None:
    """Set options from ``args.config`` (YAML mapping of option names) unless given on the CLI."""
    import yaml

    path = Path(args.config)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RtfuseError(f"config {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RtfuseError(f"config {path} is not readable YAML ({e})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RtfuseError(f"config {path} must be a mapping of option: value")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    explicit = _explicit_dests(parser, argv)
    for key, value in data.items():
        dest = str(key).lstrip("-").replace("-", "_")
        action = actions.get(dest)
        if action is None:
            valid = ", ".join(sorted(a.option_strings[-1].lstrip("-") for a in actions.values()))
            raise RtfuseError(f"config {path}: unknown option {key!r} for `rtfuse {args.command}` (valid: {valid})")
        if dest in explicit:
            continue
        try:
            if isinstance(action, argparse._StoreTrueAction):
                if not isinstance(value, bool):
                    raise ValueError("must be true or false")
            elif value is not None and action.type is not None:
                text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
                value = action.type(text)
            if action.choices is not None and value not in action.choices:
                raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
        except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
            raise RtfuseError(f"config {path}: option {key!r}: {e}") from None
        setattr(args, dest, value)


def check_needed(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    missing = [a.option_strings[-1] for a in parser._actions if getattr(a, "needed", False) and getattr(args, a.dest) is None]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(missing)} (on the command line or in --config)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    sp = parser.subcommands.get(args.command)
    try:
        if getattr(args, "config", None):
            apply_config(sp, args, argv)
        if sp is not None:
            check_needed(sp, args)
        return int(args.func(args) or 0)
    except RtfuseError as e:
        console.print(f"[bold red]rtfuse: error:[/] {e}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]rtfuse: interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
