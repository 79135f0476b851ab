"""Fusing still image pairs and folders of pairs (``rtfuse fuse`` on images)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

from rtfuse.errors import InputError, RtfuseError
from rtfuse.images import list_images, read_image, write_image
from rtfuse.messages import make_console, warning, with_flag
from rtfuse.stage import Fuser, FusionStage, as_stage
from rtfuse.sync import PAIRING_RULE, pair_stems


def _shown(path: Path) -> str:
    """``folder/name``: enough to tell the visible file from the IR one when their names are equal."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def fuse_pair(vis_path: Path, ir_path: Path, out_path: Path, stage: FusionStage | Fuser) -> None:
    """Fuse one still pair through ``stage`` (calibration, AGC, CLAHE as for video) into ``out_path``.

    The pair is a stream of its own: the stage's state is reset first. Without a calibration, the
    sizes must match unless the stage resizes the IR (a bare fuser's stage does not).
    """
    stage = as_stage(stage, resize_ir=False)
    vis, ir = read_image(vis_path), read_image(ir_path)
    if stage.calib is None and not stage.resize_ir and vis.shape[:2] != ir.shape[:2]:
        raise InputError(
            f"visible {_shown(vis_path)} is {vis.shape[1]}x{vis.shape[0]} but IR {_shown(ir_path)} is "
            f"{ir.shape[1]}x{ir.shape[0]} (WxH); resample the IR to the visible size or give a calibration that maps it",
            option="resize_ir",
        )
    stage.reset()
    write_image(out_path, stage(vis, ir)[0])


@dataclass
class FolderReport:
    fused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    vis_only: list[str] = field(default_factory=list)
    ir_only: list[str] = field(default_factory=list)


def fuse_folder(
    vis_dir: Path,
    ir_dir: Path,
    out_dir: Path,
    stage: FusionStage | Fuser,
    ext: str = ".png",
    console: Console | None = None,
) -> FolderReport:
    """Fuse every pair of images (see :func:`rtfuse.sync.pair_stems`); report unpaired and failed files.

    Output files are ``out_dir/<name><ext>``, the name being the pair's stem (without a modality
    tag). A pair that fails (unreadable, size mismatch) is recorded with its reason and the rest
    continue.
    """
    console = console or make_console()
    stage = as_stage(stage, resize_ir=False)
    ext = ext if ext.startswith(".") else "." + ext
    vis_files, ir_files = list_images(vis_dir), list_images(ir_dir)
    pairs, vis_only, ir_only = pair_stems(vis_files, ir_files)
    report = FolderReport(vis_only=vis_only, ir_only=ir_only)
    if not pairs:
        raise InputError(
            f"no visible image in {vis_dir} pairs with an IR image in {ir_dir}: {PAIRING_RULE}; "
            f"seen: visible {_some(vis_files)}, IR {_some(ir_files)}"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create output folder ({e.strerror})") from None
    columns = (TextColumn("fusing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("fuse", total=len(pairs))
        for stem, (vis_path, ir_path) in pairs.items():
            try:
                fuse_pair(vis_path, ir_path, out_dir / f"{stem}{ext}", stage)
                report.fused.append(stem)
            except RtfuseError as e:
                report.failed[stem] = with_flag(e)
            progress.advance(task)
    console.print(f"fused {len(report.fused)} pair(s) into {out_dir}")
    for label, names in (("visible without IR", report.vis_only), ("IR without visible", report.ir_only)):
        if names:
            warning(console, f"unpaired, {label} ({len(names)}): {', '.join(names)}")
    for stem, why in report.failed.items():
        console.print(Text.assemble((f"failed {stem}: ", "red"), why))
    return report


def _some(files: dict[str, Path], n: int = 3) -> str:
    """The first ``n`` file names and the count, for a message."""
    if not files:
        return "none"
    names = [p.name for p in files.values()]
    return ", ".join(names[:n]) + (f", ... ({len(names)} files)" if len(names) > n else "")
