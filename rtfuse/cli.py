"""The ``rtfuse`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rtfuse import interrupt
from rtfuse.argtypes import COUNT, FPS, NON_NEGATIVE, POSITIVE, SHARE, csv_of, integer, size_arg
from rtfuse.calib.commands import add_parser as add_calibrate_parser
from rtfuse.errors import RtfuseError
from rtfuse.fusion.lutfile import KINDS
from rtfuse.messages import error, make_console, note, with_flag
from rtfuse.paths import check_writable_file, check_writable_folder, refuse_overwrite, refuse_same_outputs
from rtfuse.runner import add_camera_args, add_output_args, add_source_args, add_stage_args
from rtfuse.sinks.window import KEYS_HELP
from rtfuse.sources.base import DEFAULT_FPS

console = make_console()


def _add_backend_args(p: argparse.ArgumentParser, several: bool = False) -> None:
    from rtfuse.fusion.registry import BACKENDS

    if several:  # a comma-separated list, each one checked as choices= would
        p.add_argument(
            "--backend",
            default=["lut"],
            type=csv_of(_backend_arg),
            help="fusion backend (default: lut); with --video, several as a,b,... are compared",
        )
    else:
        p.add_argument("--backend", default="lut", choices=BACKENDS, help="fusion backend (default: lut)")
    p.add_argument(
        "--weights",
        "--lut",
        dest="weights",
        type=Path,
        help="a LUT .npz (lut backends) or network .pt (student, teacher) instead of the shipped one",
    )
    p.add_argument(
        "--prompt",
        help='teacher backend: a sentence describing the degradations of the input, e.g. "the thermal '
        'image has strong vertical stripes; the visible image is dark" (default: "clean"; needs the '
        "train extra)",
    )


def _backend_arg(text: str) -> str:
    from rtfuse.fusion.registry import BACKENDS

    if text not in BACKENDS:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(BACKENDS)})")
    return text


def _load(backend: str, weights: Path | None, prompt: str | None = None, announce: bool = True):
    """The fuser a command asked for; ``announce``: say in one line when its kernels must be
    compiled first (the batch driver says it once, its workers not again)."""
    from rtfuse.fusion.registry import load_fuser

    if backend == "teacher" and weights is None:
        raise RtfuseError(
            "the teacher backend needs its checkpoint: --weights runs/teacher/teacher.pt "
            "(train one with `rtfuse train teacher`; it is not shipped)"
        )
    if prompt is not None and backend != "teacher":
        raise RtfuseError(f"--prompt is read by the teacher backend only, not by {backend}")
    fuser = load_fuser(backend, path=weights, **({"prompt": prompt} if prompt is not None else {}))
    if announce and getattr(fuser, "compiled", lambda: None)() is False:
        console.print(
            "compiling the fusion kernels for this CPU: the first run after installing rtfuse takes "
            "10-30 s longer; later runs load them from Numba's cache"
        )
    return fuser


def _fuser(args: argparse.Namespace):
    return _load(args.backend, args.weights, args.prompt)


def _stopped(report) -> int:
    """Exit status of a run: 0, or 128 + the signal that stopped it (130 for Ctrl-C, 143 for SIGTERM)."""
    return interrupt.exit_code() if report.interrupted or interrupt.received() else 0


def cmd_fuse(args: argparse.Namespace) -> int:
    from rtfuse.images import IMAGE_EXTS
    from rtfuse.runner import make_stage
    from rtfuse.stills import fuse_folder, fuse_pair

    vis, ir, out = Path(args.vis), Path(args.ir), Path(args.output)
    for label, p in (("visible", vis), ("IR", ir)):
        if not p.exists():
            raise RtfuseError(f"{p}: no such file or folder (the {label} input)")
    if vis.is_dir() != ir.is_dir():
        raise RtfuseError("--vis and --ir must both be files or both be folders")
    refuse_overwrite(out, {"visible": vis, "IR": ir})
    if vis.is_dir():
        if out.exists() and not out.is_dir():
            raise RtfuseError(f"{out}: is a file; folders of pairs are fused into a folder")
        ext = args.ext if args.ext.startswith(".") else "." + args.ext
        if ext.lower() not in IMAGE_EXTS:
            raise RtfuseError(f"--ext {args.ext}: not an image extension; use one of {', '.join(IMAGE_EXTS)}")
        check_writable_folder(out, "fused images", create=True)
        report = fuse_folder(
            vis, ir, out, make_stage(args, _fuser(args), args.resize_ir), ext=args.ext, console=console
        )
        return 1 if report.failed else 0
    if vis.suffix.lower() in IMAGE_EXTS and ir.suffix.lower() in IMAGE_EXTS:
        check_writable_file(out, "fused image")
        fuse_pair(vis, ir, out, make_stage(args, _fuser(args), args.resize_ir))
        console.print(f"wrote {out}")
        return 0
    return _fuse_videos(args)


def _fuse_videos(args: argparse.Namespace) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from rtfuse.runner import build, kernel_threads, run_and_report, video_sink

    sink = video_sink(Path(args.output), args, console)
    pipe = build(args, args.vis, args.ir, [sink], _fuser(args), kernel_threads=kernel_threads(args))
    pipe.vis.open()  # fail early, before the progress bar, and learn the frame count
    pipe.ir.open()
    columns = (
        TextColumn("fusing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=console, transient=False)
    task = progress.add_task("fuse", total=pipe.vis.frame_count, fps="")
    t0 = time.perf_counter()

    def on_frame(n: int) -> None:
        if n % 10 == 0:
            progress.update(task, completed=n, fps=f"{n / (time.perf_counter() - t0):.0f} fps")

    pipe.on_frame = on_frame
    report = run_and_report(
        pipe,
        console,
        "rtfuse fuse",
        display=progress,
        on_end=lambda r: progress.update(task, completed=r.stats.frames_out),
    )
    return _stopped(report)


def cmd_batch(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from rtfuse.batch import check_out_dir, find_jobs, run_batch, write_report
    from rtfuse.cpu import available_cores

    if args.ray is not None:
        from rtfuse.batch import import_ray

        import_ray()  # a missing Ray: one line before any work
    out_dir = Path(args.output)
    jobs, unpaired = find_jobs(Path(args.input), out_dir, args.ext, args.pattern)
    for line in unpaired:
        note(console, line)
    if not jobs:
        rule = f"--pattern {args.pattern}" if args.pattern else f"the naming rule: {_naming_rule()}"
        raise RtfuseError(f"{args.input}: no pairs found; {rule}")
    check_out_dir(out_dir)
    for report in ("batch_report.csv", "batch_report.json"):
        refuse_overwrite(out_dir / report, {"manifest": args.input})
    # The batch's own options, as `rtfuse fuse` would read them (sent to each task as plain values).
    keys = ("backend", "weights", "calib", "ir_agc", "clahe", "codec", "preset", "crf", "allow_truncated")
    keys += ("vis_fps", "ir_fps", "ir_offset", "tolerance_ms", "seed", "ir_clean", "codec_threads")
    keys += ("vis_sharpen", "vis_sharpen_sigma")
    keys += ("video_metrics",)
    options = {k: getattr(args, k) for k in keys}
    _fuser(args)  # a missing checkpoint or an unreadable LUT: one line now, not one per pair
    workers = args.workers or available_cores()
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    frames = [0]
    t0 = time.perf_counter()
    columns = (
        TextColumn("batch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[counts]}"),
        TextColumn("{task.fields[fps]}"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=console, transient=False)
    task = progress.add_task("batch", total=len(jobs), counts="", fps="")

    def on_row(row) -> None:
        counts[row.status] = counts.get(row.status, 0) + 1
        if row.status != "skipped":
            frames[0] += row.frames_out
        text = f"{counts['ok']} done, {counts['failed']} failed, {counts['skipped']} skipped"
        fps = frames[0] / max(time.perf_counter() - t0, 1e-9)
        progress.update(task, advance=1, counts=text, fps=f"{fps:.0f} fps")

    where = (
        f"Ray at {args.ray}" if args.ray not in (None, "local") else "local Ray" if args.ray else "processes"
    )
    console.print(f"{len(jobs)} pairs, {workers} worker(s) ({where})")
    # Cooperative to the end: a signal during the run stops the workers (run_batch's own block), and
    # one that comes after it must not cut the report short.
    with interrupt.cooperative():
        with progress:
            rows, stopped = run_batch(
                jobs,
                options,
                workers,
                args.retries,
                args.force,
                args.eval or args.video_metrics,
                progress=on_row,
                ray_address=args.ray,
                pin=not args.no_pin,
            )
        for row in rows:
            if row.status == "failed":  # the message names the file at fault, or else the pair is named
                named = row.vis in row.error or row.ir in row.error
                error(console, row.error if named else f"{row.vis} + {row.ir}: {row.error}")
        csv_path, _ = write_report(out_dir, rows, unpaired)
        pending = sum(r.status == "pending" for r in rows)
        console.print(
            f"{counts['ok']} fused, {counts['skipped']} skipped (already done), {counts['failed']} failed"
            + (f", {pending} not started" if pending else "")
            + f"; report: {csv_path}"
        )
    if stopped:
        console.print(f"stopped by {interrupt.name()}; re-run the same command to finish", style="yellow")
        return interrupt.exit_code()
    if interrupt.received() is not None:  # it came once the work was done
        console.print(f"stopped by {interrupt.name()} after the work was done; the report is complete")
        return interrupt.exit_code()
    return 1 if counts["failed"] or pending else 0


def _pattern_help() -> str:
    from rtfuse.batch import PATTERN_HELP

    return PATTERN_HELP.replace("%", "%%")


def _naming_rule() -> str:
    from rtfuse.batch import NAMING_RULE

    return NAMING_RULE


def cmd_run(args: argparse.Namespace) -> int:
    from rtfuse.runner import build, run_and_report, video_sink
    from rtfuse.sinks.base import NullSink
    from rtfuse.sinks.window import WindowSink, has_display

    inputs = {"visible": args.vis, "IR": args.ir}
    refuse_same_outputs({"recording (--out)": args.out, "image folder (--images-out)": args.images_out})
    for out in (args.out, args.images_out):
        if out is not None:
            refuse_overwrite(out, inputs)
    sinks = []
    if args.out:
        sinks.append(video_sink(Path(args.out), args, console))
    if args.images_out:
        from rtfuse.sinks.folder import ImageFolderSink

        check_writable_folder(args.images_out, "fused images", create=True)
        sinks.append(ImageFolderSink(args.images_out))
    if not args.no_display:
        ok, why = has_display()
        if ok:
            sinks.append(WindowSink(save_dir=args.save_dir, codec=args.codec))
        else:
            note(console, f"window skipped: {why}")
    if not sinks:
        sinks.append(NullSink())
    pipe = build(
        args,
        args.vis,
        args.ir,
        sinks,
        _fuser(args),
        count=args.synthetic_frames,
        size=args.size,
        realtime=args.realtime,
    )
    if isinstance(sinks[0], NullSink):
        note(console, "no output: pass --out FILE.mp4 or --images-out DIR to keep the result")
    return _stopped(run_and_report(pipe, console, "rtfuse run"))


def cmd_demo(args: argparse.Namespace) -> int:
    from rtfuse.runner import build, run_and_report, video_sink
    from rtfuse.sinks.window import WindowSink, has_display

    ok, why = has_display()
    if ok and not args.no_display:
        sinks = [WindowSink("rtfuse demo")]
        console.print("rtfuse demo: synthetic scene in a window (keys: f v i s h, q quits)")
    else:
        sinks = [video_sink(Path(args.output), args, console)]
        console.print(f"rtfuse demo: {why or 'display disabled'}; writing {args.output}")
    fuser = _fuser(args)
    model = getattr(fuser, "model", None)
    if model is not None and model.untrained:
        note(console, f"backend {args.backend} uses the UNTRAINED initial LUT")
    spec = f"synthetic:{args.size[0]}x{args.size[1]}@{args.fps:g}"
    pipe = build(args, spec, spec, sinks, fuser, count=args.frames, realtime=ok and not args.no_display)
    return _stopped(run_and_report(pipe, console, "rtfuse demo"))


def _load_bench_fusers(args: argparse.Namespace) -> dict:
    """Every backend's fuser, loaded before the first measurement: a missing weights file fails
    at once instead of after the rows already measured."""
    from rtfuse.fusion.registry import BACKENDS, SHIPPED_LUTS

    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown:
        raise RtfuseError(
            f"unknown backend(s) {', '.join(unknown)} in --backends; choose from {', '.join(BACKENDS)}"
        )
    fusers = {}
    for backend in args.backends:
        takes_weights = backend in SHIPPED_LUTS or backend == "teacher"
        try:
            fusers[backend] = _load(backend, args.weights if takes_weights else None)
        except RtfuseError as e:
            raise RtfuseError(f"backend {backend}: {e}") from None
    return fusers


def cmd_bench(args: argparse.Namespace) -> int:
    import json

    from rtfuse.runner import build
    from rtfuse.sinks.base import NullSink

    if args.json:
        check_writable_file(args.json, "JSON results")
    if args.live:
        return _bench_live(args)
    given = args.vis is not None or args.ir is not None
    if given and (args.vis is None or args.ir is None):
        raise RtfuseError("bench takes both --vis and --ir, or neither (synthetic scenes)")
    sizes = [None] if given else args.sizes
    fusers = _load_bench_fusers(args)
    results = []
    table = Table(title="rtfuse bench: pipeline with the null sink")
    for col in ("input", "backend", "frames", "fps", "read vis", "read ir", "align", "fuse", "overhead"):
        table.add_column(col, justify="left" if col in ("input", "backend") else "right")
    for size in sizes:
        for backend, fuser in fusers.items():
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
            report = pipe.run()
            if report.interrupted:
                break
            stats = report.stats
            d = stats.to_dict()
            ms = {k: v["median_ms"] for k, v in d["stages"].items()}
            table.add_row(
                label,
                backend,
                str(stats.frames_out),
                f"{stats.fps:.0f}",
                *(f"{ms.get(k, float('nan')):.2f} ms" for k in ("read vis", "read ir", "align", "fuse")),
                f"{100 * stats.overhead_fraction():.1f} %",
            )
            results.append({"input": label, "backend": backend, **d})
        if interrupt.received():
            break
    console.print(table)
    console.print(
        "overhead: time the pipeline threads spend outside stages and blocked waits "
        "(queue hand-offs, copies, bookkeeping), as a share of the sum of stage times"
    )
    if args.json:
        from rtfuse.atomic import write_atomic

        write_atomic(args.json, json.dumps(results, indent=2).encode(), "JSON results")
        console.print(f"wrote {args.json}")
    return interrupt.exit_code() if interrupt.received() else 0


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

    from rtfuse.runner import build
    from rtfuse.sinks.base import NullSink
    from rtfuse.synthetic import SyntheticScene

    w, h = args.sizes[0]
    args.backends = args.backends[:1]
    fuser = _load_bench_fusers(args)[args.backends[0]]
    fuser(*SyntheticScene(w, h).render(0))  # compile / warm up before timing
    table = Table(
        title=f"rtfuse bench --live: synthetic cameras {w}x{h}, backend {args.backends[0]}, null sink"
    )
    for col in (
        "camera fps",
        "frames",
        "out fps",
        "latency median",
        "latency p95",
        "budget",
        "vis dropped",
        "IR superseded",
        "RSS start",
        "RSS @1000",
        "RSS end",
    ):
        table.add_column(col, justify="right")
    results = []
    for rate in args.rates:
        spec = f"synthetic:{w}x{h}@{rate:g}"
        pipe = build(args, spec, spec, [NullSink()], fuser, realtime=True)
        pipe.max_frames = args.frames
        rss_at: dict[int, float] = {}
        pipe.on_frame = lambda n: rss_at.setdefault(n, _rss_mb()) if n % 1000 == 0 else None
        rss0 = _rss_mb()
        report = pipe.run()
        if report.interrupted:
            break
        stats = report.stats
        rss1 = _rss_mb()
        d = stats.to_dict()
        budget = 1e3 / rate + d["stages"]["fuse"]["median_ms"]
        c = stats.counters
        table.add_row(
            f"{rate:g}",
            str(stats.frames_out),
            f"{stats.fps:.1f}",
            f"{d['latency']['median_ms']:.1f} ms",
            f"{d['latency']['p95_ms']:.1f} ms",
            f"{budget:.1f} ms",
            str(c.get("dropped vis", 0) + c.get("dropped out", 0)),
            str(c.get("dropped ir", 0)),
            f"{rss0:.0f} MB",
            f"{rss_at.get(1000, float('nan')):.0f} MB",
            f"{rss1:.0f} MB",
        )
        results.append(
            {
                "camera_fps": rate,
                "size": [w, h],
                "budget_ms": budget,
                "rss_start_mb": rss0,
                "rss_mb_every_1000": rss_at,
                "rss_end_mb": rss1,
                **d,
            }
        )
    console.print(table)
    console.print(
        "latency: capture timestamp to fused frame ready for display; budget: one visible frame "
        "period + the median fusion time; IR superseded: IR frames replaced by a newer one before any "
        "visible frame needed them (latest-frame-wins)"
    )
    if args.json:
        from rtfuse.atomic import write_atomic

        write_atomic(args.json, json.dumps(results, indent=2).encode(), "JSON results")
        console.print(f"wrote {args.json}")
    return interrupt.exit_code() if interrupt.received() else 0


# eval options that only --video reads, with their defaults: a still-pair run refuses them.
_EVAL_VIDEO_ONLY = {
    "frames": None,
    "vis_fps": None,
    "ir_fps": None,
    "ir_offset": 0.0,
    "tolerance_ms": None,
    "allow_truncated": False,
}


def _eval_outputs(args: argparse.Namespace) -> None:
    """Refuse output paths that would replace an input or cannot be written, before any work."""
    refuse_same_outputs({"CSV": args.csv, "JSON": args.json})
    for path, what in ((args.csv, "CSV metrics"), (args.json, "JSON metrics")):
        if path is not None:
            refuse_overwrite(
                path,
                {
                    "visible": args.vis,
                    "IR": args.ir,
                    "fused": args.fused,
                    "reference": args.reference,
                    "degraded visible": args.degraded_vis,
                    "degraded IR": args.degraded_ir,
                },
            )
            check_writable_file(path, what)


def _scored(args: argparse.Namespace) -> str:
    """What a still-pair eval scores, for its table's title."""
    if args.fused:
        return str(args.fused)
    return f"backend {args.backend[0]}" + (f" ({args.weights})" if args.weights else "")


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from rtfuse.evaluate import evaluate_folder, table, write

    if args.video:
        return _eval_video(args)
    given = [k for k, v in _EVAL_VIDEO_ONLY.items() if getattr(args, k) != v]
    if given:
        raise RtfuseError(f"--{given[0].replace('_', '-')} is for clips: add --video, or leave it out")
    for p in (args.vis, args.ir, args.degraded_vis, args.degraded_ir):
        if p is not None and p.is_file():
            raise RtfuseError(f"{p}: is a file; eval scores folders of still pairs, or clips with --video")
    if len(args.backend) > 1:
        raise RtfuseError("several backends (--backend a,b) are compared on clips only: add --video")
    if args.degraded_vis is not None or args.degraded_ir is not None:
        return _eval_degraded(args)
    if args.sequence:
        raise RtfuseError("--sequence goes with --degraded-vis / --degraded-ir")
    _eval_outputs(args)
    from rtfuse.runner import make_stage

    fuser = _load(args.backend[0], args.weights, args.prompt) if args.fused is None else None
    stage = make_stage(args, fuser, resize_ir=False)
    with Progress(console=console, transient=True) as progress:
        rows = evaluate_folder(
            Path(args.vis), Path(args.ir), args.fused, stage, args.reference, progress, args.split
        )
    Console(highlight=False, markup=False, emoji=False, width=200).print(
        table(rows, f"rtfuse eval: {_scored(args)} on {len(rows) - 1} pairs", args.per_image)
    )
    write(rows, args.csv, args.json)
    for p in (args.csv, args.json):
        if p:
            console.print(f"wrote {p}")
    return 0


