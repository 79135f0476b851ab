"""Metrics of the per-pixel maximum (gray) on one evaluation set, as METRICS.md's `max` rows.

    .venv/bin/python benchmarks/max_baseline.py roadscene --split heldout

Used to relate our RoadScene held-out split to the 50-pair subset of METRICS.md's LUT-Fuse row
(the same fuser scores differently on the two subsets; `max` is a fixed yardstick on both).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from rtfuse import metrics
    from rtfuse.images import read_ir, read_vis
    from rtfuse.split import pair_files

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set", help="folder name under ../shared/data (tno, msrs, roadscene)")
    ap.add_argument("--split", default="all", choices=("all", "train", "heldout"))
    args = ap.parse_args()
    root = REPO.parent / "shared" / "data" / args.set
    vis_f, ir_f, stems = pair_files(root / "vis", root / "ir", args.split)
    rows = []
    for s in stems:
        vis, ir = read_vis(vis_f[s]), read_ir(ir_f[s])
        fused = np.maximum(metrics.to_gray(ir), metrics.to_gray(vis))
        rows.append(metrics.evaluate(fused, ir, vis))
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    print(
        f"max on {args.set} ({args.split}, {len(stems)} pairs): "
        + ", ".join(f"{k} {v:.3f}" for k, v in mean.items())
    )


if __name__ == "__main__":
    main()
