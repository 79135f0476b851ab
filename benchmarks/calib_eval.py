"""Registration error of `rtfuse calibrate` on the shared real data with ground truth.

auto: for each pair of ``align/roadscene_warped`` runs ``rtfuse calibrate auto --ir ir_warp/X
--vis vi/X -o tmp.yaml``, loads the written YAML with ``yaml.safe_load`` and compares the
homography with the ground-truth sampling grid (``flow/X.mat``, PyTorch ``grid_sample``
convention, ``align_corners=False``): end-point error averaged over every IR pixel. Also
reports the best single homography (least squares to the grid), the floor for any homography.

checkerboard: runs ``rtfuse calibrate checkerboard`` on ``calibration/zed_lepton`` and recomputes
the RMS from the written YAML with OpenCV directly (visible corners undistorted if the YAML has a
visible lens, mapped through H^-1, distorted with the IR lens, compared with the IR corners);
then, on the same corners, homography only vs lens + homography with and without the robust
rejection, and leave-one-out and split-half checks (each pair scored by a fit without it).

unrelated: each IR paired with the visible image of another scene; every pair should be refused.

bench (issue 15): the synthetic-misalignment benchmark built by ``benchmarks/calib_bench.py``
from every registered pair source (MSRS, TNO, RoadScene outside the 20 warped pairs, M3SVD
frames, TNO sequences; single frames and 8-frame video cases) plus ``roadscene_warped`` as one
row and an unrelated-pairs row; per set the EPE mean, median, p90 (a refusal counts as
REFUSED_EPE px), refusals, the identity and best-homography EPE, CPU seconds per case. It calls
``register`` in this process with the CLI's readers (the data is written in the
``roadscene_warped`` layout under ``runs/calib_bench``, so the CLI can be run on it too).

    .venv/bin/python benchmarks/calib_eval.py [--data ../shared/data] [--only bench|selfreg|shapes|auto|unrelated|checkerboard]
    .venv/bin/python benchmarks/calib_eval.py --only bench --per-set 8 [--sets msrs tno] [--rebuild]

Needs scipy (dev extra) to read the .mat ground truth.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from rtfuse.calib.homography import apply_h

REPO = Path(__file__).resolve().parents[1]
RTFUSE = [sys.executable, "-m", "rtfuse.cli"]


def gt_grid(mat: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    g = loadmat(str(mat))["flow"][0].astype(np.float64)  # (H, W, 2), x then y in [-1, 1]
    h, w = g.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    src = np.stack([xs.ravel(), ys.ravel()], 1)
    dst = np.stack([((g[..., 0] + 1) * w - 1) / 2, ((g[..., 1] + 1) * h - 1) / 2], -1).reshape(-1, 2)
    return src, dst


def run_auto(ir: Path, vis: Path, out: Path) -> tuple[subprocess.CompletedProcess, float]:
    """`rtfuse calibrate auto` and the optimum contrast it reported (accepted or refused)."""
    r = subprocess.run(
        RTFUSE + ["calibrate", "auto", "--ir", str(ir), "--vis", str(vis), "-o", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    m = re.search(r"([0-9.]+) above its", r.stderr)
    return r, float(m[1]) if m else float("nan")


def names(root: Path) -> list[str]:
    return [
        m.name[: -len(".mat")]
        for m in sorted((root / "flow").glob("*.mat"), key=lambda p: int(p.name.split(".")[0]))
    ]


def eval_auto(root: Path) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names(root):
            mat = root / "flow" / f"{name}.mat"
            out = Path(tmp) / f"{name}.yaml"
            t0 = time.perf_counter()
            r, contrast = run_auto(root / "ir_warp" / name, root / "vi" / name, out)
            dt = time.perf_counter() - t0
            src, dst = gt_grid(mat)
            Hb, _ = cv2.findHomography(src[::7], dst[::7], 0)
            floor = float(np.linalg.norm(apply_h(Hb, src) - dst, axis=1).mean())
            start = float(np.linalg.norm(src - dst, axis=1).mean())
            if r.returncode != 0 or not out.exists():
                rows.append((name, start, float("nan"), floor, dt, contrast))
                print(
                    f"{name:>8}: FAILED ({r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode})"
                )
                continue
            H = np.array(yaml.safe_load(out.read_text())["homography"], np.float64)
            epe = float(np.linalg.norm(apply_h(H, src) - dst, axis=1).mean())
            rows.append((name, start, epe, floor, dt, contrast))
            print(
                f"{name:>8}: displacement {start:5.1f} px -> EPE {epe:5.2f} px (best homography {floor:.2f}), "
                f"optimum contrast {contrast:.3f}, {dt:4.1f} s"
            )
    a = np.array([r[1:5] for r in rows])
    ok = np.isfinite(a[:, 1])
    print(
        f"auto: {ok.sum()}/{len(rows)} registered; mean EPE {np.nanmean(a[:, 1]):.3f} px, median "
        f"{np.nanmedian(a[:, 1]):.3f} (mean displacement before {a[:, 0].mean():.1f} px, best single homography "
        f"{a[:, 2].mean():.3f} px); median time {np.median(a[:, 3]):.1f} s per pair"
    )
    c = [r[5] for r in rows if np.isfinite(r[2])]
    print(f"optimum contrast of the registered pairs {min(c):.3f}-{max(c):.3f}")


def eval_unrelated(root: Path) -> None:
    """Each IR with the visible image of another scene (i + 7 of 20): every one should be refused."""
    ns = names(root)
    refused, contrasts = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for i, a in enumerate(ns):
            b = ns[(i + 7) % len(ns)]
            out = Path(tmp) / "u.yaml"
            r, contrast = run_auto(root / "ir_warp" / a, root / "vi" / b, out)
            refused += r.returncode != 0 and not out.exists()
            contrasts.append(contrast)
            print(
                f"{a:>8} IR + {b:>8} visible: {'refused' if r.returncode else 'ACCEPTED'}, contrast {contrast:.3f}"
            )
    print(
        f"unrelated: {refused}/{len(ns)} refused; optimum contrast {np.nanmin(contrasts):.3f}-{np.nanmax(contrasts):.3f}"
    )


def _cb_model_errors(
    calib: dict, ir_pts: np.ndarray, vis_pts: np.ndarray, pattern: tuple[int, int]
) -> np.ndarray:
    """Per-corner error in raw IR pixels of a calibration YAML's model, computed here with OpenCV
    directly (not rtfuse's code): visible corners undistorted (vis_lens), mapped with H^-1,
    distorted (ir_lens, cv2.projectPoints) and compared with the IR corners in the board order that
    fits best (the board's 180 deg symmetry)."""
    from rtfuse.calib.checkerboard import orderings

    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 40, 1e-6)
    pts = vis_pts.reshape(-1, 1, 2).astype(np.float64)
    if calib.get("vis_lens"):
        k, d = np.array(calib["vis_lens"]["camera_matrix"]), np.array(calib["vis_lens"]["dist_coeffs"])
        pts = cv2.undistortPoints(pts, k, d, P=k, criteria=crit)
    back = apply_h(np.linalg.inv(np.array(calib["homography"], np.float64)), pts.reshape(-1, 2))
    if calib.get("ir_lens"):
        k, d = np.array(calib["ir_lens"]["camera_matrix"]), np.array(calib["ir_lens"]["dist_coeffs"])
        n = apply_h(np.linalg.inv(k), back)
        back = cv2.projectPoints(np.c_[n, np.ones(len(n))], np.zeros(3), np.zeros(3), k, d)[0].reshape(-1, 2)
    return min((np.linalg.norm(back - ir_pts[p], axis=1) for p in orderings(pattern)), key=lambda e: e.mean())


def _cb_fov(lens: dict) -> str:
    """Field of view across the frame's width and height (edge centre to edge centre) with and
    without the distortion: a check of the model against the camera's data sheet."""
    k, d = np.array(lens["camera_matrix"]), np.array(lens["dist_coeffs"])
    w, h = lens["image_size"]
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 40, 1e-9)
    out = []
    for axis, ends in (
        (0, [[-0.5, (h - 1) / 2], [w - 0.5, (h - 1) / 2]]),
        (1, [[(w - 1) / 2, -0.5], [(w - 1) / 2, h - 0.5]]),
    ):
        ends = np.array(ends, np.float64)
        n = cv2.undistortPoints(ends.reshape(-1, 1, 2), k, d, criteria=crit).reshape(-1, 2)[:, axis]
        pin = (ends[:, axis] - k[axis, 2]) / k[axis, axis]
        fov = lambda t: float(np.degrees(abs(np.arctan(t[0])) + abs(np.arctan(t[1]))))  # noqa: E731
        out.append(f"{fov(n):.1f} deg ({fov(pin):.1f} as a pinhole) across the {(w, h)[axis]} px side")
    return ", ".join(out)