def _eval_degraded(args: argparse.Namespace) -> int:
    """`rtfuse eval --degraded-vis/--degraded-ir`: the degraded pair's fusion scored against the clean
    pair (rtfuse.evaluate.evaluate_degraded, docs/degraded-eval.md)."""
    from rich.progress import Progress

    from rtfuse.evaluate import DEGRADED_COLUMNS, evaluate_degraded, table, write
    from rtfuse.runner import make_stage

    if args.reference is not None and args.fused is None:
        raise RtfuseError(
            "--reference with --degraded-* is the clean pair's fusion for --fused images; "
            "--backend fuses the clean pair itself: leave --reference out"
        )
    _eval_outputs(args)
    if args.sequence and args.fused is not None:
        raise RtfuseError("--sequence fuses the clip as two streams with --backend: leave --fused out")
    fuser = _load(args.backend[0], args.weights, args.prompt) if args.fused is None else None
    stage = make_stage(args, fuser, resize_ir=False)  # the degraded and the clean pair alike
    clean_stage = make_stage(args, fuser, resize_ir=False) if args.sequence else None
    with Progress(console=console, transient=True) as progress:
        rows = evaluate_degraded(
            args.vis,
            args.ir,
            args.degraded_vis,
            args.degraded_ir,
            stage,
            args.fused,
            args.reference,
            progress,
            args.split,
            clean_stage,
        )
    degraded = " + ".join(str(p) for p in (args.degraded_vis, args.degraded_ir) if p is not None)
    out = Console(highlight=False, markup=False, emoji=False, width=200)
    out.print(
        f"fused from {degraded}, scored against the clean pair {args.vis} + {args.ir}; PSNR and SF_ratio "
        "are against the clean pair's fusion (docs/degraded-eval.md)"
    )
    title = f"rtfuse eval --degraded: {_scored(args)} on {len(rows) - 1} pairs"
    out.print(table(rows, title, args.per_image, DEGRADED_COLUMNS))
    write(rows, args.csv, args.json, DEGRADED_COLUMNS)
    for p in (args.csv, args.json):
        if p:
            console.print(f"wrote {p}")
    return 0


