"""Registration error of `rtfuse calibrate` on the shared real data with ground truth.

auto: for each pair of ``align/roadscene_warped`` runs ``rtfuse calibrate auto --ir ir_warp/X
--vis vi/X -o tmp.yaml``, loads the written YAML with ``yaml.safe_load`` and compares the
homography with the ground-truth sampling grid (``flow/X.mat``, PyTorch ``grid_sample``
convention, ``align_corners=False``): end-point error averaged over every IR pixel. Also
reports the best single homography (least squares to the grid), the floor for any homography.

checkerboard: runs ``rtfuse calibrate checkerboard`` on ``calibration/zed_lepton`` and prints
the YAML's error block (the RMS is recomputed here from independently detected corners by
mapping the visible corners through H^-1).

unrelated: each IR paired with the visible image of another scene; every pair should be refused.

    .venv/bin/python benchmarks/calib_eval.py [--data ../shared/data] [--only auto|unrelated|checkerboard]

Needs scipy (dev extra) to read the .mat ground truth.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

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


def project(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ H.T
    return q[:, :2] / q[:, 2:3]


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
            floor = float(np.linalg.norm(project(Hb, src) - dst, axis=1).mean())
            start = float(np.linalg.norm(src - dst, axis=1).mean())
            if r.returncode != 0 or not out.exists():
                rows.append((name, start, float("nan"), floor, dt, contrast))
                print(
                    f"{name:>8}: FAILED ({r.stderr.strip().splitlines()[-1] if r.stderr else r.returncode})"
                )
                continue
            H = np.array(yaml.safe_load(out.read_text())["homography"], np.float64)
            epe = float(np.linalg.norm(project(H, src) - dst, axis=1).mean())
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


def eval_checkerboard(root: Path) -> None:
    from rtfuse.calib.checkerboard import detect, orderings, pair_images

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cb.yaml"
        r = subprocess.run(
            RTFUSE
            + [
                "calibrate",
                "checkerboard",
                "--ir",
                str(root / "thermal"),
                "--vis",
                str(root / "visible"),
                "--pattern",
                "4x6",
                "-o",
                str(out),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        if r.returncode != 0:
            print("checkerboard FAILED:", r.stderr.strip().splitlines()[-1])
            return
        calib = yaml.safe_load(out.read_text())
    H = np.array(calib["homography"], np.float64)
    errs = calib["errors"]
    rejected = set(errs["rejected"])
    # independent check: corners detected again, each pair in whichever of the board's symmetric
    # orders fits H best, visible corners mapped to the IR with H^-1
    all_err, kept_err = [], []
    for name, fi, fv in pair_images(root / "thermal", root / "visible")[0]:
        a = detect(cv2.imread(str(fi), cv2.IMREAD_UNCHANGED), (4, 6))
        b = detect(cv2.imread(str(fv), cv2.IMREAD_UNCHANGED), (4, 6))
        if a is None or b is None:
            continue
        back = project(np.linalg.inv(H), b[0])
        e = min((np.linalg.norm(back - a[0][p], axis=1) for p in orderings((4, 6))), key=lambda e: e.mean())
        all_err.append(e)
        if name not in rejected:
            kept_err.append(e)
    rms = lambda es: float(np.sqrt(np.mean(np.concatenate(es) ** 2)))  # noqa: E731
    print(
        f"checkerboard: board found in {errs['pairs_total'] - sum('not found' in v for v in errs['rejected'].values())}"
        f"/{errs['pairs_total']} pairs, {errs['pairs_used']} used; reported RMS {errs['rms']:.3f} IR px; "
        f"recomputed RMS over kept pairs {rms(kept_err):.3f}, over all pairs {rms(all_err):.3f}"
    )
    for k, v in errs["rejected"].items():
        print(f"  rejected {k}: {v}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--only", choices=("auto", "unrelated", "checkerboard"))
    args = ap.parse_args()
    if args.only in (None, "auto"):
        eval_auto(args.data / "align" / "roadscene_warped")
    if args.only in (None, "unrelated"):
        eval_unrelated(args.data / "align" / "roadscene_warped")
    if args.only in (None, "checkerboard"):
        eval_checkerboard(args.data / "calibration" / "zed_lepton")


if __name__ == "__main__":
    main()
