"""`rtfuse fuse` vs decode + encode alone on the same videos, by codec and kernel threads, start-up vs
steady state.

Four paths, runs alternating, medians reported:

- decode + encode alone: one loop that decodes both files with PyAV and encodes the visible frames
  with the same encoder settings and codec threads (no pairing, alignment or fusion);
- the same loop in a fresh interpreter (its start-up and ``import av`` included), the like-for-like
  baseline of the whole command, and the same run timed inside that interpreter (the loop alone, run
  once in its process, as a one-off script runs it);
- the rtfuse pipeline, in this process, built as `rtfuse fuse` builds it (fuser loaded once);
- the whole `rtfuse fuse` command in a fresh process (start-up, imports and LUT loading included).

For the first two, "start-up" is the time to the first encoded frame handed to the muxer (opening the
files and codecs, the first decode, fuse and encode) and "steady" is the rate from frame 30 to the last
frame (pipelines full, before the encoder's final flush). "cores" is CPU time / wall time.
``--loop K`` adds a clip made by repeating the input K times (packets copied, not re-encoded); with two
clip lengths the whole command's fixed start-up (process, imports, LUT load, codec set-up, final
flush) and its steady rate are told apart by the difference of their times.

    .venv/bin/python benchmarks/bench_pipeline.py [--vis V.mp4 --ir I.mp4] [--runs 5] [--loop 1,10]
        [--threads 0,1,2] [--kernel-threads 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VIDEO = REPO.parent / "shared" / "data" / "video"
STEADY_FROM = 30  # frames: the codecs' frame-thread pipelines and the pipeline's queues are full by then

from rtfuse.sources.video import set_codec_threads  # noqa: E402


def _cpu_busy(seconds: float = 1.0) -> float:
    """Share of the machine's CPU time that other processes kept busy over ``seconds`` (before a run:
    other jobs' load; this process's own lingering threads, e.g. Numba's spinning workers, not counted)."""

    def snap() -> list[int]:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]

    a, c0 = snap(), _cpu()
    time.sleep(seconds)
    d = [y - x for x, y in zip(a, snap())]
    own = (_cpu() - c0) * os.sysconf("SC_CLK_TCK")
    return max(sum(d) - d[3] - d[4] - own, 0) / max(sum(d), 1)