def _eval_video(args: argparse.Namespace) -> int:
    """`rtfuse eval --video`: flicker, flowD and mean SF of a clip (rtfuse/temporal_metrics.py)."""
    from rich.progress import Progress

    from rtfuse.evaluate import VIDEO_COLUMNS, evaluate_video, video_table, write
    from rtfuse.runner import clip_options, make_stage

    if args.reference is not None or args.split != "all" or args.per_image:
        raise RtfuseError("--reference, --split and --per-image are for still pairs, not --video")
    if args.degraded_vis is not None or args.degraded_ir is not None or args.sequence:
        raise RtfuseError("--degraded-vis, --degraded-ir and --sequence are for still pairs, not --video")
    for label, p in (("visible", args.vis), ("IR", args.ir), ("fused", args.fused)):
        if p is not None and not p.exists():
            raise RtfuseError(f"{p}: no such file or folder (the {label} clip)")
    if args.fused is not None and len(args.backend) > 1:
        raise RtfuseError("--fused scores one clip: leave --backend out")
    if args.weights is not None and len(args.backend) > 1:
        raise RtfuseError("--weights loads one backend's file: give one --backend with it")
    _eval_outputs(args)
    if args.fused is not None:
        stages = {args.fused.name: make_stage(args, None, resize_ir=False)}
    else:  # one stage per backend: each is its own stream
        stages = {
            b: make_stage(args, _load(b, args.weights, args.prompt), resize_ir=False) for b in args.backend
        }
    with Progress(console=console, transient=True) as progress:
        rows = evaluate_video(
            args.vis,
            args.ir,
            stages,
            fused=args.fused,
            frames=args.frames,
            progress=progress,
            **clip_options(args),
        )
    kept = next(iter(rows.values()))["kept"]
    out = Console(highlight=False, markup=False, emoji=False, width=200)
    out.print(
        f"{args.vis} + {args.ir}: flicker after motion compensation, in levels (the mask kept "
        f"{100 * kept:.0f} % of the pixels; docs/flicker.md)"
    )
    out.print(video_table(rows, "rtfuse eval --video"))
    write(rows, args.csv, args.json, VIDEO_COLUMNS, first="sequence")
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
    return TrainConfig(
        data=[str(d) for d in args.data],
        out=str(args.out),
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        seed=args.seed,
        device=device,
        detail=args.detail,
        detail_edges=args.detail_edges,
        base_weight=args.base_weight,
        base_sigma=args.base_sigma,
        init=str(args.init or ""),
        dark=args.dark,
        ir_dark=args.ir_dark,
        degrade=args.degrade,
        ship=str(getattr(args, "ship", "") or ""),
        teacher=str(getattr(args, "teacher", "") or ""),
        **{
            k: getattr(args, k)
            for k in (
                "w_feat",
                "w_out",
                "w_base",
                "teacher_input",
                "restore",
                "w_restore",
                "w_restore_grad",
                "train_only",
            )
            if hasattr(args, k)
        },
    )


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
    fit_lut(
        LutFitConfig(
            teacher=str(args.teacher),
            data=[str(d) for d in args.data],
            out=str(args.output),
            kind=args.kind,
            init=str(args.init or ""),
            steps=args.steps,
            batch=args.batch,
            crop=args.crop,
            bank=args.bank,
            dark=args.dark,
            ir_dark=args.ir_dark,
            degrade=args.degrade,
            w_grad=args.grad_weight,
            detail=args.detail,
            ctx_bins=args.context_bins,
            seed=args.seed,
            ckpt=str(args.ckpt or ""),
        ),
        console,
    )
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """`rtfuse export onnx`: a network as ONNX, then checked against torch on two test frames."""
    import importlib.util

    from rtfuse.fusion.onnxnet import engines_differ, export_onnx
    from rtfuse.fusion.registry import SHIPPED_NETS, WEIGHTS_DIR

    out = Path(args.output)
    if out.suffix.lower() != ".onnx":  # load_fuser picks ONNX Runtime by this suffix
        raise RtfuseError(f"{out}: name the output NAME.onnx", option="output")
    weights = args.weights
    if weights is None:
        if args.backend == "teacher":
            raise RtfuseError(
                "the teacher is not shipped: pass its checkpoint, e.g. runs/teacher/teacher.pt "
                "(from `rtfuse train teacher`)",
                option="weights",
            )
        weights = WEIGHTS_DIR / SHIPPED_NETS[args.backend]
    check_writable_file(out, "ONNX network")
    refuse_overwrite(out, {"weights": weights})
    start = time.perf_counter()
    info = export_onnx(weights, out, expect=args.backend)
    console.print(
        f"wrote {out}: the {info['arch']} ({info['params']:,} parameters) from {weights}, "
        f"{info['bytes'] / 1e3:.0f} KB, opset {info['opset']}, in {time.perf_counter() - start:.0f} s"
    )
    if importlib.util.find_spec("onnxruntime") is None:
        note(
            console,
            "onnxruntime is not installed, so the file was not compared with torch: "
            "pip install 'rtfuse[onnx]'",
        )
        return 0
    worst = engines_differ(weights, out)
    if worst > 1:
        raise RtfuseError(
            f"{out}: ONNX Runtime and torch differ by {worst} levels on a test frame (at most 1 expected)"
        )
    console.print(f"ONNX Runtime matches torch on two test frames (largest difference: {worst} level)")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    return args.calib_func(args, console)


