"""Still-image I/O with the frame conventions of the pipeline and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from rtfuse.atomic import write_atomic
from rtfuse.errors import InputError
from rtfuse.prepare import to_ir_gray, to_vis_bgr

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: not a readable image (corrupt, or a format OpenCV cannot decode)")
    return img


def read_vis(path: str | os.PathLike) -> np.ndarray:
    """Visible image as uint8 (H, W, 3) BGR; gray files are expanded, alpha dropped, 16-bit scaled."""
    return to_vis_bgr(_read(Path(path)))


def read_ir(path: str | os.PathLike) -> np.ndarray:
    """IR image as uint8 (H, W): colour files are converted to gray, 16-bit is percentile-stretched."""
    return to_ir_gray(_read(Path(path)))


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write atomically: encode to a temporary name, then rename, so no half-written file remains."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise InputError(f"{path}: unsupported image extension {ext!r}; use one of {', '.join(IMAGE_EXTS)}")
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise InputError(f"{path}: OpenCV could not encode the image as {ext}")
    write_atomic(path, buf.tobytes(), "image")


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Image files in ``folder`` keyed by stem, sorted. Duplicate stems are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: {'not a directory' if folder.exists() else 'no such directory'}")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            if p.stem in found:
                raise InputError(f"{folder}: two images share the stem {p.stem!r} ({found[p.stem].name}, "
                                 f"{p.name}); keep one of them in the folder")
            found[p.stem] = p
    return found


# Modality tags that may mark every file of one side (case-insensitive), longest first so that
# "vis" wins over "v". Separators "_", "-", "." and " " next to a tag are dropped with it.
VIS_TAGS = ("visible", "colour", "color", "vis", "rgb", "eo", "v")
IR_TAGS = ("infrared", "thermal", "lwir", "tir", "ir", "t", "i")
_SEPARATORS = "_-. "
PAIRING_RULE = (
    "pairs are matched by file stem (vis/0001.png with ir/0001.png), or else by the stem without a modality "
    "tag that every file of a side carries (7400v/7400i, 0001_vis/0001_ir, RGB_0001/IR_0001)"
)


def _strippers(stems: list[str], tags: tuple[str, ...]) -> list[dict[str, str]]:
    """For each tag that every one of ``stems`` carries at the same end: stem -> stem without it."""
    found = []
    for tag in tags:
        for suffix in (True, False):
            low = [stem.lower() for stem in stems]
            if not stems or not all(x.endswith(tag) if suffix else x.startswith(tag) for x in low):
                continue
            n = len(tag)
            cut = {s: s[:-n].rstrip(_SEPARATORS) if suffix else s[n:].lstrip(_SEPARATORS) for s in stems}
            if all(cut.values()) and _distinct(cut):  # nothing left empty, no two stems merged
                found.append(cut)
    return found


def _distinct(cut: dict[str, str]) -> bool:
    return len({c.lower() for c in cut.values()}) == len(cut)


Pairs = dict[str, tuple[Path, Path]]  # name -> (visible path, IR path)


def pair_stems(vis: dict[str, Path], ir: dict[str, Path]) -> tuple[Pairs, list[str], list[str]]:
    """Pair visible and IR images (as :func:`list_images` returns them): ``(pairs, vis_only, ir_only)``.

    ``pairs`` maps a name (for the output file) to ``(vis path, ir path)``, sorted; ``vis_only`` and
    ``ir_only`` are the stems left unpaired. Equal stems pair. Only if no stem is equal on both
    sides, a modality tag that every stem of a side carries as a suffix or prefix (:data:`VIS_TAGS`,
    :data:`IR_TAGS`, case-insensitive; e.g. TNO's ``7400v``/``7400i``) is dropped, on one side or
    both, and the rest of the stems compared case-insensitively. The reading that pairs the most
    files wins; a pair's name is then the visible stem without its tag. See :data:`PAIRING_RULE`.
    """
    exact = sorted(set(vis) & set(ir))
    if exact:
        return {s: (vis[s], ir[s]) for s in exact}, sorted(set(vis) - set(ir)), sorted(set(ir) - set(vis))
    best: dict[str, tuple[str, str]] = {}  # name -> (vis stem, ir stem)
    def readings(stems: dict[str, Path], tags: tuple[str, ...]) -> list[dict[str, str]]:
        as_is = {s: s for s in stems}
        return ([as_is] if _distinct(as_is) else []) + _strippers(list(stems), tags)  # not if "A" and "a"

    for vcut in readings(vis, VIS_TAGS):
        for icut in readings(ir, IR_TAGS):
            by_key = {cut.lower(): stem for stem, cut in icut.items()}
            found = {vcut[v]: (v, by_key[vcut[v].lower()]) for v in vis if vcut[v].lower() in by_key}
            if len(found) > len(best):
                best = found
    pairs = {name: (vis[v], ir[i]) for name, (v, i) in sorted(best.items())}
    return (pairs, sorted(set(vis) - {v for v, _ in best.values()}),
            sorted(set(ir) - {i for _, i in best.values()}))
