"""Quality of the IR clean-up (``--ir-clean``, rtfuse/irclean.py) on real and synthetic stripe noise.

    .venv/bin/python benchmarks/ir_clean_eval.py [--data ../shared/data] [--cost]

1. The degraded M3SVD clips (``video_frames_degraded/<clip>/{vis,ir,ir_noise}``), each as one stream
   through a FusionStage with the default ``lut`` backend: PSNR of the IR against its clean twin
   without and with the clean-up, and the mean SF of the fusion of (vis, ir) [clean], (vis, ir_noise)
   and (vis, ir_noise) with --ir-clean, with their ratio to the clean-input SF (goal: <= 1.10).
2. Clean real IR (TNO, MSRS) with a synthetic pattern added (columns sd 8, rows sd 4, white noise
   sd 12, fixed seeds): PSNR before/after, and the error of the estimated column offsets against the
   true ones (all of it, and its pixel-scale part), for one still (clean_ir) and the 10th frame of a
   stream (IrCleaner; the same pattern under fresh noise each frame).
   Then the same stripes on every 5th TNO image under noise sd 1, 3, 6 and 12.
3. The same clean IR cleaned as it is: PSNR of cleaned-clean against clean (the clean-up should be
   nearly a no-op there).

``--cost``: the median time of each step at 640x480 and 1920x1080 instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rtfuse.irclean import IrCleaner, clean_ir, estimate_stripes  # noqa: E402
from rtfuse.metrics import psnr, sf  # noqa: E402


def stripes(shape: tuple[int, int], seed: int, col_sd=8.0, row_sd=4.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(0, col_sd, shape[1])[None, :] + rng.normal(0, row_sd, shape[0])[:, None]


def degrade(img: np.ndarray, pattern: np.ndarray, seed: int, noise_sd=12.0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, noise_sd, img.shape)
    return np.clip(np.round(img + pattern + noise), 0, 255).astype(np.uint8)


def psnr_tone(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR of ``x`` after the affine tone map that best fits it to ``ref`` (least squares): what is
    left is noise and stripes, not the degraded clips' global contrast loss."""
    a, b = np.polyfit(x.ravel().astype(np.float64), ref.ravel().astype(np.float64), 1)
    return psnr(np.clip(a * x.astype(np.float64) + b, 0, 255), ref)


def pixel_scale(v: np.ndarray, s: float = 2.0) -> np.ndarray:
    """``v`` minus its Gaussian smoothing (sigma ``s``): the part of a pattern that shows as stripes."""
    r = int(3 * s)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / s) ** 2)
    return v - np.convolve(np.pad(v, r, mode="reflect"), k / k.sum(), mode="valid")


