"""`rtfuse eval`: the fusion metrics over a folder of pairs, for fused images or a backend."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from rich.progress import Progress
from rich.table import Table

from rtfuse import metrics
from rtfuse.errors import InputError
from rtfuse.fusion.registry import Fuser
from rtfuse.images import list_images, read_image, read_vis
from rtfuse.split import pair_files
from rtfuse.stage import FusionStage, as_stage

COLUMNS = (*metrics.NAMES, "chroma", "PSNR")


def evaluate_folder(
    vis_dir: Path,
    ir_dir: Path,
    fused_dir: Path | None = None,
    fuser: FusionStage | Fuser | None = None,
    reference_dir: Path | None = None,
    progress: Progress | None = None,
    split: str = "all",
) -> dict[str, dict[str, float]]:
    """Metrics per pair stem (plus ``"mean"``).

    Fused images come from ``fused_dir`` (matched by stem) or are made by ``fuser``, a fusion stage
    (or a bare fuser, given a stage without calibration). Metrics see the pair as it was fused: the
    IR aligned and AGC'd by the stage. ``chroma`` is
    the mean |CbCr(fused) - CbCr(visible)|; ``PSNR`` (colour, dB) is against ``reference_dir``
    images when given (e.g. a teacher's outputs), else NaN. ``split``: ``all``, or ``train`` /
    ``heldout`` for the fixed training split (:func:`rtfuse.split.split_stems`).
    """
    fuses = fuser is not None and getattr(fuser, "fuser", fuser) is not None  # a prepare-only stage does not
    if (fused_dir is None) != fuses:
        raise InputError("give fused images or a fuser, not both or neither")
    vis_files, ir_files, stems = pair_files(vis_dir, ir_dir, split)
    fused_files = list_images(fused_dir) if fused_dir else {}
    ref_files = list_images(reference_dir) if reference_dir else {}
    if fused_dir is not None:
        missing = [s for s in stems if s not in fused_files]
        if missing:
            raise InputError(f"{fused_dir} lacks fused images for: {', '.join(missing[:10])}")
    stage = as_stage(fuser if fuser is not None else FusionStage(None, resize_ir=False), resize_ir=False)
    rows: dict[str, dict[str, float]] = {}
    task = progress.add_task("evaluating", total=len(stems)) if progress else None
    for stem in stems:
        stage.reset()  # unrelated stills: no AGC smoothing from one to the next
        vis, ir = stage.prepare(read_image(vis_files[stem]), read_image(ir_files[stem]))
        fused = read_vis(fused_files[stem]) if fused_dir is not None else stage.fuse(vis, ir)
        if fused.shape[:2] != vis.shape[:2] or ir.shape != vis.shape[:2]:
            raise InputError(
                f"{stem}: fused {fused.shape[:2]}, visible {vis.shape[:2]} and IR {ir.shape} differ in size"
            )
        row = metrics.evaluate(fused, ir, vis)
        row["chroma"] = metrics.chroma_error(fused, vis)
        row["PSNR"] = metrics.psnr(fused, read_vis(ref_files[stem])) if stem in ref_files else float("nan")
        rows[stem] = row
        if progress:
            progress.advance(task)
    rows["mean"] = {k: float(np.mean([r[k] for s, r in rows.items() if s != "mean"])) for k in COLUMNS}
    return rows


def table(rows: dict[str, dict[str, float]], title: str, per_image: bool = False) -> Table:
    t = Table(title=title)
    t.add_column("image")
    for c in COLUMNS:
        t.add_column(c, justify="right")
    for stem, r in rows.items():
        if per_image or stem == "mean":
            t.add_row(
                stem, *(f"{r[c]:.3f}" if c not in ("SD", "SF", "PSNR") else f"{r[c]:.2f}" for c in COLUMNS)
            )
    return t


def write(rows: dict[str, dict[str, float]], csv_path: Path | None, json_path: Path | None) -> None:
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image", *COLUMNS])
            for stem, r in rows.items():
                w.writerow([stem, *(f"{r[c]:.6f}" for c in COLUMNS)])
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2))
