"""Fusing still image pairs and folders of pairs (``rtfuse fuse`` on images)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rtfuse.errors import InputError, RtfuseError
from rtfuse.fusion.registry import Fuser
from rtfuse.messages import make_console, warning
from rtfuse.images import PAIRING_RULE, list_images, pair_stems, read_ir, read_vis, write_image


def _shown(path: Path) -> str:
    """``folder/name``: enough to tell the visible file from the IR one when their names are equal."""
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def load_pair(vis_path: Path, ir_path: Path, resize_ir: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a pair; sizes must match unless ``resize_ir`` (then IR is resampled to the visible size)."""
    vis, ir = read_vis(vis_path), read_ir(ir_path)
    if vis.shape[:2] != ir.shape:
        if not resize_ir:
            raise InputError(
                f"visible {_shown(vis_path)} is {vis.shape[1]}x{vis.shape[0]} but IR {_shown(ir_path)} is "
                f"{ir.shape[1]}x{ir.shape[0]} (WxH); pass --resize-ir to resample the IR to the visible size"
            )
        ir = cv2.resize(ir, (vis.shape[1], vis.shape[0]), interpolation=cv2.INTER_LINEAR)
    return vis, ir


def fuse_pair(vis_path: Path, ir_path: Path, out_path: Path, fuser: Fuser, resize_ir: bool = False) -> None:
    vis, ir = load_pair(vis_path, ir_path, resize_ir)
    write_image(out_path, fuser(vis, ir))


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
    fuser: Fuser,
    ext: str = ".png",
    resize_ir: bool = False,
    console: Console | None = None,
) -> FolderReport:
    """Fuse every pair of images (see :func:`rtfuse.images.pair_stems`); report unpaired and failed files.

    Output files are ``out_dir/<name><ext>``, the name being the pair's stem (without a modality
    tag). A pair that fails (unreadable, size mismatch) is recorded with its reason and the rest
    continue.
    """
    console = console or make_console()
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
                fuse_pair(vis_path, ir_path, out_dir / f"{stem}{ext}", fuser, resize_ir)
                report.fused.append(stem)
            except RtfuseError as e:
                report.failed[stem] = str(e)
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