def cmd_lut_info(args: argparse.Namespace) -> int:
    from rtfuse.fusion.lutfile import load_lut

    m = load_lut(args.file)
    t = Table(title=str(args.file), show_header=False)
    t.add_row("kind", m.kind)
    t.add_row("state", Text.assemble(("UNTRAINED", "bold red"), " initial LUT") if m.untrained else "trained")
    t.add_row("table", " x ".join(f"{a}[{n}]" for a, n in zip(m.axes, m.table.shape)))
    t.add_row("ranges", ", ".join(f"{a} {lo:g}..{hi:g}" for a, (lo, hi) in zip(m.axes, m.ranges)))
    t.add_row(
        "context net",
        f"stride {m.ctx_stride}, layers " + " -> ".join(str(tuple(w.shape)) for w, _ in m.ctx_layers),
    )
    for k, v in sorted(m.meta.items()):
        t.add_row(f"meta.{k}", str(v))
    Console(highlight=False, markup=False, emoji=False).print(t)
    return 0


def cmd_lut_init(args: argparse.Namespace) -> int:
    from rtfuse.fusion.initial import analytic_lut
    from rtfuse.fusion.lutfile import save_lut

    save_lut(args.output, analytic_lut(args.kind))
    console.print(f"wrote {args.output} (analytic {args.kind} LUT, labelled UNTRAINED)")
    return 0


