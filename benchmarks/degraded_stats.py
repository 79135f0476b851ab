"""Statistics of the real degraded clips (``video_frames_degraded/<clip>/{ir_noise,vis_blur}`` against their
clean twins), the measurements behind ``rtfuse/training/degrade.py`` (docs/degradations.md).

    python benchmarks/degraded_stats.py [--data ../shared/data/video_frames_degraded]

IR: the column and row patterns of (degraded - clean) (std of the per-column / per-row means), their
frame-to-frame correlation (1 = a fixed pattern), the residual noise std and its neighbour
correlation, and the offset (the intercept of degraded on clean). Visible: the Gaussian sigma that
best explains the blur, the mean brightening, and the residual after that blur.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def ir_stats(clean: list[np.ndarray], noisy: list[np.ndarray]) -> dict[str, float]:
    cols, rows, resid, corr_x, offsets, col_corr, row_corr = [], [], [], [], [], [], []
    prev = None
    for c, n in zip(clean, noisy):
        d = n.astype(np.float32) - c
        cm, rm = d.mean(0), d.mean(1)
        cols.append(cm.std())
        rows.append(rm.std())
        e = d - cm[None] - rm[:, None]
        resid.append(e.std())
        corr_x.append(np.corrcoef(e[:, 1:].ravel(), e[:, :-1].ravel())[0, 1])
        offsets.append(np.polyfit(c.ravel().astype(np.float32), n.ravel().astype(np.float32), 1)[1])
        if prev is not None:
            col_corr.append(np.corrcoef(prev[0], cm)[0, 1])
            row_corr.append(np.corrcoef(prev[1], rm)[0, 1])
        prev = (cm, rm)
    return {
        "column std": float(np.mean(cols)),
        "row std": float(np.mean(rows)),
        "column pattern corr (frame to frame)": float(np.mean(col_corr)),
        "row pattern corr": float(np.mean(row_corr)),
        "residual noise std": float(np.mean(resid)),
        "residual neighbour corr": float(np.mean(corr_x)),
        "offset": float(np.mean(offsets)),
    }


def vis_stats(clean: list[np.ndarray], blurred: list[np.ndarray]) -> dict[str, float]:
    sigmas, lift, resid = [], [], []
    for c, b in zip(clean, blurred):
        c32, b32 = c.astype(np.float32), b.astype(np.float32)
        errs = {
            s: np.abs(cv2.GaussianBlur(c32, (0, 0), s) - b32).mean() for s in (0.5, 1, 1.5, 2, 2.5, 3, 4, 5)
        }
        s = min(errs, key=errs.get)
        sigmas.append(s)
        e = b32 - cv2.GaussianBlur(c32, (0, 0), s)
        lift.append(e.mean())
        resid.append((e - e.mean()).std())
    return {
        "best Gaussian sigma": float(np.median(sigmas)),
        "brightening": float(np.mean(lift)),
        "residual std": float(np.mean(resid)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/video_frames_degraded"))
    args = ap.parse_args()
    for clip in sorted(p for p in args.data.iterdir() if p.is_dir()):
        names = sorted(p.name for p in (clip / "ir").iterdir())

        def read(sub: str, flag: int) -> list[np.ndarray]:
            return [cv2.imread(str(clip / sub / n), flag) for n in names]

        ir = ir_stats(read("ir", cv2.IMREAD_GRAYSCALE), read("ir_noise", cv2.IMREAD_GRAYSCALE))
        vis = vis_stats(read("vis", cv2.IMREAD_COLOR), read("vis_blur", cv2.IMREAD_COLOR))
        print(f"{clip.name} ({len(names)} frames)")
        print("  IR:  " + ", ".join(f"{k} {v:.2f}" for k, v in ir.items()))
        print("  vis: " + ", ".join(f"{k} {v:.2f}" for k, v in vis.items()))


if __name__ == "__main__":
    main()