def _cpu(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def loop_clip(src: Path, dst: Path, times: int) -> Path:
    """``src`` repeated ``times`` times, by copying its packets with shifted timestamps (same codec, same
    bitrate, so the decode cost per frame is the input's)."""
    with av.open(str(src)) as ci, av.open(str(dst), "w") as co:
        si = ci.streams.video[0]
        so = co.add_stream_from_template(si)
        packets = [p for p in ci.demux(si) if p.size]
        span = max(p.pts + (p.duration or 0) for p in packets) - min(p.pts for p in packets)
        for k in range(times):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts, q.duration = p.pts + k * span, p.dts + k * span, p.duration
                q.is_keyframe, q.time_base, q.stream = p.is_keyframe, p.time_base, so
                co.mux(q)
    return dst


def decode_encode(vis: Path, ir: Path, out: Path, a: argparse.Namespace, threads: int) -> dict[str, float]:
    out.unlink(missing_ok=True)
    c0, t0 = _cpu(), time.perf_counter()
    stamps = []
    with av.open(str(vis)) as cv, av.open(str(ir)) as ci, av.open(str(out), "w") as co:
        sv, si = cv.streams.video[0], ci.streams.video[0]
        set_codec_threads(sv.codec_context, threads, frames=True)
        set_codec_threads(si.codec_context, threads, frames=True)
        enc = "libx264" if a.codec == "h264" else "ffv1"
        opts = {"preset": a.preset, "crf": str(a.crf)} if a.codec == "h264" else {}
        so = co.add_stream(enc, rate=sv.average_rate or Fraction(30), options=opts)
        so.width, so.height = sv.codec_context.width, sv.codec_context.height
        so.pix_fmt = "yuv420p" if a.codec == "h264" else "bgr0"
        set_codec_threads(so.codec_context, threads, frames=True)  # as VideoSink
        for fv, fi in zip(cv.decode(sv), ci.decode(si)):
            img = fv.to_ndarray(format="bgr24")
            fi.to_ndarray(format="bgr24")
            for p in so.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                co.mux(p)
            stamps.append(time.perf_counter())
        for p in so.encode():
            co.mux(p)
    return _result(t0, c0, stamps, time.perf_counter(), _cpu())


def decode_encode_process(
    vis: Path, ir: Path, out: Path, a: argparse.Namespace, threads: int
) -> tuple[dict, dict]:
    """:func:`decode_encode` in a fresh interpreter: timed from outside (its start-up and ``import av``
    included), the like-for-like baseline of the whole command, and timed inside (the loop alone, but
    run once in its process, as a user's one-off script runs it: the first run in a process is slower
    than the ones after it, e.g. 3.64 s then 3.07-3.36 s on the 604-frame clip)."""
    out.unlink(missing_ok=True)
    c0, t0 = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    argv = [sys.executable, __file__, "--vis", str(vis), "--ir", str(ir), "--codec", a.codec]
    argv += ["--preset", a.preset, "--crf", str(a.crf), "--threads", str(threads), "--baseline-to", str(out)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - c0
    with av.open(str(out)) as c:
        n = sum(1 for p in c.demux(video=0) if p.size)
    return {"frames": n, "wall": wall, "fps": n / wall, "cores": cpu / wall}, json.loads(done.stdout)


def rtfuse_pipeline(
    vis: Path, ir: Path, out: Path, a: argparse.Namespace, threads: int, kthreads: int, fuser
) -> dict:
    """The pipeline exactly as `rtfuse fuse` builds it, with the fuser already loaded."""
    from rtfuse.cli import build_parser
    from rtfuse.runner import build, kernel_threads, video_sink

    out.unlink(missing_ok=True)
    args = build_parser().parse_args(_fuse_argv(vis, ir, out, a, threads, kthreads))
    stamps: list[float] = []
    c0, t0 = _cpu(), time.perf_counter()
    pipe = build(args, str(vis), str(ir), [video_sink(out, args)], fuser, kernel_threads=kernel_threads(args))
    pipe.on_frame = lambda n: stamps.append(time.perf_counter())
    report = pipe.run()
    res = _result(t0, c0, stamps, time.perf_counter(), _cpu())
    stages = report.stats.to_dict()["stages"]
    res.update({f"{k} ms": v["median_ms"] for k, v in stages.items()})
    return res


def rtfuse_command(
    vis: Path, ir: Path, out: Path, a: argparse.Namespace, threads: int, kthreads: int
) -> dict[str, float]:
    """The whole `rtfuse fuse` command in a fresh process."""
    out.unlink(missing_ok=True)
    c0, t0 = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    argv = [sys.executable, "-m", "rtfuse._entry", *_fuse_argv(vis, ir, out, a, threads, kthreads)]
    subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
    wall, cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - c0
    with av.open(str(out)) as c:
        n = sum(1 for p in c.demux(video=0) if p.size)
    return {"frames": n, "wall": wall, "fps": n / wall, "cores": cpu / wall}


def _fuse_argv(
    vis: Path, ir: Path, out: Path, a: argparse.Namespace, threads: int, kthreads: int
) -> list[str]:
    return [
        "fuse",
        *("--vis", str(vis), "--ir", str(ir), "-o", str(out), "--backend", a.backend),
        *("--codec", a.codec, "--preset", a.preset, "--crf", str(a.crf), "--codec-threads", str(threads)),
        *("--kernel-threads", str(kthreads)),
    ]


def _result(t0: float, c0: float, stamps: list[float], t1: float, c1: float) -> dict[str, float]:
    n = len(stamps)
    res = {"frames": n, "wall": t1 - t0, "fps": n / (t1 - t0), "cores": (c1 - c0) / (t1 - t0)}
    res["startup ms"] = 1e3 * (stamps[0] - t0) if stamps else float("nan")
    if n > STEADY_FROM + 10:
        res["steady fps"] = (n - 1 - STEADY_FROM) / (stamps[-1] - stamps[STEADY_FROM])
    return res


def _med(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r]
    return statistics.median(vals) if vals else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vis", type=Path, default=VIDEO / "0111_1716_vis.mp4")
    ap.add_argument("--ir", type=Path, default=VIDEO / "0111_1716_ir.mp4")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--loop", default="1", help="comma-separated repeat counts of the clip (1: the clip)")
    ap.add_argument("--threads", default="0", help="comma-separated codec thread counts (0: automatic)")
    ap.add_argument(
        "--kernel-threads", default="0", help="comma-separated `--kernel-threads` values (0: automatic)"
    )
    ap.add_argument("--codec", default="h264")
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--backend", default="lut")
    ap.add_argument("--no-command", action="store_true", help="skip the whole-command runs")
    ap.add_argument("--baseline-to", type=Path, help=argparse.SUPPRESS)  # one decode + encode, then exit
    a = ap.parse_args()
    if not a.vis.is_file() or not a.ir.is_file():
        sys.exit(f"input videos not found: {a.vis}, {a.ir} (pass --vis/--ir)")
    if a.baseline_to is not None:
        print(json.dumps(decode_encode(a.vis, a.ir, a.baseline_to, a, int(a.threads))))
        return
    from rtfuse.fusion.registry import load_fuser

    fuser = load_fuser(a.backend)
    threads = [int(t) for t in a.threads.split(",")]
    kthreads = [int(k) for k in a.kernel_threads.split(",")]
    configs = [(t, k) for t in threads for k in kthreads]
    print(f"{a.codec} preset {a.preset} crf {a.crf}, backend {a.backend}, {a.runs} runs, medians", flush=True)
    print(
        "| clip | frames | codec threads | kernel threads | path | fps (whole run) | start-up ms | steady fps "
        "| cores busy |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    labels = {
        "base": "decode both + encode alone",
        "baseproc": "decode both + encode alone, fresh process",
        "basecold": "decode both + encode alone, first run in a fresh process (timed inside)",
        "pipe": "rtfuse pipeline (in process)",
        "cmd": "whole `rtfuse fuse` command",
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"
        rtfuse_pipeline(a.vis, a.ir, out, a, 0, 0, fuser)  # warm-up (Numba cache, page cache)
        cmd_runs: dict[tuple[int, int], list[tuple[int, float]]] = {}  # config -> (frames, median wall)
        for loops in (int(k) for k in a.loop.split(",")):
            vis, ir = a.vis, a.ir
            if loops > 1:
                vis = loop_clip(a.vis, Path(tmp) / f"x{loops}_{a.vis.name}", loops)
                ir = loop_clip(a.ir, Path(tmp) / f"x{loops}_{a.ir.name}", loops)
            res: dict[tuple[int, int, str], list[dict]] = {}
            busy = []
            for _ in range(a.runs):  # every path once per round, so slow phases of the machine hit all
                for t in threads:
                    busy.append(_cpu_busy())
                    res.setdefault((t, 0, "base"), []).append(decode_encode(vis, ir, out, a, t))
                    if not a.no_command:
                        outer, inner = decode_encode_process(vis, ir, out, a, t)
                        res.setdefault((t, 0, "baseproc"), []).append(outer)
                        res.setdefault((t, 0, "basecold"), []).append(inner)
                    for k in kthreads:
                        res.setdefault((t, k, "pipe"), []).append(
                            rtfuse_pipeline(vis, ir, out, a, t, k, fuser)
                        )
                        if not a.no_command:
                            res.setdefault((t, k, "cmd"), []).append(rtfuse_command(vis, ir, out, a, t, k))
            name = vis.name if loops == 1 else f"{a.vis.name} x{loops}"
            for (t, k, path), rows in res.items():
                print(
                    f"| {name} | {rows[0]['frames']} | {t or 'auto'} | "
                    f"{(k or 'auto') if path in ('pipe', 'cmd') else '-'} | {labels[path]} "
                    f"| {_med(rows, 'fps'):.0f} | {_med(rows, 'startup ms'):.0f} | {_med(rows, 'steady fps'):.0f} "
                    f"| {_med(rows, 'cores'):.2f} |",
                    flush=True,
                )
            for t, k in configs:
                b, p = res[(t, 0, "base")], res[(t, k, "pipe")]
                bp, bc, c = (res.get(key) for key in ((t, 0, "baseproc"), (t, 0, "basecold"), (t, k, "cmd")))
                stages = ", ".join(
                    f"{s[:-3]} {_med(p, s):.2f}" for s in p[0] if s.endswith(" ms") and s != "startup ms"
                )
                print(
                    f"{name}, codec threads {t or 'auto'}, kernel threads {k or 'auto'}: "
                    f"pipeline/base {_med(p, 'fps') / _med(b, 'fps'):.2f} "
                    f"(steady {_med(p, 'steady fps') / _med(b, 'steady fps'):.2f})"
                    + (f", command/base {_med(c, 'fps') / _med(b, 'fps'):.2f}" if c else "")
                    + (f", command/base-cold {_med(c, 'fps') / _med(bc, 'fps'):.2f}" if c and bc else "")
                    + (f", command/base-process {_med(c, 'fps') / _med(bp, 'fps'):.2f}" if c and bp else "")
                    + f"; pipeline stage medians (ms): {stages}",
                    flush=True,
                )
                if c:
                    cmd_runs.setdefault((t, k), []).append((c[0]["frames"], _med(c, "wall")))
            print(f"CPUs busy before the runs (other jobs): median {statistics.median(busy):.0%}", flush=True)
        # Two clip lengths separate the whole command's fixed start-up from its steady rate.
        for (t, k), runs in cmd_runs.items():
            if len(runs) >= 2:
                (n0, w0), (n1, w1) = runs[0], runs[-1]
                rate = (n1 - n0) / (w1 - w0)
                print(
                    f"whole command, codec threads {t or 'auto'}, kernel threads {k or 'auto'}: steady "
                    f"{rate:.0f} fps, fixed start-up and finish {w0 - n0 / rate:.2f} s "
                    f"(from the {n0}- and {n1}-frame clips)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
