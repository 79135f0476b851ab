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
# eval --degraded: the fusion of the degraded pair scored against the clean pair (docs/degraded-eval.md)
DEGRADED_COLUMNS = ("Qabf", "VIF", "SSIM", "SF", "PSNR", "SF_clean", "SF_ratio")
_TWO_DECIMALS = ("SD", "SF", "PSNR", "SF_clean")  # levels and dB; the rest are ratios near 0..1


def _scoring_stage(fused_dir: Path | None, fuser: FusionStage | Fuser | None) -> FusionStage:
    """The stage that prepares (and, without ``fused_dir``, fuses) the pairs; exactly one of the two."""
    fuses = fuser is not None and getattr(fuser, "fuser", fuser) is not None  # a prepare-only stage does not
    if (fused_dir is None) != fuses:
        raise InputError("give fused images or a fuser, not both or neither")
    return as_stage(fuser if fuser is not None else FusionStage(None, resize_ir=False), resize_ir=False)


def _files_for(folder: Path, wanted: Mapping[str, str], what: str) -> dict[str, Path]:
    """pair name -> the file of ``folder`` whose stem is ``wanted[name]``; every one must be there."""
    files = list_images(folder)
    missing = [stem for stem in wanted.values() if stem not in files]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InputError(f"{folder} lacks {what} for: {', '.join(missing[:10])}{more}")
    return {name: files[stem] for name, stem in wanted.items()}


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
    stage = _scoring_stage(fused_dir, fuser)
    vis_files, ir_files, stems = pair_files(vis_dir, ir_dir, split)
    fused_files = _files_for(fused_dir, {s: s for s in stems}, "fused images") if fused_dir else {}
    ref_files = list_images(reference_dir) if reference_dir else {}
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


