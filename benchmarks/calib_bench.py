"""Builder of the synthetic-misalignment benchmark for `rtfuse calibrate auto` (issue 15).

Every registered pair source of the shared data is warped with random grids
(:mod:`rtfuse.calib.warpgen`: homography within +-5 deg, 0.9-1.1x, shear, perspective, +-8 % of
the width, plus a mild smooth non-rigid field) and written in the ``align/roadscene_warped``
layout, so the CLI can be run on it and anyone can check it:

    OUT/<set>/ir_warp/<case>.png   the warped IR (a folder of frames for a video case)
    OUT/<set>/vi/<case>.png        the visible image, untouched (a folder of frames for video)
    OUT/<set>/flow/<case>.mat      key ``flow``, float32 1xHxWx2, x then y in [-1, 1],
                                   ``grid_sample`` with ``align_corners=False``:
                                   ``ir_warp(p) = ir(flow(p))``

Sets (seeded; the same seed gives the same files): ``msrs`` (5 pairs, several warps each),
``tno`` (25), ``roadscene`` (pairs outside the 20 of ``roadscene_warped``, matched by content),
``m3svd`` (single frames of the 3 M3SVD clips), ``tno_seq`` (single frames of the 3 TNO
sequences), ``m3svd_video`` and ``tno_seq_video`` (8 frames of a clip, one warp for all of
them: the video path), and ``unrelated`` (a warped IR with the visible image of another scene:
must be refused). OUT defaults to ``runs/calib_bench`` (ignored by git).

    .venv/bin/python benchmarks/calib_bench.py [--data ../shared/data] [--out runs/calib_bench]
        [--per-set 16] [--seed 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rtfuse.calib.warpgen import apply_grid, random_grid

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "runs" / "calib_bench"
VIDEO_FRAMES = 8  # frames of a video case (the CLI's default --frames)
SETS = ("msrs", "tno", "roadscene", "m3svd", "tno_seq", "m3svd_video", "tno_seq_video", "unrelated")


@dataclass
class Source:
    """One registered scene: IR and visible file lists (one pair, or a clip's frames in order)."""

    group: str  # scene identity: frames of one clip share it (unrelated pairs need two groups)
    ir: list[Path]
    vis: list[Path]


@dataclass
class Case:
    """One benchmark item as written: frame files and the ground-truth grid."""

    set: str
    name: str
    ir: list[Path]
    vis: list[Path]
    flow: Path | None  # None for the unrelated set (no ground truth, must be refused)
    meta: dict = field(default_factory=dict)


def _pairs(root: Path) -> list[Source]:
    vis = {p.stem: p for p in sorted((root / "vis").iterdir())}
    return [
        Source(f"{root.name}:{p.stem}", [p], [vis[p.stem]])
        for p in sorted((root / "ir").iterdir())
        if p.stem in vis
    ]


def _thumb(path: Path) -> np.ndarray:
    return cv2.resize(
        cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (32, 24), interpolation=cv2.INTER_AREA
    ).astype(np.float32)


def roadscene_outside_warped(data: Path) -> list[Source]:
    """RoadScene pairs whose IR is not one of the 20 that ``align/roadscene_warped`` was made from
    (matched by content: those files are renamed copies)."""
    used = [_thumb(p) for p in sorted((data / "align" / "roadscene_warped" / "ir").iterdir())]
    out = []
    for s in _pairs(data / "roadscene"):
        t = _thumb(s.ir[0])
        if min(float(np.abs(t - u).mean()) for u in used) > 1.0:
            out.append(s)
    return out


def clips(data: Path) -> tuple[list[Source], list[Source]]:
    """(M3SVD clips, TNO sequences) as frame lists; a clip in both M3SVD folders counts once."""
    m3svd: dict[str, Source] = {}
    for base in ("video_frames", "video_frames_degraded"):
        for clip in sorted((data / base).iterdir()):
            if clip.name not in m3svd:
                m3svd[clip.name] = Source(
                    f"m3svd:{clip.name}",
                    sorted((clip / "ir").glob("*.png")),
                    sorted((clip / "vis").glob("*.png")),
                )
    seqs = []
    for seq in sorted((data / "tno_sequences").iterdir()):
        ir = sorted((seq / "ir").iterdir())
        vis = {p.stem[:-1]: p for p in (seq / "vis").iterdir()}  # NNNNv pairs with NNNNi
        ir = [p for p in ir if p.stem[:-1] in vis]
        seqs.append(Source(f"tno_seq:{seq.name}", ir, [vis[p.stem[:-1]] for p in ir]))
    return list(m3svd.values()), seqs


def _spread(n_total: int, n: int) -> list[int]:
    return sorted(set(np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int).tolist()))


