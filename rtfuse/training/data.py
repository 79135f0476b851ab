"""Training data: registered IR/visible pairs in memory, random crops, darkening.

The pairing and the fixed held-out split are the runtime's (:mod:`rtfuse.split`), re-exported here.
Imports torch only where tensors are made.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtfuse.color import luma_nchw
from rtfuse.errors import InputError
from rtfuse.images import read_ir, read_vis
from rtfuse.split import pair_files, split_stems

__all__ = ["CropSampler", "darken", "load_pairs", "pair_files", "split_stems", "to_float"]


def load_pairs(root: str | Path, subset: str = "all") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(stem, vis BGR uint8, IR uint8) for ``root/{vis,ir}``; ``subset`` is all, train or heldout."""
    root = Path(root)
    vis, ir, stems = pair_files(root / "vis", root / "ir", subset)
    out = []
    for s in stems:
        v, i = read_vis(vis[s]), read_ir(ir[s])
        if v.shape[:2] != i.shape:
            raise InputError(f"{root}: pair {s} is not registered (sizes {v.shape[:2]} vs {i.shape})")
        out.append((s, v, i))
    return out


class CropSampler:
    """Random ``size`` x ``size`` crops with flips from in-memory pairs; seeded, reproducible."""

    def __init__(
        self, pairs: list[tuple[str, np.ndarray, np.ndarray]], size: int = 128, seed: int = 0
    ) -> None:
        self.pairs = [(v, i) for _, v, i in pairs if min(i.shape) >= size]
        if not self.pairs:
            raise InputError(f"no training pair is at least {size}x{size}")
        self.size = size
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int):
        """(vis BGR uint8 (n, 3, s, s), IR uint8 (n, 1, s, s)) as torch tensors."""
        import torch

        s = self.size
        vs, irs = [], []
        for _ in range(n):
            v, i = self.pairs[self.rng.integers(len(self.pairs))]
            y0 = self.rng.integers(0, i.shape[0] - s + 1)
            x0 = self.rng.integers(0, i.shape[1] - s + 1)
            v, i = v[y0 : y0 + s, x0 : x0 + s], i[y0 : y0 + s, x0 : x0 + s]
            if self.rng.random() < 0.5:
                v, i = v[:, ::-1], i[:, ::-1]
            vs.append(np.ascontiguousarray(v.transpose(2, 0, 1)))
            irs.append(np.ascontiguousarray(i)[None])
        return torch.from_numpy(np.stack(vs)), torch.from_numpy(np.stack(irs))


VIS_DARK_GAINS = (0.1, 0.6)
IR_DARK_GAINS = (0.2, 0.7)


def darken(vis_u8, ir_u8, vis_share: float, ir_share: float, gen=None):
    """Scale a random share of the visible and, independently, of the IR crops of a uint8 batch
    (n, c, h, w) by gains drawn from VIS_DARK_GAINS / IR_DARK_GAINS.

    Bright daylight pairs leave the low cells of a LUT (and a network's dark-scene behaviour)
    unseen: darkened visible crops stand for night scenes, darkened IR for cold scenes and other
    AGC settings (thermal frames at a mean of 20-40 rather than ~120).
    """
    import torch

    def scale(img, share, gains):
        if share <= 0:  # draw nothing: runs without darkening keep their random sequence
            return img
        n = img.shape[0]
        lo, hi = gains
        picked = torch.rand(n, generator=gen) < share  # drawn before the gains, as the shipped runs did
        gain = torch.where(picked, lo + (hi - lo) * torch.rand(n, generator=gen), torch.ones(n))
        return (img.float() * gain[:, None, None, None]).round().to(torch.uint8)

    return scale(vis_u8, vis_share, VIS_DARK_GAINS), scale(ir_u8, ir_share, IR_DARK_GAINS)


def to_float(vis_u8, ir_u8, device: str = "cpu"):
    """(vis BGR, vis luma, IR) float in [0, 1] on ``device`` from uint8 batches."""
    vis = vis_u8.to(device).float() / 255.0
    ir = ir_u8.to(device).float() / 255.0
    return vis, luma_nchw(vis), ir
