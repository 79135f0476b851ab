"""Fusing still image pairs and folders of pairs (``rtfuse fuse`` on images)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rtfuse.errors import InputError, RtfuseError
from rtfuse.fusion.registry import Fuser
from rtfuse.images import list_images, read_ir, read_vis, write_image


def load_pair(vis_path: Path, ir_path: Path, resize_ir: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read a pair; sizes must match unless ``resize_ir`` (then IR is resampled to the visible size)."""
    vis, ir = read_vis(vis_path), read_ir(ir_path)
    if vis.shape[:2] != ir.shape:
        if not resize_ir:
            raise InputError(
                f"{vis_path.name} is {vis.shape[1]}x{vis.shape[0]} but {ir_path.name} is "
                f"{ir.shape[1]}x{ir.shape[0]}; pass --resize-ir to resample the IR to the visible size"
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
    """Fuse every pair of images sharing a file stem; report unpaired and failed files.

    Output files are ``out_dir/<stem><ext>``. A pair that fails (unreadable, size mismatch) is
    recorded with its reason and the rest continue.
    """
    console = console or Console(stderr=True)
    ext = ext if ext.startswith(".") else "." + ext
    vis_files, ir_files = list_images(vis_dir), list_images(ir_dir)
    report = FolderReport(
        vis_only=sorted(set(vis_files) - set(ir_files)), ir_only=sorted(set(ir_files) - set(vis_files))
    )
    stems = sorted(set(vis_files) & set(ir_files))
    if not stems:
        raise InputError(
            f"no image in {vis_dir} shares a file stem with one in {ir_dir} "
            f"({len(vis_files)} visible, {len(ir_files)} IR images); pairs are matched by file name"
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out_dir}: cannot create output folder ({e.strerror})") from None
    columns = (TextColumn("fusing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("fuse", total=len(stems))
        for stem in stems:
            try:
                fuse_pair(vis_files[stem], ir_files[stem], out_dir / f"{stem}{ext}", fuser, resize_ir)
                report.fused.append(stem)
            except RtfuseError as e:
                report.failed[stem] = str(e)
            progress.advance(task)
    console.print(f"fused {len(report.fused)} pair(s) into {out_dir}")
    for label, names in (("visible without IR", report.vis_only), ("IR without visible", report.ir_only)):
        if names:
            console.print(f"[yellow]unpaired, {label} ({len(names)}):[/] {', '.join(names)}")
    for stem, why in report.failed.items():
        console.print(f"[red]failed {stem}:[/] {why}")
    return report
