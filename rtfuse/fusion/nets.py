"""Teacher and student fusion networks (luma in, fused luma out; chroma is the visible's).

The inference side of the ``student`` and ``teacher`` backends; training imports them from here.

Both are U-shaped: a dual-stream encoder (one stream per modality, weights not shared) down to
1/8 resolution, cross-modal fusion at every scale (concatenation, 1x1 mixing, squeeze-excite
gating), residual blocks at the bottleneck, and a decoder with the fused skips. Most parameters
sit at 1/8 resolution, which keeps a full-resolution forward pass cheap on a CPU.

The teacher is conditioned on a degradation descriptor ``c`` (low light, over-exposure, IR
noise, low IR contrast; :func:`degradation`), which modulates the bottleneck features as
``(1 + gamma(c)) * F + beta(c)``: the textual prior of DTPF reduced to the measurable part of the
description. The student has no condition input and about a tenth of the parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

N_COND = 4


def degradation(vis_y: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """(B, 4) in [0, 1]: low light, over-exposure, IR noise, low IR contrast, from the images."""
    low_light = (1 - vis_y.mean((1, 2, 3)) / 0.35).clamp(0, 1)
    over = ((vis_y > 0.95).float().mean((1, 2, 3)) * 5).clamp(0, 1)
    noise = ((ir - F.avg_pool2d(ir, 3, 1, 1, count_include_pad=False)).abs().mean((1, 2, 3)) * 25).clamp(0, 1)
    low_contrast = (1 - ir.std((1, 2, 3)) / 0.2).clamp(0, 1)
    return torch.stack([low_light, over, noise, low_contrast], 1)


class ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1)
        self.b = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(F.leaky_relu(self.a(x), 0.1))


class CrossFuse(nn.Module):
    """Fuse same-scale features of both modalities: concat, 1x1 mix, squeeze-excite gate."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(2 * c, c, 1)
        self.gate = nn.Sequential(nn.Linear(2 * c, max(c // 4, 4)), nn.ReLU(), nn.Linear(max(c // 4, 4), c))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        cat = torch.cat([a, b], 1)
        g = torch.sigmoid(self.gate(cat.mean((2, 3))))[..., None, None]
        return F.leaky_relu(self.mix(cat), 0.1) * g


class Encoder(nn.Module):
    def __init__(self, widths: tuple[int, int, int, int], deep_blocks: int) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.s0 = nn.Sequential(
            nn.Conv2d(1, w0, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv2d(w0, w0, 3, padding=1)
        )
        self.s1 = nn.Sequential(nn.Conv2d(w0, w1, 3, stride=2, padding=1), nn.LeakyReLU(0.1), ResBlock(w1))
        self.s2 = nn.Sequential(nn.Conv2d(w1, w2, 3, stride=2, padding=1), nn.LeakyReLU(0.1), ResBlock(w2))
        self.s3 = nn.Sequential(
            nn.Conv2d(w2, w3, 3, stride=2, padding=1),
            nn.LeakyReLU(0.1),
            *[ResBlock(w3) for _ in range(deep_blocks)],
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f0 = self.s0(x)
        f1 = self.s1(f0)
        f2 = self.s2(f1)
        return [f0, f1, f2, self.s3(f2)]


class FusionNet(nn.Module):
    """``forward(vis_y, ir, cond=None) -> (fused_y, bottleneck features)``; inputs (B, 1, H, W) in [0, 1].

    H and W may be anything: inputs are padded to a multiple of 8 internally.
    """

    def __init__(
        self,
        widths: tuple[int, int, int, int] = (16, 32, 64, 128),
        enc_blocks: int = 2,
        mid_blocks: int = 3,
        cond: bool = True,
    ) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.enc_vis = Encoder(self.widths, enc_blocks)
        self.enc_ir = Encoder(self.widths, enc_blocks)
        self.fuse = nn.ModuleList(CrossFuse(w) for w in self.widths)
        self.mid = nn.ModuleList(ResBlock(self.widths[3]) for _ in range(mid_blocks))
        self.film = (
            nn.Sequential(nn.Linear(N_COND, 64), nn.ReLU(), nn.Linear(64, 2 * self.widths[3]))
            if cond
            else None
        )
        if self.film is not None:
            nn.init.zeros_(self.film[-1].weight)
            nn.init.zeros_(self.film[-1].bias)
        w0, w1, w2, w3 = self.widths
        self.up2 = nn.Sequential(nn.Conv2d(w3 + w2, w2, 3, padding=1), nn.LeakyReLU(0.1), ResBlock(w2))
        self.up1 = nn.Sequential(nn.Conv2d(w2 + w1, w1, 3, padding=1), nn.LeakyReLU(0.1), ResBlock(w1))
        self.up0 = nn.Sequential(
            nn.Conv2d(w1 + w0, w0, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(w0, w0, 3, padding=1),
            nn.LeakyReLU(0.1),
        )
        self.head = nn.Conv2d(w0 + 2, 1, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # start as the per-pixel max
        nn.init.zeros_(self.head.bias)

    def forward(
        self, vis_y: torch.Tensor, ir: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = vis_y.shape[-2:]
        pad = (0, (-w) % 8, 0, (-h) % 8)
        if any(pad):
            vis_y, ir = F.pad(vis_y, pad, mode="replicate"), F.pad(ir, pad, mode="replicate")
        fv, fi = self.enc_vis(vis_y), self.enc_ir(ir)
        f = [fuse(a, b) for fuse, a, b in zip(self.fuse, fv, fi)]
        x = f[3]
        for blk in self.mid:
            x = blk(x)
        if self.film is not None:
            if cond is None:
                cond = degradation(vis_y, ir)
            gamma, beta = self.film(cond).chunk(2, 1)
            x = (1 + gamma[..., None, None]) * x + beta[..., None, None]
        feat = x
        x = self.up2(
            torch.cat([F.interpolate(x, size=f[2].shape[-2:], mode="bilinear", align_corners=False), f[2]], 1)
        )
        x = self.up1(
            torch.cat([F.interpolate(x, size=f[1].shape[-2:], mode="bilinear", align_corners=False), f[1]], 1)
        )
        x = self.up0(
            torch.cat([F.interpolate(x, size=f[0].shape[-2:], mode="bilinear", align_corners=False), f[0]], 1)
        )
        # The net predicts a correction of the per-pixel max of the sources; no output squashing
        # (a sigmoid here saturated and stalled training), just the valid range.
        base = torch.maximum(vis_y, ir)
        y = (base + self.head(torch.cat([x, vis_y, ir], 1))).clamp(0.0, 1.0)
        return y[..., :h, :w], feat


def teacher(**kw) -> FusionNet:
    """About 3 M parameters, degradation-conditioned."""
    return FusionNet(widths=(16, 32, 64, 128), enc_blocks=2, mid_blocks=4, cond=True, **kw)


def student(**kw) -> FusionNet:
    """About a tenth of the teacher, no condition input."""
    return FusionNet(widths=(8, 16, 24, 40), enc_blocks=1, mid_blocks=2, cond=False, **kw)


ARCHS = {"teacher": teacher, "student": student}
