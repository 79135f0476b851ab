"""Kernel benchmark: median ms per frame of our fusion paths vs the LUT-Fuse speed reference.

All rows run on the same frames, in one process, on ``--threads`` threads (numba and torch).
Each row is reported as a ratio to the reference (how many times faster).

    .venv/bin/python benchmarks/bench_kernel.py [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

RESOLUTIONS = [(640, 480), (1280, 720), (1920, 1080)]
REAL_FRAME = REPO.parent / "shared" / "data" / "video_frames" / "0111_1716"


def frames_at(w: int, h: int) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Three (vis, ir) pairs at w x h: real M3SVD frames resized when present, else synthetic."""
    vis_files = sorted((REAL_FRAME / "vis").glob("*.png")) if REAL_FRAME.is_dir() else []
    if vis_files:
        pairs = []
        for f in vis_files[:3]:
            vis = cv2.resize(cv2.imread(str(f)), (w, h), interpolation=cv2.INTER_LINEAR)
            ir = cv2.imread(str(REAL_FRAME / "ir" / f.name), cv2.IMREAD_GRAYSCALE)
            pairs.append((vis, cv2.resize(ir, (w, h), interpolation=cv2.INTER_LINEAR)))
        return "real M3SVD 0111_1716 frames, resized", pairs
    from rtfuse.synthetic import SyntheticScene

    scene = SyntheticScene(w, h, seed=0)
    return "synthetic scene", [scene.render(i) for i in range(3)]


def median_ms(fn, frames, min_reps: int = 5, budget_s: float = 2.0, max_reps: int = 200) -> tuple[float, int]:
    fn(*frames[0])  # warm-up (JIT, allocator, caches)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget_s):
        args = frames[len(times) % len(frames)]
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times)), len(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    ap.add_argument("--sizes", default=",".join(f"{w}x{h}" for w, h in RESOLUTIONS))
    args = ap.parse_args()

    import numba
    import torch
    from lutfuse_reference import LutFuseReference

    from rtfuse.fusion.lut import LutFuser, context_map
    from rtfuse.fusion.registry import WEIGHTS_DIR
    from rtfuse.fusion.twin import LutFusion
    from rtfuse.irclean import IrCleaner

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    lut3 = LutFuser.from_file(WEIGHTS_DIR / "lut3d_untrained.npz")
    lut4 = LutFuser.from_file(WEIGHTS_DIR / "lut4d_untrained.npz")
    lut4dd = LutFuser.from_file(WEIGHTS_DIR / "lut4d_detail.npz")  # no untrained file shipped; same cost
    twin3, twin4 = LutFusion(lut3.model).eval(), LutFusion(lut4.model).eval()
    ref = LutFuseReference().eval()

    def torch_call(module, scale_inputs: bool):
        def run(vis, ir):
            v = torch.from_numpy(vis).permute(2, 0, 1)[None]
            i = torch.from_numpy(ir)[None, None]
            if scale_inputs:
                v, i = v.float() / 255.0, i.float() / 255.0
            with torch.inference_mode():
                out = module(v, i)
            return out

        return run

    rows = [
        ("numba lut3d (context included)", lut3),
        ("numba lut4d (context included)", lut4),
        ("numba lut4d-detail (context included)", lut4dd),
        ("  context alone (block stats + net)", lambda v, i: context_map(v, i, lut3.model)),
        # The --ir-clean stage on an IR of the same size (a stream: one estimate per frame, averaged).
        ("ir-clean (destripe + denoise the IR, per frame)", lambda v, i, c=IrCleaner(): c(i)),
        ("torch twin lut3d", torch_call(twin3, False)),
        ("torch twin lut4d", torch_call(twin4, False)),
        ("LUT-Fuse reference (torch, full-res CNN + 16^4 LUT)", torch_call(ref, True)),
    ]
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    results = {
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "numba": numba.__version__,
        "torch": torch.__version__,
        "sizes": {},
    }
    for w, h in sizes:
        source, frames = frames_at(w, h)
        ms = {}
        for name, fn in rows:
            ref_row = name.startswith("LUT-Fuse")
            ms[name] = median_ms(fn, frames, min_reps=3 if ref_row else 5, budget_s=4.0 if ref_row else 2.0)
        ref_ms = ms[rows[-1][0]][0]
        results["sizes"][f"{w}x{h}"] = {
            "frames": source,
            "rows": {n: {"ms": m, "reps": k, "speedup_vs_ref": ref_ms / m} for n, (m, k) in ms.items()},
        }
        print(f"\n### {w}x{h} ({source}, {args.threads} threads)\n")
        print("| path | median ms/frame | fps | reps | x faster than reference |")
        print("|---|---:|---:|---:|---:|")
        for name, (m, k) in ms.items():
            print(f"| {name} | {m:.2f} | {1e3 / m:.0f} | {k} | {ref_ms / m:.1f} |")
        ctx = ms["  context alone (block stats + net)"][0] / ms["numba lut3d (context included)"][0]
        print(f"\ncontext share of the lut3d frame time: {100 * ctx:.0f} %")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