def degraded_clips(root: Path) -> None:
    from rtfuse.fusion.registry import load_fuser
    from rtfuse.stage import FusionStage

    fuser = load_fuser("lut")
    print(
        "| clip | PSNR ir_noise | cleaned | tone-fitted PSNR ir_noise | cleaned "
        "| SF clean pair | SF noisy | ratio | SF cleaned | ratio | pixel-scale column pattern ir_noise | cleaned |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for clip in sorted(p for p in root.iterdir() if (p / "ir_noise").is_dir()):
        names = sorted(p.name for p in (clip / "ir").glob("*.png"))
        stages = {
            "clean": FusionStage(fuser),
            "noisy": FusionStage(fuser),
            "cleaned": FusionStage(fuser, ir_clean=IrCleaner()),
        }
        p_noisy, p_clean, t_noisy, t_clean, sfs = [], [], [], [], {k: [] for k in stages}
        cols_noisy, cols_clean = [], []  # per-column median differences to the clean twin
        for n in names:
            vis = cv2.imread(str(clip / "vis" / n))
            ir = cv2.imread(str(clip / "ir" / n), cv2.IMREAD_GRAYSCALE)
            noisy = cv2.imread(str(clip / "ir_noise" / n), cv2.IMREAD_GRAYSCALE)
            for k, st in stages.items():
                fused, _, ir_used = st(vis, ir if k == "clean" else noisy)
                sfs[k].append(sf(cv2.cvtColor(fused, cv2.COLOR_BGR2GRAY)))
                if k == "cleaned":
                    p_clean.append(psnr(ir_used, ir))
                    t_clean.append(psnr_tone(ir_used, ir))
                    cols_clean.append(np.median(ir_used.astype(np.float64) - ir, axis=0))
            p_noisy.append(psnr(noisy, ir))
            t_noisy.append(psnr_tone(noisy, ir))
            cols_noisy.append(np.median(noisy.astype(np.float64) - ir, axis=0))
        s = {k: float(np.mean(v)) for k, v in sfs.items()}
        print(
            f"| {clip.name} | {np.mean(p_noisy):.2f} | {np.mean(p_clean):.2f} | {np.mean(t_noisy):.2f} | "
            f"{np.mean(t_clean):.2f} | {s['clean']:.2f} | "
            f"{s['noisy']:.2f} | {s['noisy'] / s['clean']:.3f} | {s['cleaned']:.2f} | "
            f"{s['cleaned'] / s['clean']:.3f} | {pixel_scale(np.mean(cols_noisy, 0)).std():.2f} | "
            f"{pixel_scale(np.mean(cols_clean, 0)).std():.2f} |"
        )


def synthetic_on_real(folders: list[Path]) -> None:
    print(
        "\n| set | images | PSNR noisy | still | stream (10th) | column pattern sd | error still | stream "
        "| pixel-scale sd | error still | stream |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for folder in folders:
        rows = []
        for i, f in enumerate(sorted(folder.iterdir())):
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if img is None:
                continue
            pattern = stripes(img.shape, 100 + i)
            truth = pattern[0] - pattern[0].mean()
            noisy = degrade(img, pattern, 200 + i)
            still = clean_ir(noisy)
            still_col = estimate_stripes(noisy)[0]
            cleaner = IrCleaner()
            for t in range(10):
                out = cleaner(degrade(img, pattern, 300 + 10 * i + t))
            rows.append(
                (
                    psnr(noisy, img),
                    psnr(still, img),
                    psnr(out, img),
                    truth.std(),
                    (still_col - truth).std(),
                    (cleaner.col - truth).std(),
                    pixel_scale(truth).std(),
                    pixel_scale(still_col - truth).std(),
                    pixel_scale(cleaner.col - truth).std(),
                )
            )
        m = np.mean(rows, axis=0)
        print(f"| {folder.parent.name} | {len(rows)} | " + " | ".join(f"{v:.2f}" for v in m) + " |")


def noise_sweep(folder: Path) -> None:
    """The same stripes under less or more noise: does the stripe estimate depend on the noise?"""
    print("\n| noise sd | images | PSNR gain of clean_ir (dB) | pixel-scale column pattern removed |")
    print("|---:|---:|---:|---:|")
    files = sorted(folder.iterdir())[::5]
    for noise in (1.0, 3.0, 6.0, 12.0):
        gains, left = [], []
        for i, f in enumerate(files):
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            pattern = stripes(img.shape, 400 + i)
            noisy = degrade(img, pattern, 500 + i, noise_sd=noise)
            gains.append(psnr(clean_ir(noisy), img) - psnr(noisy, img))
            col = estimate_stripes(noisy)[0]
            left.append(pixel_scale(col - pattern[0]).std() / pixel_scale(pattern[0]).std())
        print(f"| {noise:g} | {len(files)} | {np.mean(gains):.1f} | {100 * (1 - np.mean(left)):.0f} % |")


def clean_on_clean(folders: list[Path]) -> None:
    print("\n| set | images | PSNR(clean_ir(clean), clean): mean | min |")
    print("|---|---:|---:|---:|")
    for folder in folders:
        values = []
        for f in sorted(folder.iterdir()):
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if img is not None:
                values.append(psnr(clean_ir(img), img))
        print(f"| {folder.parent.name} | {len(values)} | {np.mean(values):.2f} | {np.min(values):.2f} |")


def cost(data: Path, reps: int = 300) -> None:
    """Median thread CPU time of each step and of a stream frame (serial kernels: equal to wall time
    on an idle core, and robust on a shared one)."""
    import time

    from rtfuse.irclean import estimate_noise, remove_stripes

    frame = sorted((data / "video_frames" / "0111_1716" / "ir").glob("*.png"))
    base = cv2.imread(str(frame[0]), cv2.IMREAD_GRAYSCALE) if frame else None

    def median_ms(fn) -> float:
        fn()
        times = []
        for _ in range(reps):
            t0 = time.thread_time()
            fn()
            times.append(time.thread_time() - t0)
        return 1e3 * float(np.median(times))

    print("\n| IR size | noise | stripes (3 refinements) | subtract + denoise | per frame (IrCleaner) |")
    print("|---|---:|---:|---:|---:|")
    for w, h in ((640, 480), (1920, 1080)):
        img = cv2.resize(base, (w, h)) if base is not None else np.full((h, w), 128, np.uint8)
        noisy = degrade(img, stripes(img.shape, 0), 1)
        sigma = estimate_noise(noisy)
        col, row = estimate_stripes(noisy)
        cleaner = IrCleaner()
        steps = (
            lambda: estimate_noise(noisy),
            lambda: estimate_stripes(noisy),
            lambda: remove_stripes(noisy, col, row, sigma),
            lambda: cleaner(noisy),
        )
        print(f"| {w}x{h} | " + " | ".join(f"{median_ms(f):.2f} ms" for f in steps) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--cost", action="store_true", help="only the cost of each step, in ms per frame")
    args = ap.parse_args()
    if args.cost:
        cost(args.data)
        return
    degraded_clips(args.data / "video_frames_degraded")
    real = [args.data / "tno" / "ir", args.data / "msrs" / "ir"]
    synthetic_on_real(real)
    noise_sweep(real[0])
    clean_on_clean(real)


if __name__ == "__main__":
    main()
