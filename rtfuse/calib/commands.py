"""`rtfuse calibrate checkerboard | points | auto`: estimate, report, write YAML (+ preview)."""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from rtfuse.align import Calibration, vis_to_ir
from rtfuse.calib import checkerboard as cb
from rtfuse.calib.frames import read_frame_pairs
from rtfuse.calib.points import fit_points, read_points, suspects
from rtfuse.calib.preview import overlay
from rtfuse.calib.registration import register
from rtfuse.errors import CalibrationError, InputError
from rtfuse.images import read_ir, read_vis, write_image
from rtfuse.messages import warning
from rtfuse.paths import check_writable_file, refuse_overwrite, refuse_same_outputs


def _size(img: np.ndarray) -> tuple[int, int]:
    return int(img.shape[1]), int(img.shape[0])


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before the work, not after it, when an output cannot be written or would replace an input."""
    inputs = {"IR": args.ir, "visible": args.vis, "points CSV": getattr(args, "csv", None)}
    refuse_same_outputs({"calibration": args.output, "preview": args.preview})
    for path, what in ((args.output, "calibration"), (args.preview, "preview")):
        if path is not None:
            refuse_overwrite(path, inputs)
            check_writable_file(path, what)


def _finish(calib: Calibration, args: argparse.Namespace, console: Console, ir=None, vis=None) -> None:
    """Write the preview first (it can fail on a bad path), then the calibration, atomically."""
    if args.preview is not None:
        if ir is None or vis is None:
            raise InputError("--preview needs the images: give --ir and --vis")
        write_image(args.preview, overlay(ir, vis, calib))
        console.print(f"preview: {args.preview} (cyan: visible edges over the warped IR)")
    calib.save(args.output)
    console.print(f"wrote {args.output}; use it with: rtfuse run --calib {args.output} ...")


def cmd_checkerboard(args: argparse.Namespace, console: Console) -> int:
    _check_outputs(args)
    pattern = cb.parse_pattern(args.pattern)
    pairs, unpaired = cb.pair_images(args.ir, args.vis)
    results: list[cb.PairResult] = []
    sizes = {"IR": set(), "visible": set()}
    for name, fi, fv in pairs:
        ir_raw, vis_raw = _read_raw(fi), _read_raw(fv)
        sizes["IR"].add(_size(ir_raw))
        sizes["visible"].add(_size(vis_raw))
        p = cb.PairResult(name)
        got_ir, got_vis = cb.detect(ir_raw, pattern), cb.detect(vis_raw, pattern)
        if got_ir:
            p.ir_pts, p.ir_render = got_ir
        if got_vis:
            p.vis_pts, p.vis_render = got_vis
        missing = [n for n, g in (("IR", got_ir), ("visible", got_vis)) if g is None]
        if missing:
            p.rejected = f"board not found in the {' and '.join(missing)} image"
        results.append(p)
        console.print(f"  {name}: IR {p.ir_render or 'not found'}, visible {p.vis_render or 'not found'}")
    for cam, s in sizes.items():
        if len(s) > 1:
            raise CalibrationError(
                f"the {cam} images have different sizes {sorted(s)}; calibrate one resolution at a time"
            )
    ir_size, vis_size = next(iter(sizes["IR"])), next(iter(sizes["visible"]))
    fits = {}
    for cam, attr, size in (("IR", "ir_pts", ir_size), ("visible", "vis_pts", vis_size)):
        if args.lens == "both" or (args.lens == "ir" and cam == "IR"):
            views = [getattr(p, attr) for p in results if getattr(p, attr) is not None]
            fits[cam] = cb.fit_lens(views, pattern, size, cam)
            (console.print if fits[cam].lens else lambda m: warning(console, m))(fits[cam].message)
    ir_fit, vis_fit = fits.get("IR"), fits.get("visible")
    if ir_fit and ir_fit.lens:  # board distances (from the IR lens fit) explain parallax rejections
        found_ir = iter(ir_fit.distances)
        for p in results:
            if p.ir_pts is not None:
                p.distance = next(found_ir)
    ir_lens = ir_fit.lens if ir_fit else None
    vis_lens = vis_fit.lens if vis_fit else None
    H = cb.solve(results, pattern, args.max_error, ir_lens, vis_lens)
    perms = cb.orderings(pattern)
    kept = [p for p in results if not p.rejected]
    calib = Calibration(H, ir_size=ir_size, vis_size=vis_size, ir_lens=ir_lens, vis_lens=vis_lens)
    # the reported error goes through the same model the Aligner applies (vis_to_ir)
    err = np.concatenate(
        [np.linalg.norm(vis_to_ir(calib, p.vis_pts)[0] - p.ir_pts[perms[p.order]], axis=1) for p in kept]
    )
    overall = float(np.sqrt(np.mean(err**2)))
    table = Table(title=f"checkerboard {pattern[0]}x{pattern[1]}: reprojection error in IR pixels")
    for col in ("pair", "IR", "visible", "order", "RMS", "max", "status"):
        table.add_column(col)
    for p in results:
        table.add_row(
            p.name,
            p.ir_render or "-",
            p.vis_render or "-",
            "180 deg" if p.order == 1 else ("as found" if p.order == 0 else f"rot {p.order}"),
            f"{p.rms:.2f}" if np.isfinite(p.rms) else "-",
            f"{p.max:.2f}" if np.isfinite(p.max) else "-",
            "used" if not p.rejected else f"rejected: {p.rejected}",
        )
    console.print(table)
    if unpaired:
        console.print(f"unpaired files (ignored): {', '.join(unpaired)}")
    for p in results:
        if p.rejected:
            console.print(f"rejected {p.name}: {p.rejected}")
    off_plane = sum(bool(p.rejected) and "not found" not in p.rejected for p in results)
    if off_plane > len(results) // 4:
        warning(
            console,
            f"{off_plane} of {len(results)} pairs are off the common plane: a homography holds for one "
            "distance, this one for the kept boards'; take the shots at the distance you care about "
            "(calibration/README.md, 'Limits of a homography')",
        )
    model = " + ".join(
        [n for n, lens in (("IR lens", ir_lens), ("visible lens", vis_lens)) if lens] + ["homography"]
    )
    console.print(
        f"overall RMS {overall:.3f} IR px over {len(kept)} of {len(results)} pairs "
        f"({len(err)} corners; max {err.max():.2f} px; model: {model})"
    )
    calib = Calibration(
        H,
        ir_size=ir_size,
        vis_size=vis_size,
        ir_lens=ir_lens,
        vis_lens=vis_lens,
        method="checkerboard",
        errors={
            "unit": "IR pixels",
            "rms": round(overall, 4),
            "max": round(float(err.max()), 4),
            "pairs_used": len(kept),
            "pairs_total": len(results),
            "per_pair_rms": {p.name: round(p.rms, 4) for p in results if np.isfinite(p.rms)},
            "rejected": {p.name: p.rejected for p in results if p.rejected},
            "model": model,
            **{f"{cam.lower()}_lens": fit.message for cam, fit in fits.items()},
            **{f"{cam.lower()}_lens_rms": round(fit.rms, 4) for cam, fit in fits.items() if fit.lens},
        },
        date=_dt.date.today().isoformat(),
        notes=f"pattern {pattern[0]}x{pattern[1]} inner corners; IR dir {args.ir}, visible dir {args.vis}",
    )
    best = min(kept, key=lambda p: p.rms)
    fi, fv = next((fi, fv) for name, fi, fv in pairs if name == best.name)
    _finish(calib, args, console, read_ir(fi), read_vis(fv))
    return 0


def _read_raw(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    if img.dtype == np.uint16:  # 16-bit radiometric frames: a robust stretch to 8 bit for detection
        lo, hi = np.percentile(img, [1, 99])
        img = np.clip((img.astype(np.float32) - lo) * 255.0 / max(hi - lo, 1.0), 0, 255).astype(np.uint8)
    return img


def cmd_points(args: argparse.Namespace, console: Console) -> int:
    _check_outputs(args)
    ir_pts, vis_pts = read_points(args.csv)
    ir = read_ir(args.ir) if args.ir else None
    vis = read_vis(args.vis) if args.vis else None
    ir_size = _size(ir) if ir is not None else args.ir_size
    vis_size = _size(vis) if vis is not None else args.vis_size
    if ir_size is None or vis_size is None:
        raise InputError(
            "give the frame sizes: --ir IMG --vis IMG (also used for --preview), or --ir-size WxH "
            "--vis-size WxH"
        )
    H, res = fit_points(ir_pts, vis_pts)
    bad = set(suspects(res).tolist())
    table = Table(title="point pairs: residual in IR pixels")
    for col in ("#", "IR x", "IR y", "visible x", "visible y", "residual", ""):
        table.add_column(col)
    for i, ((xi, yi), (xv, yv), r) in enumerate(zip(ir_pts, vis_pts, res), 1):
        table.add_row(
            str(i),
            f"{xi:.1f}",
            f"{yi:.1f}",
            f"{xv:.1f}",
            f"{yv:.1f}",
            f"{r:.2f}",
            "check this point" if i - 1 in bad else "",
        )
    console.print(table)
    rms = float(np.sqrt(np.mean(res**2)))
    console.print(
        f"RMS {rms:.3f} IR px over {len(res)} points"
        + (" (exact fit: 4 points leave no residual to check; add more)" if len(res) == 4 else "")
    )
    if bad:
        warning(
            console,
            f"points {', '.join(str(i + 1) for i in sorted(bad))} are far off the others' "
            "homography: check for a typo or a mis-click",
        )
    calib = Calibration(
        H,
        ir_size=tuple(ir_size),
        vis_size=tuple(vis_size),
        method="points",
        errors={
            "unit": "IR pixels",
            "rms": round(rms, 4),
            "max": round(float(res.max()), 4),
            "points": len(res),
            "residuals": [round(float(r), 4) for r in res],
        },
        date=_dt.date.today().isoformat(),
        notes=f"points from {args.csv}",
    )
    _finish(calib, args, console, ir, vis)
    return 0


def cmd_auto(args: argparse.Namespace, console: Console) -> int:
    _check_outputs(args)
    irs, viss = read_frame_pairs(args.ir, args.vis, args.frames)
    console.print(
        f"registering {len(irs)} frame pair{'s' * (len(irs) > 1)} "
        f"(IR {_size(irs[0])[0]}x{_size(irs[0])[1]}, visible {_size(viss[0])[0]}x{_size(viss[0])[1]})"
    )
    reg = register(irs, [cv2.cvtColor(v, cv2.COLOR_BGR2GRAY) for v in viss])
    console.print(
        f"edge-structure correlation {reg.score:.3f}, {reg.contrast:.3f} above its value 8 px away "
        f"(a clear optimum); {reg.levels} pyramid level(s)"
    )
    calib = Calibration(
        reg.H,
        ir_size=_size(irs[0]),
        vis_size=_size(viss[0]),
        method="auto",
        errors={
            "edge_correlation": round(reg.score, 4),
            "optimum_contrast": round(reg.contrast, 4),
            "frames": len(irs),
            "note": "no ground truth: judge the --preview, or check with points/checkerboard",
        },
        date=_dt.date.today().isoformat(),
        notes=f"auto from {args.ir} and {args.vis}",
    )
    _finish(calib, args, console, irs[len(irs) // 2], viss[len(viss) // 2])
    return 0


def add_parser(sub: argparse._SubParsersAction, size_arg) -> None:
    """The `calibrate` command with its three methods."""
    p = sub.add_parser(
        "calibrate",
        help="estimate the IR -> visible homography (checkerboard, points, auto)",
        description="Writes a calibration YAML for `rtfuse run/fuse --calib` "
        "(format and limits: calibration/README.md).",
    )
    csub = p.add_subparsers(dest="calibrate_command", required=True, metavar="METHOD")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("-o", "--output", type=Path, required=True, help="calibration YAML to write")
        q.add_argument(
            "--preview",
            type=Path,
            metavar="OUT.png",
            help="also write an overlay: visible edges over the warped IR",
        )

    q = csub.add_parser(
        "checkerboard",
        help="heated checkerboard seen by both cameras (folders of paired shots)",
        description="Detects the board in every pair (gray, inverted, CLAHE and per-channel variants; "
        "small thermal images upscaled), resolves the board's 180 deg corner-order ambiguity, fits "
        "the IR lens (intrinsics + distortion) and one homography between the undistorted corners, "
        "rejects pairs off the common plane by a robust rule (each with its reason) and reports the "
        "reprojection error of every pair in IR pixels.",
    )
    q.add_argument("--ir", type=Path, required=True, help="folder of IR shots")
    q.add_argument(
        "--vis", type=Path, required=True, help="folder of visible shots (paired by stem or timestamp)"
    )
    q.add_argument("--pattern", required=True, help="inner corners COLSxROWS, e.g. 4x6")
    q.add_argument(
        "--max-error",
        type=float,
        metavar="PX",
        help="reject pairs whose RMS exceeds PX IR pixels (default: a robust rule, median + "
        f"{cb.REJECT_K:g} x MAD of the pairs that agree best, >= {cb.REJECT_FLOOR:g} px)",
    )
    q.add_argument(
        "--lens",
        choices=("ir", "both", "none"),
        default="ir",
        help="lens models fitted from the boards (intrinsics + distortion) and applied before the "
        "homography: ir (default), both cameras, or none (homography only)",
    )
    common(q)
    q.set_defaults(calib_func=cmd_checkerboard)

    q = csub.add_parser(
        "points", help="hand-picked point pairs from a CSV (x_ir,y_ir,x_vis,y_vis), at least 4"
    )
    q.add_argument("--csv", type=Path, required=True, help="CSV of x_ir,y_ir,x_vis,y_vis in pixels")
    q.add_argument("--ir", type=Path, help="IR image the points were picked on (sizes, preview)")
    q.add_argument("--vis", type=Path, help="visible image the points were picked on")
    q.add_argument("--ir-size", type=size_arg, metavar="WxH", help="IR frame size (without --ir)")
    q.add_argument("--vis-size", type=size_arg, metavar="WxH", help="visible frame size (without --vis)")
    common(q)
    q.set_defaults(calib_func=cmd_points)

    q = csub.add_parser(
        "auto",
        help="automatic registration from simultaneous images or videos",
        description="Matches edge-orientation structure across the two modalities coarse-to-fine "
        "(robust start search over rotation, scale and shift, then Gauss-Newton on a homography). "
        "Writes nothing when there is no clear, plausible optimum.",
    )
    q.add_argument("--ir", type=Path, required=True, help="IR image or video")
    q.add_argument("--vis", type=Path, required=True, help="visible image or video")
    q.add_argument(
        "--frames", type=int, default=8, help="video: frame pairs used, spread over the clip (default 8)"
    )
    common(q)
    q.set_defaults(calib_func=cmd_auto)
