"""Numbers for weights/MODEL_CARD.md: parameters, CPU ms per 640x480 frame, metrics on three sets.

    .venv/bin/python benchmarks/model_card.py --teacher runs/teacher_fF/teacher.pt \
        --student rtfuse/weights/student.pt --lut3d rtfuse/weights/lut3d.npz \
        --lut4d rtfuse/weights/lut4d.npz --lut4d-detail rtfuse/weights/lut4d_detail.npz

Sets: TNO (25), the RoadScene held-out split (rtfuse.split.split_stems) and MSRS (5),
read from ../shared/data. PSNR (colour, dB) is against the teacher's fused output.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
SETS = {"tno": ("tno", "all"), "roadscene-heldout": ("roadscene", "heldout"), "msrs": ("msrs", "all")}
SHOW = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM", "chroma", "PSNR")


def params_of(name: str, fuser) -> int:
    if hasattr(fuser, "net"):
        return sum(p.numel() for p in fuser.net.parameters())
    if hasattr(fuser, "model"):
        m = fuser.model
        return int(m.table.size + sum(w.size + b.size for w, b in m.ctx_layers))
    return 1  # blend: alpha


def ms_per_frame(fuser, reps: int = 20) -> float:
    from rtfuse.synthetic import SyntheticScene

    vis, ir = SyntheticScene(640, 480, seed=0).render(0)
    fuser(vis, ir)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fuser(vis, ir)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path, required=True)
    ap.add_argument("--student", type=Path)
    ap.add_argument("--lut3d", type=Path)
    ap.add_argument("--lut4d", type=Path)
    ap.add_argument("--lut4d-detail", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import numba
    import torch

    from rtfuse import metrics
    from rtfuse.fusion.registry import load_fuser
    from rtfuse.images import read_ir, read_vis
    from rtfuse.split import pair_files

    numba.set_num_threads(2)
    torch.set_num_threads(2)
    models = {"teacher": load_fuser("teacher", path=args.teacher, device="cpu")}
    if args.student:
        models["student"] = load_fuser("student", path=args.student, device="cpu")
    if args.lut3d:
        models["lut3d"] = load_fuser("lut3d", path=args.lut3d)
    if args.lut4d:
        models["lut4d"] = load_fuser("lut4d", path=args.lut4d)
    if args.lut4d_detail:
        models["lut4d-detail"] = load_fuser("lut4d-detail", path=args.lut4d_detail)
    models["blend"] = load_fuser("blend")
    out: dict = {"models": {}, "sets": {}}
    for name, f in models.items():
        out["models"][name] = {
            "params": params_of(name, f),
            "ms_640x480": ms_per_frame(f, 5 if name == "teacher" else 20),
        }
    for set_name, (folder, split) in SETS.items():
        root = DATA / folder
        vis_f, ir_f, stems = pair_files(root / "vis", root / "ir", split)
        rows = {n: [] for n in models}
        for s in stems:
            vis, ir = read_vis(vis_f[s]), read_ir(ir_f[s])
            ref = models["teacher"](vis, ir)
            for n, f in models.items():
                fused = ref if n == "teacher" else f(vis, ir)
                r = metrics.evaluate(fused, ir, vis)
                r["chroma"] = metrics.chroma_error(fused, vis)
                r["PSNR"] = metrics.psnr(fused, ref) if n != "teacher" else float("nan")
                rows[n].append(r)
        out["sets"][set_name] = {
            n: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for n, rs in rows.items()
        }
        out["sets"][set_name]["_pairs"] = len(stems)

    print("| model | parameters | ms per 640x480 frame (2 CPU threads) |")
    print("|---|---:|---:|")
    for n, d in out["models"].items():
        print(f"| {n} | {d['params']:,} | {d['ms_640x480']:.2f} |")
    for set_name, res in out["sets"].items():
        print(f"\n### {set_name} ({res['_pairs']} pairs)\n")
        print("| model | " + " | ".join(SHOW) + " |")
        print("|---|" + "---:|" * len(SHOW))
        for n in models:
            r = res[n]
            print(f"| {n} | " + " | ".join("-" if np.isnan(r[k]) else f"{r[k]:.3f}" for k in SHOW) + " |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