def _training_args(q: argparse.ArgumentParser, steps: int, out: str) -> None:
    q.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[Path("../shared/data/roadscene")],
        help="one or more folders with vis/ and ir/ registered pairs (a fixed 20 %% of each is held out)",
    )
    q.add_argument(
        "--out", type=Path, default=Path(out), help="run folder: last.pt (resumable) and the result"
    )
    q.add_argument("--steps", type=COUNT, default=steps, help=f"optimiser steps (default {steps})")
    q.add_argument("--batch", type=COUNT, default=8)
    q.add_argument("--crop", type=integer(16), default=128, help="square crop size (default 128)")
    q.add_argument("--lr", type=POSITIVE, default=5e-4)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument(
        "--detail",
        type=POSITIVE,
        default=1.3,
        help="gradient target = detail x the stronger source gradient (default 1.3)",
    )
    q.add_argument(
        "--detail-edges",
        type=NON_NEGATIVE,
        default=0.0,
        help="apply --detail only where the stronger source's Sobel |Gx|+|Gy| (0..8) exceeds this",
    )
    q.add_argument(
        "--base-weight",
        type=NON_NEGATIVE,
        default=0.0,
        help="weight of an L1 between the output's and the per-pixel max's base layers (Gaussian "
        "sigma --base-sigma): keeps region intensities a function of the sources (default 0)",
    )
    q.add_argument(
        "--base-sigma", type=POSITIVE, default=4.0, help="Gaussian sigma of that base layer (default 4)"
    )
    q.add_argument(
        "--dark",
        type=SHARE,
        default=0.0,
        help="share of crops with the visible darkened (gain 0.1-0.6), for night scenes (default 0)",
    )
    q.add_argument(
        "--ir-dark",
        type=SHARE,
        default=0.0,
        help="share of crops with the IR darkened (gain 0.2-0.7), for cold scenes (default 0)",
    )
    q.add_argument(
        "--degrade",
        type=SHARE,
        default=0.0,
        help="share of crops degraded (stripes, noise, low light, blur, ...; rtfuse/training/degrade.py) "
        "at the network's input, the clean crops staying the targets; the teacher also reads a "
        "sentence describing them (needs the train extra) (default 0)",
    )
    q.add_argument(
        "--init",
        type=Path,
        metavar="CKPT",
        help="start from this checkpoint's weights with a fresh optimiser and schedule "
        "(fine-tuning); ignored when --out already holds last.pt, which resumes",
    )
    q.add_argument("--device", default="cpu", help="cpu or cuda")
    q.add_argument("--threads", type=COUNT, help="CPU threads for torch (default: all cores)")


def _add_fuse(sub) -> None:
    """`rtfuse fuse`: two videos, an image pair or two folders."""
    p = sub.add_parser(
        "fuse",
        help="fuse two videos, an image pair, or two folders of images paired by file stem",
        description="Fuse --vis and --ir into -o. Video files: every visible frame in the overlap is fused, "
        "with the IR frame nearest in time, into a video (H.264 or FFV1), keeping the visible frame rate "
        "and timestamps. Image files: one pair. Folders: every pair sharing a file stem; unpaired or "
        "unreadable files are reported.",
    )
    p.add_argument("--vis", required=True, help="visible video, image file or folder")
    p.add_argument(
        "--ir", required=True, help="infrared video, image file or folder (colour IR is converted to gray)"
    )
    p.add_argument(
        "-o", "--output", required=True, help="output video (.mp4/.mkv/...), image file, or folder"
    )
    p.add_argument("--ext", default=".png", help="output extension in folder mode (default .png)")
    p.add_argument(
        "--resize-ir", action="store_true", help="stills: resize IR to the visible size when they differ"
    )
    _add_backend_args(p)
    add_source_args(p)
    add_stage_args(p)
    add_output_args(p)
    p.add_argument(
        "--codec-threads",
        type=integer(0),
        help="threads of each video decoder and of the encoder (default 0: FFmpeg and x264 choose, "
        "about one per core; 1: no codec threads)",
    )
    p.add_argument(
        "--kernel-threads",
        type=integer(0),
        help="videos: Numba threads of the fusion kernels (default 0: one per 4 cores, at least 1, "
        "leaving the rest to the decoders and the encoder; docs/scaling.md)",
    )
    p.set_defaults(func=cmd_fuse)


