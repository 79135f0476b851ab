"""End-to-end `rtfuse fuse` throughput vs decode + encode alone, on the same video files.

Baseline: one loop that decodes both files with PyAV and encodes the visible frames with the
same encoder settings (no pairing, alignment or fusion). rtfuse: the threaded pipeline
(decode both, pair, align, fuse with ``--backend``, encode). Runs alternate, medians reported.

    .venv/bin/python benchmarks/bench_pipeline.py [--vis V.mp4 --ir I.mp4] [--runs 5]
"""

from __future__ import annotations

import argparse
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


def decode_encode(vis: Path, ir: Path, out: Path, codec: str, preset: str, crf: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    with av.open(str(vis)) as cv, av.open(str(ir)) as ci, av.open(str(out), "w") as co:
        sv, si = cv.streams.video[0], ci.streams.video[0]
        sv.thread_type = si.thread_type = "AUTO"
        enc = "libx264" if codec == "h264" else "ffv1"
        so = co.add_stream(
            enc,
            rate=sv.average_rate or Fraction(30),
            options={"preset": preset, "crf": str(crf)} if codec == "h264" else {},
        )
        so.width, so.height = sv.codec_context.width, sv.codec_context.height
        so.pix_fmt = "yuv420p" if codec == "h264" else "bgr0"
        n = 0
        for fv, fi in zip(cv.decode(sv), ci.decode(si)):
            img = fv.to_ndarray(format="bgr24")
            fi.to_ndarray(format="bgr24")
            for p in so.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                co.mux(p)
            n += 1
        for p in so.encode():
            co.mux(p)
    return n, time.perf_counter() - t0


def rtfuse_fuse(
    vis: Path, ir: Path, out: Path, codec: str, preset: str, crf: int, fuser
) -> tuple[int, float]:
    """The pipeline as `rtfuse fuse` builds it, with the fuser already loaded."""
    from rtfuse.pipeline import Pipeline
    from rtfuse.sinks.video import VideoSink
    from rtfuse.sources import open_source

    t0 = time.perf_counter()
    pipe = Pipeline(
        open_source(str(vis), "vis"),
        open_source(str(ir), "ir"),
        fuser,
        [VideoSink(out, codec=codec, preset=preset, crf=crf)],
    )
    report = pipe.run()
    return report.stats.frames_out, time.perf_counter() - t0


def rtfuse_cli(vis: Path, ir: Path, out: Path, codec: str, preset: str, crf: int, backend: str) -> float:
    """The whole `rtfuse fuse` command in a fresh process: start-up, imports and LUT loading included."""
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rtfuse.cli",
            "fuse",
            "--vis",
            str(vis),
            "--ir",
            str(ir),
            "-o",
            str(out),
            "--codec",
            codec,
            "--preset",
            preset,
            "--crf",
            str(crf),
            "--backend",
            backend,
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vis", type=Path, default=VIDEO / "0111_1716_vis.mp4")
    ap.add_argument("--ir", type=Path, default=VIDEO / "0111_1716_ir.mp4")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--codec", default="h264")
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--crf", type=int, default=20)
    ap.add_argument("--backend", default="lut")
    args = ap.parse_args()
    if not args.vis.is_file() or not args.ir.is_file():
        sys.exit(f"input videos not found: {args.vis}, {args.ir} (pass --vis/--ir)")
    from rtfuse.fusion.registry import load_fuser

    fuser = load_fuser(args.backend)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"
        rtfuse_fuse(args.vis, args.ir, out, args.codec, args.preset, args.crf, fuser)  # warm-up (JIT cache)
        base, ours, cli = [], [], []
        for _ in range(args.runs):
            n0, t = decode_encode(args.vis, args.ir, out, args.codec, args.preset, args.crf)
            base.append(n0 / t)
            n1, t = rtfuse_fuse(args.vis, args.ir, out, args.codec, args.preset, args.crf, fuser)
            ours.append(n1 / t)
            cli.append(
                n1 / rtfuse_cli(args.vis, args.ir, out, args.codec, args.preset, args.crf, args.backend)
            )
    b, o, c = statistics.median(base), statistics.median(ours), statistics.median(cli)
    print(
        f"inputs: {args.vis.name} + {args.ir.name}, {n0} frames; {args.codec} preset {args.preset} crf {args.crf}"
    )
    print("| path | median fps | runs |")
    print("|---|---:|---:|")
    print(f"| decode both + encode (no fusion), one loop | {b:.0f} | {args.runs} |")
    print(f"| rtfuse pipeline (decode, pair, align, fuse {args.backend}, encode) | {o:.0f} | {args.runs} |")
    print(
        f"| whole `rtfuse fuse` command (process start, imports, LUT load included) | {c:.0f} | {args.runs} |"
    )
    print(f"\nthe pipeline runs at {100 * o / b:.0f} % of decode+encode alone")


if __name__ == "__main__":
    main()