def _cb_rms(errs: list[np.ndarray]) -> float:
    return float(np.sqrt(np.mean(np.concatenate(errs) ** 2))) if errs else float("nan")


def _cb_summary(errs: list[np.ndarray]) -> str:
    """RMS over all pairs and over the best 90 % of pairs (by their own RMS), in IR px."""
    per = np.array([_cb_rms([e]) for e in errs])
    best = np.argsort(per)[: int(np.ceil(0.9 * len(per)))]
    return f"all {_cb_rms(errs):.2f}, best 90 % {_cb_rms([errs[i] for i in best]):.2f}"


def _cb_fit(pairs: list, pattern: tuple[int, int], lens: str, reject: bool, ir_size, vis_size):
    """`calibrate checkerboard` on already detected corners (in-process, as cmd_checkerboard does):
    (model as a YAML-like dict, kept pair names, the robust limit in IR px)."""
    from rtfuse.align import Calibration
    from rtfuse.calib import checkerboard as cb

    pairs = [cb.PairResult(p.name, ir_pts=p.ir_pts, vis_pts=p.vis_pts) for p in pairs]
    fits = {}
    for cam, attr, size in (("ir", "ir_pts", ir_size), ("vis", "vis_pts", vis_size)):
        if lens == "both" or (lens == "ir" and cam == "ir"):
            fits[cam] = cb.fit_lens([getattr(p, attr) for p in pairs], pattern, size, cam)
    if "ir" in fits and fits["ir"].lens:
        for p, d in zip(pairs, fits["ir"].distances):
            p.distance = d
    ir_lens = fits["ir"].lens if "ir" in fits else None
    vis_lens = fits["vis"].lens if "vis" in fits else None
    H = cb.solve(pairs, pattern, None if reject else float("inf"), ir_lens, vis_lens)
    kept = [p for p in pairs if not p.rejected]
    limit = max(cb.REJECT_FLOOR, cb._robust_limit(np.array([p.rms for p in kept]))[0]) if reject else np.inf
    model = Calibration(H, ir_lens=ir_lens, vis_lens=vis_lens)
    calib = {"homography": H.tolist()}
    calib.update({k: v.to_dict() for k, v in (("ir_lens", ir_lens), ("vis_lens", vis_lens)) if v})
    return calib, {p.name for p in kept}, limit, model