def _add_batch(sub) -> None:
    """`rtfuse batch`: every pair of an archive, resumable, one worker process per core."""
    p = sub.add_parser(
        "batch",
        help="fuse every video pair of a folder tree or a manifest (resumable, in parallel)",
        description="Fuse every pair of INPUT into OUT_DIR, as `rtfuse fuse` would each pair. INPUT: a folder "
        "searched recursively (in each folder NAME_vis.EXT with NAME_ir.EXT, or vis/NAME.EXT with "
        "ir/NAME.EXT in sibling folders; outputs mirror the relative folders), or a CSV/JSONL manifest with "
        "vis,ir[,out][,calib]. A re-run skips verified outputs and redoes the rest. Writes "
        "OUT_DIR/batch_report.csv and .json; exits 0 only if every pair was fused.",
    )
    p.add_argument("input", help="folder of video pairs, or a .csv/.jsonl manifest")
    p.add_argument("-o", "--output", required=True, help="output folder (created)")
    p.add_argument("--ext", default=".mp4", help="output container (default .mp4)")
    p.add_argument("--workers", type=COUNT, help="worker processes (default: the number of cores)")
    p.add_argument(
        "--no-pin",
        action="store_true",
        help="let the OS move the workers between cores (default: with no more workers than cores, each "
        "keeps to its own, about 7 %% faster; unpin on a machine other jobs share)",
    )
    p.add_argument(
        "--retries",
        type=integer(0),
        default=1,
        help="resubmissions of a pair whose worker process died (default 1); errors are not retried",
    )
    p.add_argument("--force", action="store_true", help="redo every pair, even verified outputs")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run the pairs as Ray tasks: on the cluster at ADDRESS (e.g. auto, or ray://head:10001), "
        "or without ADDRESS on a local Ray started with --workers CPUs (needs rtfuse[cluster])",
    )
    p.add_argument(
        "--pattern",
        metavar="VIS,IR",
        help="pair the files of the INPUT folder by this rule instead of the default one: " + _pattern_help(),
    )
    p.add_argument("--eval", action="store_true", help="add EN, SD and SF of each output to the report")
    p.add_argument(
        "--video-metrics",
        action="store_true",
        help="--eval plus the motion-compensated flicker (and its ratio to max(Y, IR)) and flowD "
        "of each output (docs/flicker.md; Farneback flow, about as slow again as the fusion)",
    )
    _add_backend_args(p)
    add_source_args(p)
    add_stage_args(p)
    add_output_args(p)
    p.add_argument(
        "--codec-threads",
        type=integer(0),
        help="threads of each video decoder and of the encoder in every worker, 0: FFmpeg and x264 "
        "choose (default: as `rtfuse fuse` with one worker, 1 when a worker has less than two cores, "
        "else half its share; docs/scaling.md)",
    )
    p.set_defaults(func=cmd_batch)


def _add_run(sub) -> None:
    """`rtfuse run`: live or file fusion with a window and recordings."""
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
    p.add_argument(
        "--save-dir", type=Path, default=Path("."), help="where window snapshots and recordings go"
    )
    p.add_argument("--max-frames", type=COUNT, help="stop after this many fused frames")
    p.add_argument(
        "--size", type=size_arg, default=(640, 480), help="synthetic sources: frame size (default 640x480)"
    )
    p.add_argument(
        "--synthetic-frames", type=COUNT, help="synthetic sources: number of frames (default endless)"
    )
    p.add_argument("--realtime", action="store_true", help="synthetic sources: pace frames at their fps")
    _add_backend_args(p)
    add_source_args(p)
    add_stage_args(p)
    add_camera_args(p)
    add_output_args(p)
    p.set_defaults(func=cmd_run)


