"""`rtfuse eval`: the fusion metrics over a folder of pairs, or the temporal metrics over a clip,
for fused images or a backend."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from itertools import islice
from pathlib import Path

import numpy as np
from rich.progress import Progress
from rich.table import Table

from rtfuse import metrics
from rtfuse.atomic import write_atomic
from rtfuse.errors import InputError
from rtfuse.fusion.registry import Fuser
from rtfuse.images import list_images, read_image, read_vis
from rtfuse.prepare import to_vis_bgr
from rtfuse.sources import open_source
from rtfuse.split import pair_files
from rtfuse.stage import FusionStage, as_stage
from rtfuse.sync import default_tolerance, pair_nearest
from rtfuse.temporal_metrics import TemporalScorer, max_reference

COLUMNS = (*metrics.NAMES, "chroma", "PSNR")
VIDEO_COLUMNS = ("flicker", "flicker_ratio", "flowD", "SF", "frames", "kept")
REFERENCE, VISIBLE = "max(Y, IR)", "visible"  # the reference rows of a clip's table


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


def evaluate_video(
    vis: str | Path,
    ir: str | Path,
    stages: Mapping[str, FusionStage],
    fused: str | Path | None = None,
    frames: int | None = None,
    vis_fps: float | None = None,
    ir_fps: float | None = None,
    tolerance: float | None = None,
    ir_offset: float = 0.0,
    allow_truncated: bool = False,
    progress: Progress | None = None,
) -> dict[str, dict[str, float]]:
    """Temporal metrics (:mod:`rtfuse.temporal_metrics`) of a clip, per fused sequence.

    ``vis``, ``ir``: video files or image-folder sequences, read and paired as the pipeline does
    (``open_source`` + :func:`rtfuse.sync.pair_nearest`; ``vis_fps``/``ir_fps`` for folders,
    ``tolerance`` in seconds, default :func:`rtfuse.sync.default_tolerance`). The first ``frames``
    pairs are scored (all when None). Each stage in ``stages`` (name -> stage) prepares and fuses
    every pair, as a stream: one stage per sequence, so per-stream state never mixes. With
    ``fused`` (a video or image folder), there is one stage, which only prepares the pairs, and the
    fused frames are the clip's frames in order, one per pair (as ``rtfuse fuse`` writes them).

    Rows: each name, then :data:`REFERENCE` (max(Y, IR)) and :data:`VISIBLE` (the visible frames),
    each with :data:`VIDEO_COLUMNS`; ``flicker_ratio`` is relative to :data:`REFERENCE`.
    """
    if not stages or (fused is not None and len(stages) != 1):
        raise InputError("give one or more fusion stages, or exactly one with a fused clip")
    sources = [
        open_source(str(vis), "vis", fps=vis_fps, allow_truncated=allow_truncated),
        open_source(str(ir), "ir", fps=ir_fps, allow_truncated=allow_truncated),
    ]
    if fused is not None:
        sources.append(open_source(str(fused), "vis", fps=vis_fps, allow_truncated=allow_truncated))
    try:
        for src in sources:
            src.open()  # every input fails here, before any work
        sv, si = sources[:2]
        for stage in stages.values():
            stage.check(si.size, sv.size)
        if fused is not None and sources[2].size != sv.size:
            raise InputError(
                f"the fused clip {fused} is {sources[2].size[0]}x{sources[2].size[1]} but the visible "
                f"clip is {sv.size[0]}x{sv.size[1]} (WxH)"
            )
        tol = tolerance if tolerance is not None else default_tolerance(sv.fps, si.fps)
        pairs = islice(pair_nearest(sv.frames(), si.frames(), tol, ir_offset=ir_offset), frames)
        made = sources[2].frames() if fused is not None else None
        scorer = TemporalScorer(reference=REFERENCE)
        known = [n for n in (frames, sv.frame_count) if n is not None]
        task = progress.add_task("scoring", total=min(known) if known else None) if progress else None
        for v, i in pairs:
            rows: dict[str, np.ndarray] = {}
            for name, stage in stages.items():
                vis_img, ir_img = stage.prepare(v.image, i.image, i.index)
                if made is None:
                    rows[name] = stage.fuse(vis_img, ir_img)
                else:
                    f = next(made, None)
                    if f is None:
                        break  # the fused clip is shorter: score the pairs it covers
                    rows[name] = to_vis_bgr(f.image)
            if len(rows) < len(stages):
                break
            rows[REFERENCE] = max_reference(vis_img, ir_img)
            rows[VISIBLE] = vis_img
            scorer.add(vis_img, rows)
            if progress:
                progress.advance(task)
    finally:
        for src in sources:
            src.close()
    results = scorer.results()
    n = results[REFERENCE]["frames"] if results else 0
    if n < 2:
        raise InputError(
            f"{vis} and {ir} gave {n} paired frame{'s' if n != 1 else ''}"
            + (f" (and the fused clip {fused} that many)" if fused is not None else "")
            + "; the temporal metrics need at least 2"
        )
    return results


def video_table(rows: dict[str, dict[str, float]], title: str) -> Table:
    t = Table(title=title)
    for c in ("", "flicker", f"ratio to {REFERENCE}", "flowD", "mean SF", "frames"):
        t.add_column(c, justify="right" if c else "left")
    for name, r in rows.items():
        t.add_row(
            name,
            f"{r['flicker']:.3f}",
            f"{r['flicker_ratio']:.2f}",
            f"{r['flowD']:.3f}",
            f"{r['SF']:.2f}",
            str(r["frames"]),
        )
    return t


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


def write(
    rows: dict[str, dict[str, float]],
    csv_path: Path | None,
    json_path: Path | None,
    columns: tuple[str, ...] = COLUMNS,
    first: str = "image",
) -> None:
    if csv_path:
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow([first, *columns])
        for stem, r in rows.items():
            w.writerow([stem, *(f"{r[c]:.6f}" if isinstance(r[c], float) else r[c] for c in columns)])
        write_atomic(csv_path, buf.getvalue().encode(), "CSV metrics")
    if json_path:
        write_atomic(json_path, json.dumps(rows, indent=2).encode(), "JSON metrics")
