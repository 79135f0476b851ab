"""Degraded-input numbers for weights/MODEL_CARD.md: every model fuses the degraded pair of each shared
degraded clip and is scored against the clean pair (``rtfuse.evaluate.evaluate_degraded``, the
protocol of ``rtfuse eval --degraded-vis/--degraded-ir``; docs/degraded-eval.md).

    .venv/bin/python benchmarks/degraded_card.py --teacher runs/teacher_text/teacher.pt \
        --student runs/student_text/student.pt --student-base runs/student_base/student.pt \
        --lut rtfuse/weights/lut4d_detail.npz [--models lut,student,max] [--ir-only]

Rows: each model on both degraded inputs (``vis_blur`` + ``ir_noise``), or with ``--ir-only`` on
the degraded IR alone (the SF_ratio target: the fusion must not sharpen the stripes). ``max`` is the
per-pixel max(Y, IR) with the visible chroma. ``teacher+prompt`` is told what a user of such a
camera pair would say about it (PROMPT below); ``teacher`` without a prompt is told "clean".
Models ending in ``+clean`` run with ``--ir-clean``, the clip as one stream (``--sequence``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "video_frames_degraded"
COLUMNS = ("Qabf", "VIF", "SSIM", "SF", "PSNR", "SF_ratio")
PROMPT = (
    "the thermal image has strong vertical stripes, horizontal banding, heavy noise and low contrast; "
    "the visible image is slightly blurred"
)


def max_fuser(vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
    from rtfuse.color import luma_u8, replace_luma

    y = luma_u8(vis).astype(np.float32)
    return replace_luma(vis, y, np.maximum(y, ir.astype(np.float32)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path)
    ap.add_argument("--student", type=Path, help="default: the shipped student")
    ap.add_argument("--student-base", type=Path, help="the ablation: the same student on the base loss alone")
    ap.add_argument("--student-before", type=Path, help="an earlier student, for comparison")
    ap.add_argument("--lut", type=Path, help="default: the shipped default lut")
    ap.add_argument("--lut-before", type=Path, help="an earlier lut, for comparison")
    ap.add_argument("--models", help="comma-separated subset of the rows")
    ap.add_argument("--ir-only", action="store_true", help="degrade only the IR")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args()

    from rtfuse.evaluate import evaluate_degraded
    from rtfuse.fusion.registry import load_fuser
    from rtfuse.irclean import IrCleaner
    from rtfuse.stage import FusionStage

    makers = {
        "max": lambda: max_fuser,
        "lut": lambda: load_fuser("lut", path=args.lut),
        "lut+clean": lambda: load_fuser("lut", path=args.lut),
        "student": lambda: load_fuser("student", path=args.student, device="cpu"),
    }
    if args.lut_before:
        makers["lut-before"] = lambda: load_fuser("lut", path=args.lut_before)
        makers["lut-before+clean"] = lambda: load_fuser("lut", path=args.lut_before)
    if args.student_before:
        makers["student-before"] = lambda: load_fuser("student", path=args.student_before, device="cpu")
    if args.student_base:
        makers["student-base"] = lambda: load_fuser("student", path=args.student_base, device="cpu")
    if args.teacher:
        makers["teacher"] = lambda: load_fuser("teacher", path=args.teacher, device="cpu")
        makers["teacher+prompt"] = lambda: load_fuser(
            "teacher", path=args.teacher, device="cpu", prompt=PROMPT
        )
    names = args.models.split(",") if args.models else list(makers)
    clips = sorted(p for p in args.data.iterdir() if (p / "ir_noise").is_dir())
    print(
        f"| model | {' | '.join(COLUMNS)} |  ({'IR only' if args.ir_only else 'both'} degraded; "
        f"means over {', '.join(c.name for c in clips)})"
    )
    print("|---|" + "---:|" * len(COLUMNS))
    for name in names:
        fuser = makers[name]()
        per_clip = []
        for clip in clips:
            cleaner = name.endswith("+clean")

            def stage() -> FusionStage:
                return FusionStage(fuser, resize_ir=False, ir_clean=IrCleaner() if cleaner else None)

            rows = evaluate_degraded(
                clip / "vis",
                clip / "ir",
                None if args.ir_only else clip / "vis_blur",
                clip / "ir_noise",
                stage(),
                clean_stage=stage() if cleaner else None,
            )
            per_clip.append(rows["mean"])
        mean = {k: float(np.mean([r[k] for r in per_clip])) for k in COLUMNS}
        spread = {k: (min(r[k] for r in per_clip), max(r[k] for r in per_clip)) for k in ("Qabf", "VIF")}
        cells = [f"{mean[k]:.3f}" if k not in ("SF", "PSNR") else f"{mean[k]:.2f}" for k in COLUMNS]
        cells[0] += f" ({spread['Qabf'][0]:.3f}-{spread['Qabf'][1]:.3f})"
        cells[1] += f" ({spread['VIF'][0]:.3f}-{spread['VIF'][1]:.3f})"
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