def _add_demo(sub) -> None:
    """`rtfuse demo`: a synthetic scene through the pipeline."""
    p = sub.add_parser(
        "demo",
        help="fuse a synthetic scene through the full pipeline (no camera or data needed)",
        description="Synthetic visible + IR through the whole pipeline. Opens a window when a "
        "display exists, otherwise writes demo_fused.mp4; prints the statistics.",
    )
    p.add_argument("--size", type=size_arg, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--frames", type=COUNT, default=300, help="frames to fuse (default 300)")
    p.add_argument("--fps", type=FPS, default=DEFAULT_FPS, help=f"scene frame rate (default {DEFAULT_FPS:g})")
    p.add_argument("--no-display", action="store_true", help="write the video even when a display exists")
    p.add_argument("-o", "--output", default="demo_fused.mp4", help="video written without a display")
    _add_backend_args(p)
    p.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    add_stage_args(p)
    add_output_args(p)
    p.set_defaults(func=cmd_demo)


def _add_bench(sub) -> None:
    """`rtfuse bench`: the FPS harness."""
    p = sub.add_parser(
        "bench",
        help="FPS harness: the pipeline with the null sink over sizes and backends",
        description="Runs capture -> pair -> align -> fuse with the null sink on synthetic scenes "
        "(or on --vis/--ir) and reports per-stage median ms, end-to-end fps and pipeline overhead.",
    )
    p.add_argument("--vis", metavar="SRC", help="visible source instead of synthetic scenes")
    p.add_argument("--ir", metavar="SRC", help="infrared source instead of synthetic scenes")
    p.add_argument(
        "--sizes",
        type=csv_of(size_arg),
        default=[(640, 480), (1280, 720), (1920, 1080)],
        help="comma-separated WxH list",
    )
    p.add_argument(
        "--backends",
        type=csv_of(str),
        default=["lut", "lut3d", "blend"],
        help="comma-separated backends (default lut,lut3d,blend; lut is the 4d-detail table)",
    )
    p.add_argument("--frames", type=COUNT, default=300, help="frames per configuration (default 300)")
    p.add_argument(
        "--live",
        action="store_true",
        help="latency mode: real-time synthetic cameras at --rates, latest-frame-wins, RSS at start/end "
        "(uses the first of --sizes and --backends)",
    )
    p.add_argument(
        "--rates",
        type=csv_of(FPS),
        default=[30.0, 60.0],
        help="camera frame rates for --live (default 30,60)",
    )
    p.add_argument(
        "--weights", "--lut", dest="weights", type=Path, help="LUT .npz or network .pt for the backends"
    )
    p.add_argument("--json", type=Path, help="also write machine-readable results here")
    add_source_args(p)
    add_stage_args(p)
    p.set_defaults(func=cmd_bench)


def _add_eval(sub) -> None:
    """`rtfuse eval`: fusion metrics over pairs."""
    p = sub.add_parser(
        "eval",
        help="fusion metrics (EN, SD, SF, AG, MI, SCD, VIF, Qabf, SSIM, CC, PSNR) over pairs, "
        "or flicker over a clip (--video)",
        description="Metrics as the evaluator shared by recent papers computes them (see "
        "rtfuse/metrics.py). Pairs are matched by file stem; fused images come from --fused or "
        "are made with --backend. Also reports the visible-colour error (chroma) and, with "
        "--reference, PSNR against reference images (e.g. a teacher's outputs). With --video, "
        "--vis and --ir are clips (video files or image-folder sequences) read and paired as "
        "`rtfuse fuse` does; it reports the motion-compensated flicker, its ratio to max(Y, IR), "
        "flowD and mean SF (docs/flicker.md) of each --backend a,b,... or of the --fused clip. With "
        "--degraded-vis and/or --degraded-ir, the degraded pair is fused and scored against the clean "
        "pair (Qabf, VIF, SSIM, SF), and against the clean pair's fusion (PSNR, SF_ratio; "
        "docs/degraded-eval.md).",
    )
    p.add_argument("--vis", required=True, type=Path, help="folder of visible images (--video: a clip)")
    p.add_argument("--ir", required=True, type=Path, help="folder of infrared images (--video: a clip)")
    p.add_argument(
        "--fused",
        type=Path,
        help="folder of fused images to score (--video: a fused clip, one frame per pair; "
        "else --backend fuses them)",
    )
    p.add_argument(
        "--video", action="store_true", help="temporal metrics of clips instead of still-pair metrics"
    )
    p.add_argument(
        "--frames", type=integer(2), help="--video: score the first N pairs, at least 2 (default all)"
    )
    p.add_argument(
        "--reference",
        type=Path,
        help="folder of reference images for PSNR (with --degraded-* and --fused: the same method's "
        "fusions of the clean pair)",
    )
    for m, what in (("vis", "visible"), ("ir", "infrared")):
        p.add_argument(
            f"--degraded-{m}",
            type=Path,
            help=f"folder of degraded {what} images, same stems as --{m}: fuse the degraded pair and score "
            "it against the clean one (docs/degraded-eval.md); the other modality is fused clean unless "
            "given too",
        )
    p.add_argument(
        "--sequence",
        action="store_true",
        help="with --degraded-*: the pairs are consecutive frames of one clip; fuse the clean and the "
        "degraded frames as two streams, so per-stream state (AGC, --ir-clean's stripe estimate) "
        "carries from frame to frame as on a camera",
    )
    p.add_argument("--per-image", action="store_true", help="print every image, not only the mean")
    p.add_argument(
        "--split",
        choices=("all", "train", "heldout"),
        default="all",
        help="score only the fixed training or held-out split of the pairs (as used by rtfuse train)",
    )
    p.add_argument("--csv", type=Path, help="write all rows as CSV")
    p.add_argument("--json", type=Path, help="write all rows as JSON")
    _add_backend_args(p, several=True)
    add_source_args(p)
    add_stage_args(p)
    p.set_defaults(func=cmd_eval)


def _add_train(sub) -> None:
    """`rtfuse train teacher`."""
    p = sub.add_parser("train", help="train the fusion teacher (needs the torch extra)")
    tsub = p.add_subparsers(dest="train_command", required=True, metavar="MODEL")
    q = tsub.add_parser(
        "teacher",
        help="unsupervised fusion teacher (~3 M parameters, conditioned on a text description)",
        description="Trains on random crops of the training split with the fusion losses (SSIM to "
        "both sources, L1 to the max intensity, L1 to the (detail x) max Sobel gradient, CbCr L1). "
        "Re-running with the same --out resumes from last.pt.",
    )
    _training_args(q, 4000, "runs/teacher")
    q.set_defaults(func=cmd_train_teacher)


def _add_distill(sub) -> None:
    """`rtfuse distill student|lut`."""
    p = sub.add_parser(
        "distill", help="distill the teacher into the student or into LUTs (needs the torch extra)"
    )
    dsub = p.add_subparsers(dest="distill_command", required=True, metavar="TARGET")
    q = dsub.add_parser(
        "student",
        help="~10x smaller network without text input (the student backend)",
        description="Feature loss (learned 1x1 projections at three levels), output L1 to the "
        "teacher, and the base fusion loss (DTPF eq. 17-19). --w-feat 0 --w-out 0 trains the same "
        "student on the base loss alone (the ablation). Resumable like train teacher.",
    )
    _training_args(q, 2000, "runs/student")
    q.add_argument(
        "--teacher",
        type=Path,
        help="teacher checkpoint (runs/teacher/teacher.pt); not needed to pre-train the restorers "
        "(--train-only restore with --w-base 0 --w-feat 0 --w-out 0)",
    )
    for flag, default, what in (
        ("--w-feat", 1.0, "L1 between the projected student features and the teacher's, at 3 levels"),
        ("--w-out", 4.0, "L1 between the student's and the teacher's outputs"),
        ("--w-base", 1.0, "the base fusion loss to the clean sources"),
    ):
        q.add_argument(
            flag, type=NON_NEGATIVE, default=default, help=f"weight of {what} (default {default:g})"
        )
    q.add_argument(
        "--teacher-input",
        choices=("degraded", "clean"),
        default="degraded",
        help="what the teacher fuses when --degrade makes the student's input degraded: the same "
        "degraded pair (DTPF, with its sentence; default) or the clean pair it was made from, so "
        "the student learns to give on degraded input what the teacher gives on clean input",
    )
    q.add_argument(
        "--restore",
        action="store_true",
        help="the student-restore architecture: a small restorer per source in front of the fusion, "
        "trained to give back the clean crop (with --degrade); --init may name a plain student",
    )
    q.add_argument(
        "--w-restore",
        type=NON_NEGATIVE,
        default=1.0,
        help="weight of the restorers' L1 to the clean crops, values and Sobel gradients (default 1)",
    )
    q.add_argument(
        "--w-restore-grad",
        type=NON_NEGATIVE,
        default=1.0,
        help="weight of the Sobel-gradient term within the restorers' loss, against 1 for the values: "
        "higher asks for sharper edges (default 1)",
    )
    q.add_argument(
        "--train-only",
        choices=("all", "restore"),
        default="all",
        help="restore: train the restorers alone, the fusion keeping the weights of --init (default all)",
    )
    q.add_argument(
        "--ship",
        type=Path,
        metavar="FILE.pt",
        help="also write the result with float16 weights (how rtfuse/weights/student.pt is made)",
    )
    q.set_defaults(func=cmd_distill_student)
    q = dsub.add_parser(
        "lut",
        help="fit a 3-D or 4-D LUT and its context net to the teacher (the lut backends)",
        description="Fits the table and the context net through the PyTorch twin to the teacher's "
        "outputs on training crops (L1 + SSIM, monotonicity and TV regularisers) and exports the "
        ".npz the Numba kernel loads.",
    )
    q.add_argument("--teacher", type=Path, required=True, help="teacher checkpoint")
    q.add_argument("--kind", choices=tuple(KINDS), default="3d")
    q.add_argument("-o", "--output", type=Path, required=True, help="LUT .npz to write")
    q.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[Path("../shared/data/roadscene")],
        help="one or more folders with vis/ and ir/ pairs; the training split of each is used "
        "(the teacher needs no labels, so any registered pairs help)",
    )
    q.add_argument("--init", type=Path, help="start from this LUT (default: the analytic one)")
    q.add_argument(
        "--ckpt",
        type=Path,
        help="resumable state: re-running the command continues from it "
        "(default runs/lutfit/<output stem>.last.pt)",
    )
    q.add_argument(
        "--context-bins",
        type=integer(2),
        default=8,
        help="nodes on the table's context axis when starting fresh (default 8)",
    )
    q.add_argument("--steps", type=COUNT, default=1500)
    q.add_argument("--batch", type=COUNT, default=8)
    q.add_argument("--crop", type=integer(16), default=192)
    q.add_argument("--bank", type=COUNT, default=320, help="crops whose teacher outputs are computed once")
    q.add_argument(
        "--dark", type=SHARE, default=0.5, help="share of crops darkened to cover night scenes (default 0.5)"
    )
    q.add_argument(
        "--grad-weight",
        type=NON_NEGATIVE,
        default=1.0,
        help="weight of the Sobel-gradient L1 to the teacher (keeps its detail; default 1.0)",
    )
    q.add_argument(
        "--detail",
        type=POSITIVE,
        default=1.0,
        help="gradient target = detail x the teacher's Sobel gradient (> 1: the table adds local "
        "contrast the teacher lacks; default 1.0)",
    )
    q.add_argument(
        "--ir-dark",
        type=SHARE,
        default=0.5,
        help="share of crops with the IR darkened (gain 0.2-0.7) to cover cold scenes (default 0.5)",
    )
    q.add_argument(
        "--degrade",
        type=SHARE,
        default=0.0,
        help="share of crops degraded (rtfuse/training/degrade.py); the teacher is told what is wrong "
        "with them, and the table learns from its cleaner outputs not to sharpen noise (default 0)",
    )
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--threads", type=COUNT, help="CPU threads for torch (default: all cores)")
    q.set_defaults(func=cmd_distill_lut)