def select(data: Path, per_set: int, rng: np.random.Generator) -> dict[str, list[tuple[Source, int]]]:
    """Per set: (source, warp index) items. Small sources get several warps, large ones a sample."""
    m3svd, seqs = clips(data)
    out: dict[str, list[tuple[Source, int]]] = {}
    for name in ("msrs", "tno"):
        pairs = _pairs(data / name)
        if per_set >= len(pairs):  # every pair, some warped more than once
            out[name] = [(pairs[i % len(pairs)], i // len(pairs)) for i in range(per_set)]
        else:  # pairs spread over the (sorted) set
            out[name] = [(pairs[i], 0) for i in _spread(len(pairs), per_set)]
    rs = roadscene_outside_warped(data)
    out["roadscene"] = [(rs[i], 0) for i in sorted(rng.choice(len(rs), min(per_set, len(rs)), replace=False))]
    for name, group in (("m3svd", m3svd), ("tno_seq", seqs)):
        k = -(-per_set // len(group))  # frames per clip
        items = []
        for c in group:
            for j in _spread(len(c.ir), k):
                items.append((Source(f"{c.group}", [c.ir[j]], [c.vis[j]]), 0))
        out[name] = items[:per_set]
    for name, group in (("m3svd_video", m3svd), ("tno_seq_video", seqs)):
        n = max(len(group), per_set // 2)  # video cases cost VIDEO_FRAMES frames each
        out[name] = [(group[i % len(group)], i // len(group)) for i in range(n)]
    return out


def _read(path: Path, gray: bool) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"{path}: unreadable")
    return img


def _write_case(root: Path, name: str, src: Source, frames: list[int], rng: np.random.Generator) -> Case:
    """Warp the IR frames with one random grid; write IR, visible and grid. Returns the case."""
    from scipy.io import savemat

    ir0 = _read(src.ir[frames[0]], True)
    vis0 = _read(src.vis[frames[0]], False)
    if ir0.shape[:2] != vis0.shape[:2]:
        raise ValueError(f"{src.ir[frames[0]]}: IR and visible sizes differ; not a registered pair")
    h, w = ir0.shape[:2]
    grid, G = random_grid((w, h), rng)
    video = len(frames) > 1
    irs, viss = [], []
    for k, j in enumerate(frames):
        ir = _read(src.ir[j], True)
        stem = f"{name}/{k:04d}.png" if video else f"{name}.png"
        for sub, img, lst in (("ir_warp", apply_grid(ir, grid), irs), ("vi", _read(src.vis[j], False), viss)):
            p = root / sub / stem
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), img)
            lst.append(p)
    flow = root / "flow" / f"{name}.mat"
    flow.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(flow), {"flow": grid[None]}, do_compression=True)
    meta = {"source": [str(src.ir[j]) for j in frames], "group": src.group, "homography": G.tolist()}
    return Case(root.name, name, irs, viss, flow, meta)


def build(data: Path = DATA, out: Path = OUT, per_set: int = 24, seed: int = 15) -> list[Case]:
    """Write every set under ``out`` (replacing an earlier build) and return the cases."""
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    chosen = select(data, per_set, rng)
    for set_name, items in chosen.items():
        for i, (src, _) in enumerate(items):
            frames = _spread(len(src.ir), VIDEO_FRAMES) if set_name.endswith("_video") else [0]
            cases.append(_write_case(out / set_name, f"{i:03d}", src, frames, rng))
    # unrelated: the warped IR of one single-frame case with the visible image of a case from
    # another scene (groups differ), across every set and size
    singles = [c for c in cases if len(c.ir) == 1]
    order = rng.permutation(len(singles))
    n_unrel = 0
    for k, i in enumerate(order):
        if n_unrel == per_set:
            break
        a = singles[i]
        b = next(singles[j] for j in np.roll(order, -k - 1) if singles[j].meta["group"] != a.meta["group"])
        d = out / "unrelated"
        (d / "ir_warp").mkdir(parents=True, exist_ok=True)
        (d / "vi").mkdir(parents=True, exist_ok=True)
        ir_p, vis_p = d / "ir_warp" / f"{n_unrel:03d}.png", d / "vi" / f"{n_unrel:03d}.png"
        shutil.copyfile(a.ir[0], ir_p)
        shutil.copyfile(b.vis[0], vis_p)
        meta = {"ir_from": f"{a.set}/{a.name}", "vis_from": f"{b.set}/{b.name}"}
        cases.append(Case("unrelated", f"{n_unrel:03d}", [ir_p], [vis_p], None, meta))
        n_unrel += 1
    manifest = [
        {
            "set": c.set,
            "name": c.name,
            "ir": [str(p) for p in c.ir],
            "vis": [str(p) for p in c.vis],
            "flow": str(c.flow) if c.flow else None,
            "meta": c.meta,
        }
        for c in cases
    ]
    (out / "manifest.json").write_text(
        json.dumps({"seed": seed, "per_set": per_set, "cases": manifest}, indent=1)
    )
    return cases


def load(out: Path = OUT) -> list[Case]:
    """The cases of an earlier :func:`build` (from its manifest)."""
    m = json.loads((out / "manifest.json").read_text())
    return [
        Case(
            c["set"],
            c["name"],
            [Path(p) for p in c["ir"]],
            [Path(p) for p in c["vis"]],
            Path(c["flow"]) if c["flow"] else None,
            c["meta"],
        )
        for c in m["cases"]
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--per-set", type=int, default=16)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    cases = build(args.data, args.out, args.per_set, args.seed)
    for s in SETS:
        print(f"{s}: {sum(c.set == s for c in cases)} cases")
    print(f"written under {args.out}")


if __name__ == "__main__":
    main()
