"""The ``rtfuse`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from rtfuse.errors import RtfuseError

console = Console(stderr=True, highlight=False, soft_wrap=True)


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    from rtfuse.fusion.registry import BACKENDS

    p.add_argument("--backend", default="lut", choices=BACKENDS, help="fusion backend (default: lut)")
    p.add_argument("--lut", type=Path, help="LUT .npz for the lut backends instead of the shipped one")


def _fuser(args: argparse.Namespace):
    from rtfuse.fusion.registry import load_fuser

    return load_fuser(args.backend, path=args.lut)


def cmd_fuse(args: argparse.Namespace) -> int:
    from rtfuse.stills import fuse_folder, fuse_pair

    vis, ir = Path(args.vis), Path(args.ir)
    for p in (vis, ir):
        if not p.exists():
            raise RtfuseError(f"{p}: no such file or directory")
    if vis.is_dir() != ir.is_dir():
        raise RtfuseError("--vis and --ir must both be image files or both be folders")
    fuser = _fuser(args)
    if vis.is_dir():
        report = fuse_folder(vis, ir, Path(args.output), fuser, ext=args.ext, resize_ir=args.resize_ir, console=console)
        return 1 if report.failed else 0
    fuse_pair(vis, ir, Path(args.output), fuser, resize_ir=args.resize_ir)
    console.print(f"wrote {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rtfuse.fusion.registry import load_fuser
    from rtfuse.images import write_image
    from rtfuse.synthetic import SyntheticScene

    w, h = args.size
    scene = SyntheticScene(w, h, seed=args.seed)
    frames = [scene.render(i) for i in range(args.frames)]
    table = Table(title=f"rtfuse demo: synthetic scene {w}x{h}, {args.frames} frames")
    for col in ("backend", "state", "median ms/frame", "fps"):
        table.add_column(col, justify="right" if col in ("median ms/frame", "fps") else "left")
    strip = []
    for name in ("lut", "lut4d", "blend"):
        fuser = load_fuser(name)
        fuser(*frames[0])  # compile / warm up
        times = []
        for vis, ir in frames:
            t0 = time.perf_counter()
            out = fuser(vis, ir)
            times.append(time.perf_counter() - t0)
        ms = 1e3 * float(np.median(times))
        model = getattr(fuser, "model", None)
        state = "-" if model is None else ("UNTRAINED initial LUT" if model.untrained else "trained")
        table.add_row(name, state, f"{ms:.2f}", f"{1e3 / ms:.0f}")
        strip.append(out)
    vis, ir = frames[-1]
    import cv2

    top = np.hstack([vis, cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR)])
    bottom = np.hstack(strip[:2])
    write_image(args.output, np.vstack([top, bottom]))
    console.print(table)
    console.print(f"wrote {args.output}  (top: visible | IR, bottom: lut | lut4d, last frame)")
    return 0


def cmd_lut_info(args: argparse.Namespace) -> int:
    from rtfuse.fusion.lutfile import load_lut

    m = load_lut(args.file)
    t = Table(title=str(args.file), show_header=False)
    t.add_row("kind", m.kind)
    t.add_row("state", "[bold red]UNTRAINED[/] initial LUT" if m.untrained else "trained")
    t.add_row("table", " x ".join(f"{a}[{n}]" for a, n in zip(m.axes, m.table.shape)))
    t.add_row("ranges", ", ".join(f"{a} {lo:g}..{hi:g}" for a, (lo, hi) in zip(m.axes, m.ranges)))
    t.add_row("context net", f"stride {m.ctx_stride}, layers " + " -> ".join(str(tuple(w.shape)) for w, _ in m.ctx_layers))
    for k, v in sorted(m.meta.items()):
        t.add_row(f"meta.{k}", str(v))
    Console(highlight=False).print(t)
    return 0


def cmd_lut_init(args: argparse.Namespace) -> int:
    from rtfuse.fusion.initial import analytic_lut
    from rtfuse.fusion.lutfile import save_lut

    save_lut(args.output, analytic_lut(args.kind))
    console.print(f"wrote {args.output} (analytic {args.kind} LUT, labelled UNTRAINED)")
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtfuse",
        description="Real-time infrared + visible fusion. Each command has its own --help.",
    )
    from rtfuse import __version__

    parser.add_argument("--version", action="version", version=f"rtfuse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "fuse",
        help="fuse an image pair, or two folders of images paired by file stem",
        description="Fuse --vis and --ir into -o. Files: one pair. Folders: every pair sharing a "
        "file stem; unpaired or unreadable files are reported.",
    )
    p.add_argument("--vis", required=True, help="visible image file or folder")
    p.add_argument("--ir", required=True, help="infrared image file or folder (gray; colour is converted)")
    p.add_argument("-o", "--output", required=True, help="output image file, or folder for folder input")
    p.add_argument("--ext", default=".png", help="output extension in folder mode (default .png)")
    p.add_argument("--resize-ir", action="store_true", help="resize IR to the visible size when they differ")
    _add_backend_args(p)
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser("demo", help="fuse a synthetic scene (no camera or data needed) and time the backends")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WxH (default 640x480)")
    p.add_argument("--frames", type=int, default=60, help="frames to fuse (default 60)")
    p.add_argument("--seed", type=int, default=0, help="scene seed")
    p.add_argument("-o", "--output", default="demo_fused.png", help="preview image (default demo_fused.png)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("lut", help="inspect or create LUT files")
    lsub = p.add_subparsers(dest="lut_command", required=True, metavar="ACTION")
    q = lsub.add_parser("info", help="print a LUT file's axes, ranges, context net and metadata")
    q.add_argument("file", type=Path)
    q.set_defaults(func=cmd_lut_info)
    q = lsub.add_parser("init", help="write the analytic (UNTRAINED) starting LUT")
    q.add_argument("--kind", choices=("3d", "4d"), default="3d")
    q.add_argument("-o", "--output", type=Path, required=True)
    q.set_defaults(func=cmd_lut_init)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RtfuseError as e:
        console.print(f"[bold red]rtfuse: error:[/] {e}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]rtfuse: interrupted[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