def _add_lut(sub) -> None:
    """`rtfuse lut info|init`."""
    p = sub.add_parser("lut", help="inspect or create LUT files")
    lsub = p.add_subparsers(dest="lut_command", required=True, metavar="ACTION")
    q = lsub.add_parser("info", help="print a LUT file's axes, ranges, context net and metadata")
    q.add_argument("file", type=Path)
    q.set_defaults(func=cmd_lut_info)
    q = lsub.add_parser("init", help="write the analytic (UNTRAINED) starting LUT")
    q.add_argument("--kind", choices=tuple(KINDS), default="3d")
    q.add_argument("-o", "--output", type=Path, required=True)
    q.set_defaults(func=cmd_lut_init)


def _add_export(sub) -> None:
    """`rtfuse export onnx`."""
    p = sub.add_parser("export", help="write a fusion network in another format (ONNX)")
    esub = p.add_subparsers(dest="export_command", required=True, metavar="FORMAT")
    q = esub.add_parser(
        "onnx",
        help="the student or teacher as ONNX, for ONNX Runtime (dynamic batch, height, width; needs "
        "the export extra)",
        description="Write a network as ONNX: inputs vis_y and ir (float32 Nx1xHxW in [0,1]; the "
        "teacher also takes text, Nx384, default its 'clean' embedding), output fused_y. The colour "
        "rule stays outside the graph. load_fuser runs a .onnx file on ONNX Runtime.",
    )
    q.add_argument("--backend", choices=("student", "teacher"), default="student", help="default: student")
    q.add_argument(
        "--weights",
        type=Path,
        help="the .pt checkpoint (default: the shipped student; the teacher needs one)",
    )
    q.add_argument("-o", "--output", type=Path, required=True, help="the ONNX file to write (NAME.onnx)")
    q.set_defaults(func=cmd_export_onnx)


def build_parser() -> argparse.ArgumentParser:
    parser = _ConfigAwareParser(
        prog="rtfuse",
        description="Real-time infrared + visible fusion. Each command has its own --help.",
    )
    from rtfuse import __version__

    parser.add_argument("--version", action="version", version=f"rtfuse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for add in (_add_fuse, _add_batch, _add_run, _add_demo, _add_bench, _add_eval, _add_train, _add_distill):
        add(sub)
    add_calibrate_parser(sub, size_arg)
    sub.choices["calibrate"].set_defaults(func=cmd_calibrate)
    _add_lut(sub)
    _add_export(sub)
    for name in CONFIG_COMMANDS:
        sub.choices[name].add_argument(
            "--config",
            type=Path,
            metavar="FILE.yaml",
            help="read options from YAML (keys are option names, e.g. backend: lut3d, "
            "ir-agc: percentile); flags on the command line win",
        )
    return parser


CONFIG_COMMANDS = ("fuse", "run", "demo", "bench")  # the commands that take --config


def config_tokens(path: Path) -> list[str]:
    """A YAML file of ``option: value`` as command-line tokens (``--option=value``).

    They are parsed before the command line's own flags, which therefore win; argparse checks
    every value exactly as it checks typed ones. ``true`` gives a bare flag, ``false`` or null
    nothing, a list a comma-separated value.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RtfuseError(f"config {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise RtfuseError(f"config {path} is not readable YAML ({e})") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise RtfuseError(f"config {path} must be a mapping of option: value")
    tokens = []
    for key, value in data.items():
        opt = "--" + str(key).lstrip("-").replace("_", "-")
        if opt == "--config" or value is None or value is False:
            continue
        if value is True:
            tokens.append(opt)
        elif isinstance(value, (list, tuple)):
            tokens.append(f"{opt}={','.join(map(str, value))}")
        elif isinstance(value, dict):
            raise RtfuseError(f"config {path}: option {key!r} must be a single value, not a mapping")
        else:
            tokens.append(f"{opt}={value}")
    return tokens


class _ConfigAwareParser(argparse.ArgumentParser):
    """One line per usage error (not the whole usage block), naming the config file when one was read,
    since a bad value may come from it."""

    config: Path | None = None

    def error(self, message: str):
        if self.config is not None:
            message += f" (options from {self.config} included)"
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _drop_camera_options(command: str, config: Path, tokens: list[str], rest: list[str]) -> list[str]:
    """A config shared by ``run`` and the file commands may hold camera options: those are skipped,
    with a note, by the commands that open no camera."""
    from_config = [t for t in rest if t in tokens]
    if command == "run" or not from_config:
        return rest
    cameras = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    add_camera_args(cameras)
    try:
        left = cameras.parse_known_args(from_config)[1]
    except argparse.ArgumentError:
        return rest
    skipped = [t for t in from_config if t not in left]
    for t in skipped:
        note(
            console,
            f"config {config}: {t.split('=')[0]} is a camera option of `rtfuse run`; "
            f"`rtfuse {command}` ignores it",
        )
    return [t for t in rest if t not in skipped]


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``, with the options of ``--config FILE`` placed before the command's own."""
    parser = build_parser()
    if argv and argv[0] in CONFIG_COMMANDS:
        pre = argparse.ArgumentParser(add_help=False)
        pre.add_argument("--config", type=Path)
        config = pre.parse_known_args(argv[1:])[0].config
        if config is not None:
            _ConfigAwareParser.config = config
            tokens = config_tokens(config)
            args, rest = parser.parse_known_args([argv[0], *tokens, *argv[1:]])
            rest = _drop_camera_options(argv[0], config, tokens, rest)
            unknown = [t.split("=")[0].lstrip("-") for t in rest if t in tokens]
            if unknown:
                raise RtfuseError(
                    f"config {config}: unknown option {unknown[0]!r} for `rtfuse {argv[0]}`; "
                    f"see `rtfuse {argv[0]} --help`"
                )
            if rest:
                parser.error(f"unrecognized arguments: {' '.join(rest)}")
            return args
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse(argv)
        return int(args.func(args) or 0)
    except RtfuseError as e:
        # Library messages speak of values; here the setting that fixes it gets its flag.
        error(console, with_flag(e))
        return 1
    except KeyboardInterrupt:
        console.print(f"rtfuse: stopped by {interrupt.name()}", style="yellow")
        return interrupt.exit_code()
    except Exception as e:
        # The stop signal, come back as another error from code it passed through (interrupt.is_stop).
        if not interrupt.is_stop(e):
            raise
        console.print(f"rtfuse: stopped by {interrupt.name()}", style="yellow")
        return interrupt.exit_code()


if __name__ == "__main__":
    from rtfuse._entry import main as entry

    entry()
