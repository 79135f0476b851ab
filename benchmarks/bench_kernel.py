"""Kernel benchmark: median ms per frame of our fusion paths, by content and vs the LUT-Fuse reference.

Two tables, each measured in one process on ``--threads`` threads (numba and torch):

1. **Content** (``--content-size``, default 1920x1080): every ``lut`` kernel (``lut3d``, ``lut4d``
   and the default ``lut`` = 4d-detail, context included) on *real*, *noisy* (real + IR column
   stripes + Gaussian noise) and *random* frames. The kernels and contents are interleaved inside
   each of ``--rounds`` rounds; a row gives the median of the per-round medians and their range.
   The "before" rows are the kernels as they were up to issue 16 (Y and IR both baked to 256 x 256,
   uint16 tables of 1 MB (3-D) and 8-9 MB (4-D)), kept in this file only as a measured comparison.
2. **Reference** (``--sizes``): our paths on real frames, each as a ratio to the LUT-Fuse reference
   (how many times faster).

The targets' ratios follow the tables. Real frames: ``../shared/data/video_frames/0111_1716``
resized; without it the script says so and uses a synthetic scene (the content table then
compares synthetic, noisy-synthetic and random frames).

    .venv/bin/python benchmarks/bench_kernel.py [--threads 2] [--rounds 5] [--json out.json]
    .venv/bin/python benchmarks/bench_kernel.py --sizes 1280x720 --rounds 7   # the targets only

On a machine shared with other busy processes, parallel wall times measure the scheduler (a
launch waits for its last thread); ``--threads 1 --clock cpu`` then compares the work itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from numba import njit, prange

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from rtfuse.fusion.kernels import _BAND, _context_row, _luma, _luma_row, _max_row, axis_coords  # noqa: E402

RESOLUTIONS = [(640, 480), (1280, 720), (1920, 1080)]
REAL_FRAME = REPO.parent / "shared" / "data" / "video_frames" / "0111_1716"
CONTENTS = ("real", "noisy", "random")


def frames_at(
    w: int, h: int, content: str = "real", n: int = 3
) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    """``n`` (vis BGR uint8 (h, w, 3), ir uint8 (h, w)) pairs of one content kind at w x h.

    real: M3SVD frames resized (a synthetic scene when the shared data is absent); noisy: those
    plus IR column stripes (std 8 levels) and Gaussian noise (IR std 8, visible std 4), drawn at
    the output resolution, so neighbouring pixels land in different LUT cells; random: uniform.
    """
    rng = np.random.default_rng(0)
    if content == "random":
        pairs = [
            (rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.integers(0, 256, (h, w), dtype=np.uint8))
            for _ in range(n)
        ]
        return "uniform random", pairs
    vis_files = sorted((REAL_FRAME / "vis").glob("*.png")) if REAL_FRAME.is_dir() else []
    if vis_files:
        source, pairs = "real M3SVD 0111_1716 frames, resized", []
        for f in vis_files[:n]:
            vis = cv2.resize(cv2.imread(str(f)), (w, h), interpolation=cv2.INTER_LINEAR)
            ir = cv2.imread(str(REAL_FRAME / "ir" / f.name), cv2.IMREAD_GRAYSCALE)
            pairs.append((vis, cv2.resize(ir, (w, h), interpolation=cv2.INTER_LINEAR)))
    else:
        from rtfuse.synthetic import SyntheticScene

        scene = SyntheticScene(w, h, seed=0)
        source, pairs = f"synthetic scene ({REAL_FRAME} is absent)", [scene.render(i) for i in range(n)]
    if content == "noisy":
        noisy = []
        for vis, ir in pairs:
            stripes = rng.normal(0, 8, (1, w))
            ir_n = ir + stripes + rng.normal(0, 8, (h, w))
            vis_n = vis + rng.normal(0, 4, vis.shape)
            noisy.append((np.clip(vis_n, 0, 255).astype(np.uint8), np.clip(ir_n, 0, 255).astype(np.uint8)))
        return source + " + stripes + Gaussian noise", noisy
    return source, pairs


# perf_counter (wall) by default; --clock cpu uses the process CPU time of all threads, which
# other processes on a shared machine disturb less (a ratio of two CPU times compares work done).
CLOCK = time.perf_counter


def median_ms(fn, frames, min_reps: int = 5, budget_s: float = 2.0, max_reps: int = 200) -> tuple[float, int]:
    fn(*frames[0])  # warm-up (JIT, allocator, caches)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < budget_s):
        args = frames[len(times) % len(frames)]
        t0 = CLOCK()
        fn(*args)
        times.append(CLOCK() - t0)
    return 1e3 * float(np.median(times)), len(times)


def paired_added_ms(base, extra, frames, reps: int = 100) -> float:
    """Median over ``reps`` frames of ``extra``'s time minus ``base``'s on the same frame, the two
    called one after the other, in turn first (the second finds the frame in cache): a cost of a few
    tenths of a millisecond on a 10 ms kernel is lost in the run-to-run noise of two separate
    medians."""
    base(*frames[0])
    extra(*frames[0])
    diffs = []
    for r in range(reps):
        args = frames[r % len(frames)]
        ms = {}
        for fn in (base, extra) if r % 2 == 0 else (extra, base):
            t0 = CLOCK()
            fn(*args)
            ms[fn] = CLOCK() - t0
        diffs.append(ms[extra] - ms[base])
    return 1e3 * float(np.median(diffs))


# --- The kernels before issue 16, for the "before" rows only ---------------------------------------
# Tables baked over Y *and* IR: (256, 256, Nc) and (256, 256, Ng, Nc) uint16, indexed [Y, IR, ...].


def bake_before(model) -> np.ndarray:
    from rtfuse.fusion.bake import interp_matrix

    ay = interp_matrix(model.table.shape[model.axes.index("vis_y")], *model.axis_range("vis_y"))
    ai = interp_matrix(model.table.shape[model.axes.index("ir")], *model.axis_range("ir"))
    t = model.table.astype(np.float64)
    if model.kind == "3d":
        dense = np.einsum("yn,im,nmc->yic", ay, ai, t, optimize=True)
    else:
        dense = np.einsum("yn,im,ngcm->yigc", ay, ai, t, optimize=True)
    return np.ascontiguousarray(np.rint(np.clip(dense, 0.0, 1.0) * (255.0 * 256.0)).astype(np.uint16))


@njit(inline="always")
def _apply_delta(vrow, dd, orow):
    for i in range(orow.shape[0]):
        orow[i] = min(max(np.int32(vrow[i]) + dd[i], 0), 255)


@njit(parallel=True, fastmath=True, nogil=True)
def fuse_lut3d_before(vis, ir, ctx, table, out):
    h, w = ir.shape
    hc, wc = ctx.shape
    nc = table.shape[2]
    flat = table.reshape(-1)
    kmax = nc - 2
    cx0, cx1, cwx = axis_coords(w, wc)
    cy0, cy1, cwy = axis_coords(h, hc)
    vis2 = vis.reshape(h, 3 * w)
    out2 = out.reshape(h, 3 * w)
    inv = np.float32(1.0 / 256.0)
    nbands = (h + _BAND - 1) // _BAND
    for band in prange(nbands):
        crow = np.empty(wc, np.float32)
        pos = np.empty(w, np.float32)
        lum = np.empty(w, np.int32)
        dd = np.empty(3 * w, np.int32)
        for y in range(band * _BAND, min(h, (band + 1) * _BAND)):
            vrow = vis2[y]
            irow = ir[y]
            _context_row(ctx, cy0, cy1, cwy, cx0, cx1, cwx, y, np.float32(nc - 1), crow, pos)
            for x in range(w):
                lum[x] = _luma(vrow[3 * x], vrow[3 * x + 1], vrow[3 * x + 2])
            for x in range(w):
                p = pos[x]
                k = min(int(p), kmax)
                wk = p - np.float32(k)
                lx = lum[x]
                base = (lx * 256 + np.int32(irow[x])) * nc + k
                t0 = np.float32(flat[base])
                v = (t0 + (np.float32(flat[base + 1]) - t0) * wk) * inv
                d = np.int32(v + np.float32(0.5)) - lx
                dd[3 * x] = d
                dd[3 * x + 1] = d
                dd[3 * x + 2] = d
            _apply_delta(vrow, dd, out2[y])


@njit(parallel=True, fastmath=True, nogil=True)
def fuse_lut4d_before(vis, ir, ctx, table, axis_scale, axis_lo, detail, out):
    h, w = ir.shape
    hc, wc = ctx.shape
    ng = table.shape[2]
    nc = table.shape[3]
    flat = table.reshape(-1)
    gmax = np.float32(ng - 1)
    kmax = nc - 2
    jmax = ng - 2
    gs = np.float32(axis_scale / (4.0 if detail else 8.0))
    g0 = np.float32(-axis_lo * axis_scale)
    cx0, cx1, cwx = axis_coords(w, wc)
    cy0, cy1, cwy = axis_coords(h, hc)
    vis2 = vis.reshape(h, 3 * w)
    out2 = out.reshape(h, 3 * w)
    inv = np.float32(1.0 / 256.0)
    nbands = (h + _BAND - 1) // _BAND
    for band in prange(nbands):
        ya = band * _BAND
        buf = np.empty((3, w + 2), np.int32)
        mbuf = np.empty((3 if detail else 1, w + 2), np.int32)
        crow = np.empty(wc, np.float32)
        pos = np.empty(w, np.float32)
        gpos = np.empty(w, np.float32)
        dd = np.empty(3 * w, np.int32)
        _luma_row(vis2[max(ya - 1, 0)], buf[(ya + 2) % 3])
        _luma_row(vis2[ya], buf[ya % 3])
        if detail:
            _max_row(buf[(ya + 2) % 3], ir[max(ya - 1, 0)], mbuf[(ya + 2) % 3])
            _max_row(buf[ya % 3], ir[ya], mbuf[ya % 3])
        for y in range(ya, min(h, ya + _BAND)):
            yn = min(y + 1, h - 1)
            _luma_row(vis2[yn], buf[(y + 1) % 3])
            mid = buf[y % 3]
            irow = ir[y]
            _context_row(ctx, cy0, cy1, cwy, cx0, cx1, cwx, y, np.float32(nc - 1), crow, pos)
            if detail:
                _max_row(buf[(y + 1) % 3], ir[yn], mbuf[(y + 1) % 3])
                mu = mbuf[(y + 2) % 3]
                mm = mbuf[y % 3]
                md = mbuf[(y + 1) % 3]
                for x in range(w):
                    d = 4 * mm[x + 1] - (mu[x + 1] + md[x + 1] + mm[x] + mm[x + 2])
                    gpos[x] = min(max(np.float32(d) * gs + g0, np.float32(0.0)), gmax)
            else:
                up = buf[(y + 2) % 3]
                dn = buf[(y + 1) % 3]
                for x in range(w):
                    gx = (up[x + 2] + 2 * mid[x + 2] + dn[x + 2]) - (up[x] + 2 * mid[x] + dn[x])
                    gy = (dn[x] + 2 * dn[x + 1] + dn[x + 2]) - (up[x] + 2 * up[x + 1] + up[x + 2])
                    gpos[x] = min(np.float32(abs(gx) + abs(gy)) * gs, gmax)
            for x in range(w):
                gp = gpos[x]
                j = min(int(gp), jmax)
                wj = gp - np.float32(j)
                p = pos[x]
                k = min(int(p), kmax)
                wk = p - np.float32(k)
                lx = mid[x + 1]
                base = ((lx * 256 + np.int32(irow[x])) * ng + j) * nc + k
                t00 = np.float32(flat[base])
                t01 = np.float32(flat[base + 1])
                t10 = np.float32(flat[base + nc])
                t11 = np.float32(flat[base + nc + 1])
                lo = t00 + (t01 - t00) * wk
                hi = t10 + (t11 - t10) * wk
                v = (lo + (hi - lo) * wj) * inv
                d = np.int32(v + np.float32(0.5)) - lx
                dd[3 * x] = d
                dd[3 * x + 1] = d
                dd[3 * x + 2] = d
            _apply_delta(vis2[y], dd, out2[y])


def before(fuser):
    """The pre-issue-16 kernel on ``fuser``'s model (same context net, same colour rule)."""
    from rtfuse.fusion.lut import context_map

    table = bake_before(fuser.model)

    def run(vis, ir):
        out = np.empty_like(vis)
        ctx = context_map(vis, ir, fuser.model)
        if fuser.model.kind == "3d":
            fuse_lut3d_before(vis, ir, ctx, table, out)
        else:
            fuse_lut4d_before(vis, ir, ctx, table, *fuser.axis, out)
        return out

    return run