def eval_checkerboard(root: Path) -> None:
    """The CLI's YAML checked independently, then the variants (homography only / lens, with and
    without rejection) on the same detected corners, then leave-one-out and split-half checks:
    each pair scored by a model fitted without it."""
    from rtfuse.calib.checkerboard import PairResult, detect, pair_images

    pattern = (4, 6)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cb.yaml"
        cmd = ["calibrate", "checkerboard", "--ir", str(root / "thermal"), "--vis", str(root / "visible")]
        r = subprocess.run(
            RTFUSE + cmd + ["--pattern", "4x6", "-o", str(out)], capture_output=True, text=True, cwd=REPO
        )
        if r.returncode != 0:
            print("checkerboard FAILED:", r.stderr.strip().splitlines()[-1])
            return
        calib = yaml.safe_load(out.read_text())
    errs = calib["errors"]
    rejected = set(errs["rejected"])
    pairs = []
    for name, fi, fv in pair_images(root / "thermal", root / "visible")[0]:
        a = detect(cv2.imread(str(fi), cv2.IMREAD_UNCHANGED), pattern)
        b = detect(cv2.imread(str(fv), cv2.IMREAD_UNCHANGED), pattern)
        if a is not None and b is not None:
            pairs.append(PairResult(name, ir_pts=a[0], vis_pts=b[0]))
    every = [_cb_model_errors(calib, p.ir_pts, p.vis_pts, pattern) for p in pairs]
    kept = [e for p, e in zip(pairs, every) if p.name not in rejected]
    print(
        f"checkerboard (CLI, {errs.get('model', 'homography')}): board found in {len(pairs)}/{errs['pairs_total']} "
        f"pairs, {errs['pairs_used']} kept; reported RMS {errs['rms']:.3f} IR px; recomputed from the YAML: "
        f"kept {_cb_rms(kept):.3f}, {_cb_summary(every)}"
    )
    for k, v in errs["rejected"].items():
        print(f"  rejected {k}: {v}")
    if calib.get("ir_lens"):
        print(f"  IR field of view under the lens model: {_cb_fov(calib['ir_lens'])}")
        bare = {"homography": calib["homography"]}  # a reader that ignores the lens model
        ev = [_cb_model_errors(bare, p.ir_pts, p.vis_pts, pattern) for p in pairs if p.name not in rejected]
        print(f"  the YAML's homography alone (lens ignored): kept pairs RMS {_cb_rms(ev):.2f}")
    _cb_variants(pairs, pattern, tuple(calib["ir_size"]), tuple(calib["vis_size"]))