def evaluate_degraded(
    vis_dir: Path,
    ir_dir: Path,
    degraded_vis_dir: Path | None,
    degraded_ir_dir: Path | None,
    fuser: FusionStage | Fuser | None = None,
    fused_dir: Path | None = None,
    reference_dir: Path | None = None,
    progress: Progress | None = None,
    split: str = "all",
    clean_stage: FusionStage | None = None,
) -> dict[str, dict[str, float]]:
    """Robustness to degraded input: :data:`DEGRADED_COLUMNS` per pair stem (plus ``"mean"``).

    The clean pairs (``vis_dir``, ``ir_dir``) pair by stem as in :func:`evaluate_folder`; the
    degraded folders hold files with the same stems as the clean files of their modality (others
    are ignored; one missing is an error naming it). A degraded folder left out (None) means that
    modality is fused clean; at least one must be given.

    ``fuser`` (a stage, or a bare fuser given a stage without calibration) fuses the degraded pair
    and, as the reference, the clean pair: the same stage for both, so every stage option (AGC,
    calibration, any clean-up step) applies to both, and each still is prepared on its own
    (``reset()`` before each). Or ``fused_dir`` holds fusions of the degraded pair made elsewhere
    (matched by pair name) and ``reference_dir`` the same method's fusions of the clean pair; without
    ``reference_dir``, ``PSNR``, ``SF_clean`` and ``SF_ratio`` are NaN. ``reference_dir`` is refused
    with ``fuser``, which makes its own reference.

    Qabf, VIF, SSIM and SF are of the degraded pair's fusion against the CLEAN sources, as the
    stage prepared them (:mod:`rtfuse.metrics`), except that the visible is taken as captured, not
    as a ``vis_sharpen`` stage restored it. ``PSNR`` (colour, dB) is against the clean pair's
    fusion (inf when equal), ``SF_clean`` its SF, ``SF_ratio`` = SF / SF_clean (above 1: the fusion
    amplified the degradation; NaN when the clean fusion is flat). ``"mean"`` is the mean over the
    pairs of each column, ratios included. ``split`` as in :func:`evaluate_folder`.

    ``clean_stage``: the pairs are consecutive frames of one clip (in stem order), fused as two
    streams: the degraded pairs by ``fuser``'s stage and the clean pairs by this one (built with
    the same options). No stage is reset between frames, so per-stream state (AGC smoothing, the
    stripe estimate of an IR clean-up) carries on as it does on a camera.
    """
    if degraded_vis_dir is None and degraded_ir_dir is None:
        raise InputError("give a folder of degraded visible images, of degraded IR images, or both")
    if reference_dir is not None and fused_dir is None:
        raise InputError(
            "a reference (the clean pair's fusion) goes with fused images; a fuser fuses the clean pair itself"
        )
    stage = _scoring_stage(fused_dir, fuser)
    if clean_stage is not None and (fused_dir is not None or clean_stage is stage):
        raise InputError("a clip's clean stream needs a stage of its own, and a fuser (not fused images)")
    vis_files, ir_files, stems = pair_files(vis_dir, ir_dir, split)
    vis_files, ir_files = {s: vis_files[s] for s in stems}, {s: ir_files[s] for s in stems}
    names = {s: s for s in stems}
    # Checked with fused images too: those were made from these files, so a gap is a mismatch.
    deg_vis, deg_ir = (
        _files_for(d, {s: p.stem for s, p in files.items()}, f"degraded {what} images") if d else files
        for d, files, what in ((degraded_vis_dir, vis_files, "visible"), (degraded_ir_dir, ir_files, "IR"))
    )
    fused_files = _files_for(fused_dir, names, "fused images") if fused_dir else {}
    ref_files = (
        _files_for(reference_dir, names, "reference images (the clean pair's fusion)")
        if reference_dir
        else {}
    )
    rows: dict[str, dict[str, float]] = {}
    task = progress.add_task("evaluating", total=len(stems)) if progress else None
    for stem in stems:
        raw_vis = read_image(vis_files[stem])
        if clean_stage is not None:  # two streams, each carrying its state from frame to frame
            vis, ir = clean_stage.prepare(raw_vis, read_image(ir_files[stem]))
            clean = clean_stage.fuse(vis, ir)
            fused = stage.fuse(*stage.prepare(read_image(deg_vis[stem]), read_image(deg_ir[stem])))
        else:
            stage.reset()  # unrelated stills, and the degraded pair is not the next frame of the clean one
            vis, ir = stage.prepare(raw_vis, read_image(ir_files[stem]))
            if fused_dir is None:
                clean = stage.fuse(vis, ir)
                stage.reset()
                fused = stage.fuse(*stage.prepare(read_image(deg_vis[stem]), read_image(deg_ir[stem])))
            else:
                fused = read_vis(fused_files[stem])
                clean = read_vis(ref_files[stem]) if reference_dir is not None else None
        for what, img in (("fused", fused), ("clean-pair fusion", clean)):
            if img is not None and (img.shape[:2] != vis.shape[:2] or ir.shape != vis.shape[:2]):
                raise InputError(
                    f"{stem}: {what} {img.shape[:2]}, visible {vis.shape[:2]} and IR {ir.shape} differ in size"
                )
        # The truth is the clean visible as captured: a --vis-sharpen restores, it is not the truth.
        f, a, b = metrics.to_gray(fused), metrics.to_gray(ir), metrics.to_gray(to_vis_bgr(raw_vis))
        row = {"Qabf": metrics.qabf(f, a, b), "VIF": metrics.vif(f, a, b), "SSIM": metrics.ssim(f, a, b)}
        row["SF"] = metrics.sf(f)
        if clean is None:
            row.update(PSNR=float("nan"), SF_clean=float("nan"), SF_ratio=float("nan"))
        else:
            sf_clean = metrics.sf(metrics.to_gray(clean))
            row["PSNR"] = metrics.psnr(fused, clean)
            row["SF_clean"] = sf_clean
            row["SF_ratio"] = row["SF"] / sf_clean if sf_clean > 0 else float("nan")
        rows[stem] = row
        if progress:
            progress.advance(task)
    rows["mean"] = {k: float(np.mean([r[k] for r in rows.values()])) for k in DEGRADED_COLUMNS}
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


def table(
    rows: dict[str, dict[str, float]], title: str, per_image: bool = False, columns: tuple[str, ...] = COLUMNS
) -> Table:
    t = Table(title=title)
    t.add_column("image")
    for c in columns:
        t.add_column(c, justify="right")
    for stem, r in rows.items():
        if per_image or stem == "mean":
            t.add_row(stem, *(f"{r[c]:.2f}" if c in _TWO_DECIMALS else f"{r[c]:.3f}" for c in columns))
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