# --- Tables -----------------------------------------------------------------------------------------


def content_table(kernels: dict, w: int, h: int, rounds: int, reps: int) -> dict:
    """{kernel: {content: (median of round medians, min, max)}} with kernels and contents interleaved."""
    sets = {c: frames_at(w, h, c) for c in CONTENTS}
    per: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for c in CONTENTS:
            for name, fn in kernels.items():
                per.setdefault((name, c), []).append(
                    median_ms(fn, sets[c][1], min_reps=reps, budget_s=0.0)[0]
                )
    res = {
        name: {c: (float(np.median(v)), min(v), max(v)) for (n, c), v in per.items() if n == name}
        for name in kernels
    }
    print(f"\n### Content: {w}x{h}, median of {rounds} round medians (range), ms/frame\n")
    print(f"real: {sets['real'][0]}; noisy: {sets['noisy'][0]}\n")
    print("| kernel (context included) | " + " | ".join(CONTENTS) + " | random / real |")
    print("|---|" + "---:|" * (len(CONTENTS) + 1))
    for name, row in res.items():
        cells = [f"{m:.2f} ({lo:.2f}-{hi:.2f})" for m, lo, hi in (row[c] for c in CONTENTS)]
        print(f"| {name} | " + " | ".join(cells) + f" | {row['random'][0] / row['real'][0]:.2f} |")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    ap.add_argument(
        "--sizes", default=",".join(f"{w}x{h}" for w, h in RESOLUTIONS), help="reference table sizes"
    )
    ap.add_argument("--content-size", default="1920x1080", help="content table size ('' skips it)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the content table")
    ap.add_argument("--reps", type=int, default=7, help="frames timed per kernel and round (content table)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall time or process CPU time")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time

    import numba
    import torch
    from lutfuse_reference import LutFuseReference

    from rtfuse.fusion.lut import LutFuser, context_map
    from rtfuse.fusion.registry import WEIGHTS_DIR
    from rtfuse.fusion.twin import LutFusion
    from rtfuse.irclean import IrCleaner
    from rtfuse.temporal import TemporalFilter
    from rtfuse.vissharpen import sharpen_visible

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    lut3 = LutFuser.from_file(WEIGHTS_DIR / "lut3d.npz")
    lut4 = LutFuser.from_file(WEIGHTS_DIR / "lut4d.npz")
    lut = LutFuser.from_file(WEIGHTS_DIR / "lut4d_detail.npz")  # the default `lut`
    twin3, twin4 = LutFusion(lut3.model).eval(), LutFusion(lut4.model).eval()
    ref = LutFuseReference().eval()
    results: dict = {
        "threads": args.threads,
        "clock": args.clock,
        "cpu": platform.processor() or platform.machine(),
        "loadavg_before": os.getloadavg(),
        "numba": numba.__version__,
        "torch": torch.__version__,
        "table_bytes": {"lut3d": lut3.table.nbytes, "lut4d": lut4.table.nbytes, "lut": lut.table.nbytes},
        "sizes": {},
    }
    print(
        f"load average before: {' '.join(f'{v:.2f}' for v in results['loadavg_before'])}; {args.threads} threads; clock {args.clock}"
    )
    print(
        f"baked tables: lut3d {lut3.table.shape} {lut3.table.nbytes / 1024:.0f} KiB, lut4d {lut4.table.shape} "
        f"{lut4.table.nbytes / 1024:.0f} KiB, lut {lut.table.shape} {lut.table.nbytes / 1024:.0f} KiB"
    )

    if args.content_size:
        w, h = (int(v) for v in args.content_size.split("x"))
        kernels = {
            "lut3d": lut3,
            "lut4d": lut4,
            "lut (4d-detail, default)": lut,
            "lut3d before": before(lut3),
            "lut4d before": before(lut4),
            "lut (4d-detail) before": before(lut),
        }
        res = content_table(kernels, w, h, args.rounds, args.reps)
        results["content"] = {"size": args.content_size, "rounds": args.rounds, "ms": res}
        d, d0, t3, t30 = (
            res[k] for k in ("lut (4d-detail, default)", "lut (4d-detail) before", "lut3d", "lut3d before")
        )
        print("\nTargets (ratios of medians, same run):")
        print(
            f"- default random / real: {d['random'][0] / d['real'][0]:.2f} (target <= 1.3; before "
            f"{d0['random'][0] / d0['real'][0]:.2f}); noisy / real: {d['noisy'][0] / d['real'][0]:.2f}"
        )
        print(
            f"- default / lut3d on real: {d['real'][0] / t3['real'][0]:.2f} (target <= 1.5); against the "
            f"lut3d kernel of before: {d['real'][0] / t30['real'][0]:.2f} (before {d0['real'][0] / t30['real'][0]:.2f})"
        )

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
        ("numba lut4d-detail = default lut (context included)", lut),
        ("numba lut4d-detail before issue 16", before(lut)),
        # A stream's default: the temporal filter, inside the kernel (issue 14); the real frames are
        # consecutive frames of one clip, so the filter does its work, not a scene-cut restart.
        ("default lut + temporal filter (streams)", lambda v, i, f=TemporalFilter(): lut(v, i, temporal=f)),
        ("  context alone (block stats + net)", lambda v, i: context_map(v, i, lut3.model)),
        # The --ir-clean stage on an IR of the same size (a stream: one estimate per frame, averaged).
        ("ir-clean (destripe + denoise the IR, per frame)", lambda v, i, c=IrCleaner(): c(i)),
        ("vis-sharpen 2 (noise-aware unsharp mask of the visible)", lambda v, i: sharpen_visible(v, 2.0)),
        ("torch twin lut3d", torch_call(twin3, False)),
        ("torch twin lut4d", torch_call(twin4, False)),
        ("LUT-Fuse reference (torch, full-res CNN + 16^4 LUT)", torch_call(ref, True)),
    ]

    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",") if s]
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
        print(f"\n### Reference: {w}x{h} ({source}, {args.threads} threads)\n")
        print("| path | median ms/frame | fps | reps | x faster than reference |")
        print("|---|---:|---:|---:|---:|")
        for name, (m, k) in ms.items():
            print(f"| {name} | {m:.2f} | {1e3 / m:.0f} | {k} | {ref_ms / m:.1f} |")
        ctx = ms["  context alone (block stats + net)"][0] / ms["numba lut3d (context included)"][0]
        print(f"\ncontext share of the lut3d frame time: {100 * ctx:.0f} %")
        added = paired_added_ms(rows[2][1], rows[4][1], frames)
        results["sizes"][f"{w}x{h}"]["temporal_added_ms"] = added
        print(
            f"temporal filter, added per frame (median of paired differences over 100 frames): "
            f"{added:.2f} ms (issue 14 target at 1920x1080: <= 0.3 ms)"
        )
        if (w, h) == (1280, 720):
            print(
                f"default lut x faster than the reference at 1280x720: "
                f"{ref_ms / ms[rows[2][0]][0]:.0f} (target >= 250)"
            )
    results["loadavg_after"] = os.getloadavg()
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in results['loadavg_after'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
