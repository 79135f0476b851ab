"""Degraded-input scores beyond the three shared degraded clips: held-out pairs degraded like them.

The shared clips (``video_frames_degraded``: a defocused visible, an IR with stripes, banding and
noise) are the development set of issue 13. This script builds more of the same from clean pairs that
no training run reads (TNO stills, MSRS, the RoadScene held-out split). Every pair gets its own
severities drawn around the ones measured on the shared clips (``docs/degradations.md``): visible
defocus 0.3-0.55 (Gaussian sigma 1.4-2.2), IR stripes 0.3-0.6, banding 0.2-0.6, noise 0.3-0.7. Then
it scores each model on every set as ``benchmarks/degraded_card.py`` does (the protocol of
``rtfuse eval --degraded-vis/--degraded-ir``, against the clean pair).

    .venv/bin/python benchmarks/degraded_heldout.py --build /tmp/degraded \\
        --models max,lut,lut+clean,student,student+clean+sharpen,student:runs/student_priv/student.pt

Models: ``max`` (per-pixel max of the luma), ``lut``, ``student`` (the shipped ones),
``student:PATH`` (another student checkpoint); ``+clean`` adds ``--ir-clean`` (one estimate per
still here, as a clip of stills has no stream), ``+sharpen`` adds ``--vis-sharpen 2``
(:mod:`rtfuse.vissharpen`). The visible truth the scores use is the clean visible as captured.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = REPO.parent / "shared" / "data"
SOURCES = (("tno", "tno", "all"), ("msrs", "msrs", "all"), ("roadscene-heldout", "roadscene", "heldout"))
COLUMNS = ("Qabf", "VIF", "SSIM", "SF")


def build(out: Path, seed: int = 13) -> None:
    from rtfuse.training.data import load_pairs
    from rtfuse.training.degrade import Degradation, apply

    rng = np.random.default_rng(seed)
    for name, folder, subset in SOURCES:
        for sub in ("vis", "ir", "vis_blur", "ir_noise"):
            (out / name / sub).mkdir(parents=True, exist_ok=True)
        pairs = load_pairs(SHARED / folder, subset)
        for stem, vis, ir in pairs:
            d = Degradation(
                vis_blur=rng.uniform(0.3, 0.55),
                ir_stripes=rng.uniform(0.3, 0.6),
                ir_rows=rng.uniform(0.2, 0.6),
                ir_noise=rng.uniform(0.3, 0.7),
            )
            dv, di = apply(vis, ir, d, rng)
            for sub, img in (("vis", vis), ("ir", ir), ("vis_blur", dv), ("ir_noise", di)):
                cv2.imwrite(str(out / name / sub / f"{stem}.png"), img)
        print(f"built {out / name}: {len(pairs)} pairs", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", type=Path, required=True, help="folder of the degraded sets (built if absent)")
    ap.add_argument("--models", default="max,lut,lut+clean,student")
    args = ap.parse_args()

    from degraded_card import DATA, max_fuser

    from rtfuse.evaluate import evaluate_degraded
    from rtfuse.fusion.registry import load_fuser
    from rtfuse.irclean import IrCleaner
    from rtfuse.stage import FusionStage
    from rtfuse.vissharpen import VisSharpener

    if not all((args.build / name / "ir_noise").is_dir() for name, _, _ in SOURCES):
        build(args.build)
    sets = {"shared clips": sorted(p for p in DATA.iterdir() if (p / "ir_noise").is_dir())}
    sets.update({name: [args.build / name] for name, _, _ in SOURCES})

    def fuser(name: str):
        base = name.split("+")[0]
        if base == "max":
            return max_fuser
        if base.startswith("student:"):
            return load_fuser("student", path=base.split(":", 1)[1], device="cpu")
        return load_fuser(base, device="cpu") if base == "student" else load_fuser(base)

    print(f"| model | set | {' | '.join(COLUMNS)} |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    for name in args.models.split(","):
        f, steps = fuser(name), name.split("+")[1:]
        for label, clips in sets.items():
            means = []
            for clip in clips:

                def stage() -> FusionStage:
                    return FusionStage(
                        f,
                        resize_ir=False,
                        ir_clean=IrCleaner() if "clean" in steps else None,
                        vis_sharpen=VisSharpener(2.0) if "sharpen" in steps else None,
                    )

                rows = evaluate_degraded(
                    clip / "vis", clip / "ir", clip / "vis_blur", clip / "ir_noise", stage(),
                    # a shared clip is a stream (the stripe estimate carries on); the other sets are stills
                    clean_stage=stage() if "clean" in steps and label == "shared clips" else None,
                )  # fmt: skip
                means.append(rows["mean"])
            cells = " | ".join(f"{np.mean([m[k] for m in means]):.3f}" for k in COLUMNS)
            print(f"| {name} | {label} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