def _cb_variants(
    pairs: list, pattern: tuple[int, int], ir_size: tuple[int, int], vis_size: tuple[int, int]
) -> None:
    """Homography only / with lens models, with and without rejection, in-sample and held out."""
    print("\nvariants on the same corners (IR px; kept = pairs the rule keeps):")
    for lens, reject in (("none", False), ("none", True), ("ir", False), ("ir", True), ("both", True)):
        c, names_kept, _, _ = _cb_fit(pairs, pattern, lens, reject, ir_size, vis_size)
        ev = [_cb_model_errors(c, p.ir_pts, p.vis_pts, pattern) for p in pairs]
        kept = [e for p, e in zip(pairs, ev) if p.name in names_kept]
        label = f"lens {lens:>4}, {'robust rejection' if reject else 'no rejection':>16}"
        print(f"  {label}: kept {len(kept):2d}/{len(pairs)} RMS {_cb_rms(kept):.2f}; {_cb_summary(ev)}")
    print("\nheld out (each pair scored by a model fitted without it; kept = within that fit's limit):")
    for lens in ("none", "ir"):
        loo, loo_kept = [], []
        for i in range(len(pairs)):
            c, _, limit, _ = _cb_fit(pairs[:i] + pairs[i + 1 :], pattern, lens, True, ir_size, vis_size)
            e = _cb_model_errors(c, pairs[i].ir_pts, pairs[i].vis_pts, pattern)
            loo.append(e)
            if _cb_rms([e]) <= limit:
                loo_kept.append(e)
        print(
            f"  leave-one-out, lens {lens:>4}: kept {len(loo_kept):2d}/{len(pairs)} RMS {_cb_rms(loo_kept):.2f}; "
            f"{_cb_summary(loo)}"
        )
        for half in (0, 1):
            train = pairs[half::2]
            test = pairs[1 - half :: 2]
            c, _, limit, _ = _cb_fit(train, pattern, lens, True, ir_size, vis_size)
            ev = [_cb_model_errors(c, p.ir_pts, p.vis_pts, pattern) for p in test]
            ok = [e for e in ev if _cb_rms([e]) <= limit]
            print(
                f"  split-half {'even->odd' if half == 0 else 'odd->even'}, lens {lens:>4}: kept {len(ok):2d}/{len(test)} "
                f"RMS {_cb_rms(ok):.2f}; {_cb_summary(ev)}"
            )


