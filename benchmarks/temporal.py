"""Temporal stability of each LUT backend on a real clip: does the fusion add flicker?

    .venv/bin/python benchmarks/temporal.py [--vis V.mp4 --ir I.mp4] [--frames 150] [--backends lut,lut3d]

For consecutive frames t-1, t of the real paired M3SVD clip (read and paired by timestamp as the
pipeline does: VideoFileSource + sync.pair_nearest), it reports the mean |F_t - F_{t-1}| of each
backend's fused luma divided by the same for the per-pixel max of the sources, which carries the
same scene motion and sensor noise. A ratio near the max's 1.0 means the
fusion adds no flicker of its own; sharpening raises it by amplifying the sources' temporal noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VIDEO = REPO.parent / "shared" / "data" / "video"


def main() -> None:
    from itertools import islice

    import cv2

    from rtfuse.fusion.registry import load_fuser
    from rtfuse.sources.base import DEFAULT_FPS
    from rtfuse.sources.video import VideoFileSource
    from rtfuse.stage import FusionStage
    from rtfuse.sync import pair_nearest

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vis", type=Path, default=VIDEO / "0111_1716_vis.mp4")
    ap.add_argument("--ir", type=Path, default=VIDEO / "0111_1716_ir.mp4")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--backends", default="lut,lut3d,lut4d,blend")
    args = ap.parse_args()
    if not args.vis.is_file() or not args.ir.is_file():
        sys.exit(f"input videos not found: {args.vis}, {args.ir} (pass --vis/--ir)")
    with VideoFileSource(args.vis, "visible") as sv, VideoFileSource(args.ir, "IR") as si:
        period = 1.0 / (sv.fps or DEFAULT_FPS)
        pairs = list(islice(pair_nearest(sv.frames(), si.frames(), tolerance=0.5 * period), args.frames))
    prep = FusionStage(None)  # prepares each pair as the pipeline does (one stream: one stage)
    prepared = [prep.prepare(fv.image, fi.image, fi.index) for fv, fi in pairs]
    vis, ir = [v for v, _ in prepared], [i for _, i in prepared]
    n = len(pairs)
    gray = [cv2.cvtColor(v, cv2.COLOR_BGR2GRAY).astype(np.float64) for v in vis]
    ref = [np.maximum(g, i) for g, i in zip(gray, ir)]

    def change(seq):
        return float(np.mean([np.abs(b - a).mean() for a, b in zip(seq, seq[1:])]))

    base = change(ref)
    print(
        f"{args.vis.name} + {args.ir.name}, {n} frames; mean |F_t - F_t-1| of max(Y, IR): {base:.3f} levels"
    )
    print("| backend | mean abs frame change | ratio to max |")
    print("|---|---:|---:|")
    for name in args.backends.split(","):
        stage = FusionStage(load_fuser(name))
        fused = [
            cv2.cvtColor(stage.fuse(v, i), cv2.COLOR_BGR2GRAY).astype(np.float64) for v, i in zip(vis, ir)
        ]
        c = change(fused)
        print(f"| {name} | {c:.3f} | {c / base:.2f} |")


if __name__ == "__main__":
    main()