REFUSED_EPE = 50.0  # a refused pair counts as this end-point error in the means and percentiles


def register_files(ir: list[Path], vis: list[Path]):
    """What `rtfuse calibrate auto` does with these frames (same readers, same gray conversion)."""
    from rtfuse.calib.registration import register
    from rtfuse.images import read_ir, read_vis

    return register([read_ir(p) for p in ir], [cv2.cvtColor(read_vis(p), cv2.COLOR_BGR2GRAY) for p in vis])


def _stats(epe: list[float]) -> str:
    a = np.array(epe)
    return f"mean {a.mean():5.2f}  median {np.median(a):5.2f}  p90 {np.percentile(a, 90):5.2f}"


def _compose(M: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The normalised grid of ``M`` applied after ``grid`` (pixel x -> M(grid(x)))."""
    from rtfuse.calib.warpgen import grid_to_pixels

    h, w = grid.shape[:2]
    p = apply_h(M, grid_to_pixels(grid).reshape(-1, 2)).reshape(h, w, 2)
    return np.stack([(2 * p[..., 0] + 1) / w - 1, (2 * p[..., 1] + 1) / h - 1], -1)


def eval_bench(
    data: Path,
    out: Path,
    per_set: int,
    seed: int,
    sets: list[str] | None,
    rebuild: bool,
    consistency: bool = False,
) -> None:
    """The synthetic-misalignment benchmark (benchmarks/calib_bench.py) plus roadscene_warped as a row.

    Per set: EPE of the registered homography against the grid (refusals counted as
    REFUSED_EPE px), the identity and the best single homography for comparison, refusals, time.

    consistency: also register each case's UNWARPED source pair (mapping M) and score the warped
    case against M after the grid, the content mapping the method itself finds without the warp.
    Small against it but large against the grid means the warps are undone consistently and the
    error against the grid is the source pair's own misregistration (or a bias of the method that
    no warp changes), not a failure to undo the warp.
    """
    import calib_bench
    from scipy.io import loadmat

    from rtfuse.calib.warpgen import best_homography, end_point_error
    from rtfuse.errors import CalibrationError

    manifest = out / "manifest.json"
    fresh = manifest.exists() and json.loads(manifest.read_text())[("seed")] == seed
    fresh = fresh and json.loads(manifest.read_text())["per_set"] == per_set
    cases = calib_bench.load(out) if fresh and not rebuild else calib_bench.build(data, out, per_set, seed)
    rw = data / "align" / "roadscene_warped"
    cases += [
        calib_bench.Case(
            "roadscene_warped", n, [rw / "ir_warp" / n], [rw / "vi" / n], rw / "flow" / f"{n}.mat"
        )
        for n in names(rw)
    ]
    order = [*calib_bench.SETS[:-1], "roadscene_warped", "unrelated"]
    rows: dict[str, list] = {s: [] for s in order if sets is None or s in sets}
    content: dict[tuple[str, ...], np.ndarray | None] = {}  # unwarped source -> its own registration
    for c in cases:
        if c.set not in rows:
            continue
        t0 = time.process_time()  # CPU seconds: the machine may be shared, wall time says little
        try:
            reg = register_files(c.ir, c.vis)
            H, why = reg.H, f"contrast {reg.contrast:.3f}"
        except CalibrationError as e:
            m = re.search(r"only ([0-9.]+) above", str(e))  # a refusal for lack of contrast says how much
            H, why = None, f"refused: contrast {m[1]}" if m else f"refused: {str(e)[:90]}"
        dt = time.process_time() - t0
        if c.flow is None:
            rows[c.set].append((dt, H is None))
            print(
                f"{c.set}/{c.name}: {'ACCEPTED, ' if H is not None else ''}{why}, {dt:.1f} s CPU", flush=True
            )
            continue
        grid = loadmat(str(c.flow))["flow"][0]
        ident = end_point_error(np.eye(3), grid, 2)
        floor = end_point_error(best_homography(grid), grid, 2)
        epe = REFUSED_EPE if H is None else end_point_error(H, grid, 2)
        own = float("nan")
        if consistency and H is not None and c.meta and "source" in c.meta:
            key = tuple(c.meta["source"])
            if key not in content:
                try:
                    content[key] = register_files([Path(p) for p in key], c.vis).H
                except CalibrationError:
                    content[key] = None
            if content[key] is not None:
                own = end_point_error(H, _compose(content[key], grid), 2)
        rows[c.set].append((dt, H is None, epe, ident, floor, own))
        print(
            f"{c.set}/{c.name}: identity {ident:5.1f} -> EPE {epe:5.2f} px (floor {floor:.2f}"
            f"{f'; vs own content mapping {own:.2f}' if own == own else ''}); {why}; {dt:.1f} s CPU",
            flush=True,
        )
    print(f"\nEPE in pixels of the warped IR; a refusal counts as {REFUSED_EPE:g} px")
    for s, r in rows.items():
        if not r:
            continue
        t = np.array([x[0] for x in r])
        refused = sum(x[1] for x in r)
        if s == "unrelated":
            print(f"{s:>17}: {refused}/{len(r)} refused (all should be); median {np.median(t):.1f} s CPU")
            continue
        epe = [x[2] for x in r]
        ok = [x[2] for x in r if not x[1]]
        own = [x[5] for x in r if x[5] == x[5]]
        print(
            f"{s:>17} ({len(r):2d}): {_stats(epe)}  | registered {len(ok)}, refused {refused}, "
            f"max registered {max(ok) if ok else float('nan'):5.2f} | identity {np.mean([x[3] for x in r]):5.1f}, "
            f"best homography {np.mean([x[4] for x in r]):4.2f} | median {np.median(t):.1f} s CPU"
            + (f" | vs own content mapping: {_stats(own)}" if own else "")
        )


def _mutual_information(a: np.ndarray, b: np.ndarray, mask: np.ndarray, bins: int = 32) -> float:
    """MI (nats) of two uint8 images over ``mask``, from a bins x bins joint histogram."""
    h, _, _ = np.histogram2d(
        a[mask] // (256 // bins), b[mask] // (256 // bins), bins=bins, range=[[0, bins]] * 2
    )
    p = h / h.sum()
    px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())


def eval_selfreg(data: Path) -> None:
    """`register` on UNWARPED registered pairs: how far its optimum lies from identity (mean over the
    IR pixels), and whether mutual information of the raw intensities, a measure independent of the
    edge fields, also prefers that mapping to identity. Bounds what a content-based method can
    score against ground truth made from these pairs."""
    from rtfuse.calib.registration import register
    from rtfuse.errors import CalibrationError
    from rtfuse.images import read_ir, read_vis

    def seq_first(name: str) -> tuple[Path, Path]:
        ir = sorted((data / "tno_sequences" / name / "ir").iterdir())[0]
        return ir, ir.parent.parent / "vis" / f"{ir.stem[:-1]}v{ir.suffix}"

    def pairs(folder: str, sl: slice) -> list[tuple[Path, Path]]:
        return [(p, data / folder / "vis" / p.name) for p in sorted((data / folder / "ir").iterdir())[sl]]

    clips = [
        ("video_frames", "0111_1716"),
        ("video_frames", "0114_1551"),
        ("video_frames_degraded", "0114_1609"),
    ]
    sets = {
        "msrs": pairs("msrs", slice(None)),
        "tno": pairs("tno", slice(None, None, 4)),
        "roadscene": pairs("roadscene", slice(5, None, 45)),
        "m3svd": [(data / b / c / "ir" / "0000.png", data / b / c / "vis" / "0000.png") for b, c in clips],
        "tno_seq": [seq_first(n) for n in ("Duine_sequence", "Nato_camp_sequence", "Tree_sequence")],
    }
    for name, items in sets.items():
        offsets, prefers = [], []
        for fi, fv in items:
            ir, vis = read_ir(fi), cv2.cvtColor(read_vis(fv), cv2.COLOR_BGR2GRAY)
            h, w = ir.shape
            try:
                H = register([ir], [vis]).H
            except CalibrationError:
                print(f"{name}/{fi.name}: refused")
                continue
            ys, xs = np.mgrid[0:h:4, 0:w:4]
            pts = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
            offsets.append(float(np.linalg.norm(apply_h(H, pts) - pts, axis=1).mean()))
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            both = (
                cv2.warpPerspective(np.ones_like(vis), H, (w, h), flags=flags) > 0
            )  # compared on one region
            mi = [
                _mutual_information(ir, cv2.warpPerspective(vis, G, (w, h), flags=flags), both)
                for G in (np.eye(3), H)
            ]
            prefers.append(mi[1] > mi[0])
            print(
                f"{name}/{fi.name}: optimum {offsets[-1]:.2f} px from identity; MI identity {mi[0]:.3f}, there {mi[1]:.3f}"
            )
        print(
            f"== {name}: offset mean {np.mean(offsets):.2f}, median {np.median(offsets):.2f} px; "
            f"MI prefers the found mapping in {sum(prefers)}/{len(prefers)}"
        )


def _shape_cases(ir: np.ndarray, vis: np.ndarray) -> dict:
    """name: (IR, visible, altered IR pixel (x, y) -> the unaltered IR pixel, or None to be refused)."""
    h, w = ir.shape
    small = cv2.resize(ir, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    kx, ky = w / (w // 4), h / (h // 4)

    def up4(x, y):  # a pixel of the 4x smaller frame -> one of the full frame
        return (x + 0.5) * kx - 0.5, (y + 0.5) * ky - 0.5

    c = (w - h) // 2 if w > h else 0
    rng = np.random.default_rng(0)
    flat = (np.full_like(ir, 90) + rng.integers(0, 3, ir.shape).astype(np.uint8), np.full_like(vis, 30))
    return {
        "turned 90 deg counter-clockwise": (np.rot90(ir), vis, lambda x, y: (w - 1 - y, x)),
        "turned 90 deg clockwise": (np.rot90(ir, 3), vis, lambda x, y: (y, h - 1 - x)),
        "shrunk 4x": (small, vis, up4),
        "shrunk 4x and turned": (np.rot90(small), vis, lambda x, y: up4(w // 4 - 1 - y, x)),
        "cropped by a quarter of the height": (ir[h // 8 : h - h // 8], vis, lambda x, y: (x, y + h // 8)),
        "cropped to 1:1": (ir[:, c : c + h] if c else ir, vis, lambda x, y: (x + c, y)),
        "shrunk 4x, visible at 8 % (night)": (small, (vis * 0.08).astype(np.uint8), up4),
        "flat frames": (*flat, None),
        "flat frames, IR turned": (np.rot90(flat[0]), flat[1], None),
    }


def eval_shapes(data: Path) -> None:
    """Registered pairs (MSRS, TNO, RoadScene) with the IR frame turned, shrunk or cropped,
    registered against the untouched visible image and scored against the method's own mapping
    of the unaltered pair (mean over the altered frame's pixels, in its pixels); night and flat
    cases, which must register or be refused. Per alteration: median and max error, refusals."""
    from rtfuse.calib.registration import register
    from rtfuse.errors import CalibrationError

    pairs = [
        p
        for s, sl in (("msrs", slice(None)), ("tno", slice(0, None, 8)), ("roadscene", slice(5, None, 60)))
        for p in sorted((data / s / "ir").iterdir())[sl]
    ]
    results: dict[str, list[float]] = {}
    for fi in pairs:
        ir = cv2.imread(str(fi), cv2.IMREAD_GRAYSCALE)
        vis = cv2.imread(str(fi.parent.parent / "vis" / fi.name), cv2.IMREAD_GRAYSCALE)
        try:
            M0 = register([ir], [vis]).H
        except CalibrationError:
            print(f"{fi.parent.parent.name}/{fi.name}: the unaltered pair is refused; skipped")
            continue
        for label, (a, b, to_ir) in _shape_cases(ir, vis).items():
            a = np.ascontiguousarray(a)
            try:
                H = register([a], [b]).H
            except CalibrationError:
                results.setdefault(label, []).append(np.inf if to_ir is not None else 0.0)
                print(f"{fi.parent.parent.name}/{fi.name} {label} ({a.shape[1]}x{a.shape[0]}): refused")
                continue
            err = np.inf  # a flat case registered: wrong by definition
            if to_ir is not None:
                ys, xs = np.mgrid[0 : a.shape[0] : 4, 0 : a.shape[1] : 4].astype(np.float64)
                truth = apply_h(M0, np.stack(to_ir(xs.ravel(), ys.ravel()), 1))
                err = float(
                    np.linalg.norm(apply_h(H, np.stack([xs.ravel(), ys.ravel()], 1)) - truth, axis=1).mean()
                )
            results.setdefault(label, []).append(err)
            print(
                f"{fi.parent.parent.name}/{fi.name} {label} ({a.shape[1]}x{a.shape[0]}): {err:.2f} px",
                flush=True,
            )
    print("\nerror against the unaltered pair's own mapping, px of the altered IR frame (inf: refused)")
    for label, e in results.items():
        e = np.array(e)
        if label.startswith("flat"):
            print(f"{label:>36}: {int(np.sum(e == 0))}/{len(e)} refused (all should be)")
            continue
        ok = e[np.isfinite(e)]
        print(
            f"{label:>36}: median {np.median(e):.2f}, max registered {ok.max() if len(ok) else np.nan:.2f}, "
            f"refused {int(np.sum(~np.isfinite(e)))}/{len(e)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--only", choices=("bench", "selfreg", "shapes", "auto", "unrelated", "checkerboard"))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "calib_bench", help="bench: generated data")
    ap.add_argument("--per-set", type=int, default=16, help="bench: cases per set (video sets: half)")
    ap.add_argument("--seed", type=int, default=15, help="bench: seed of the warps")
    ap.add_argument("--sets", nargs="+", help="bench: only these sets")
    ap.add_argument("--rebuild", action="store_true", help="bench: regenerate the data")
    ap.add_argument(
        "--consistency",
        action="store_true",
        help="bench: also score against the unwarped pairs' own registration",
    )
    args = ap.parse_args()
    if args.only == "bench":
        eval_bench(args.data, args.out, args.per_set, args.seed, args.sets, args.rebuild, args.consistency)
        return
    if args.only == "selfreg":
        eval_selfreg(args.data)
        return
    if args.only == "shapes":
        eval_shapes(args.data)
        return
    if args.only in (None, "auto"):
        eval_auto(args.data / "align" / "roadscene_warped")
    if args.only in (None, "unrelated"):
        eval_unrelated(args.data / "align" / "roadscene_warped")
    if args.only in (None, "checkerboard"):
        eval_checkerboard(args.data / "calibration" / "zed_lepton")


if __name__ == "__main__":
    main()
