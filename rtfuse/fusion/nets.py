"""Teacher and student fusion networks (luma in, fused luma out; chroma is the visible's).

The inference side of the ``student`` and ``teacher`` backends; training imports them from here.

Both are U-shaped: a dual-stream encoder (one stream per modality, weights not shared) down to
1/8 resolution, cross-modal fusion at every scale (concatenation, 1x1 mixing, squeeze-excite
gating), residual blocks at the bottleneck, and a decoder with the fused skips. Most parameters
sit at 1/8 resolution, which keeps a full-resolution forward pass cheap on a CPU.

The teacher is conditioned on a sentence that describes the degradations of the pair (DTPF's
text prior), as its sentence embedding ``t`` (:data:`TEXT_DIM` floats, made by
:mod:`rtfuse.fusion.text`). ``t`` modulates the features at three scales (the 1/8 bottleneck and the
1/4 and 1/2 decoder levels) as ``(1 + gamma(t)) * F + beta(t)``. The network stores the embedding
of the "clean" description (:data:`rtfuse.fusion.text.CLEAN_PROMPT`) as a buffer, so a teacher
called without a text, e.g. by LUT distillation, needs no sentence model. The student has no text
input and about a tenth of the parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtfuse.fusion.text import TEXT_DIM


class Film(nn.Module):
    """``(1 + gamma(t)) * F + beta(t)``: feature-wise modulation of (B, C, H, W) by a (B, D) text
    embedding; starts as the identity (zero-initialised last layer)."""

    def __init__(self, d: int, c: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d, 128), nn.ReLU(), nn.Linear(128, 2 * c))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.mlp(t).chunk(2, 1)
        return (1 + gamma[..., None, None]) * x + beta[..., None, None]


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


def _gauss_kernel(sigma: float) -> torch.Tensor:
    r = int(3 * sigma + 0.5)
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * sigma * sigma))
    return k / k.sum()


class Restorer(nn.Module):
    """Blind clean-up of one source before fusion, (B, 1, H, W) in [0, 1] with H and W even.

    ``x + r + sum_k g_k * b_k``: ``b_k`` are the frame's detail bands (differences of Gaussians at
    sigma 0, 1 and 2 pixels); the per-pixel gains ``g_k`` (positive: sharpen, as an unsharp mask
    whose strength the content decides; negative: smooth noise) and a free residual ``r`` come from
    a small network. Gains make deblurring one direction per band to learn, where a free residual
    learnt nothing of it in the same steps. The network runs at half resolution on the
    pixel-unshuffled frame (4 channels: a 2x2 block per pixel); a profile branch adds the mean of
    the features over each column and each row back to them, because a fixed stripe pattern spans a
    whole column (or row), which no local filter can tell from texture, and a frame branch adds the
    frame means (blur is a property of the frame). Starts as the identity
    (zero-initialised output layer).
    """

    SIGMAS = (1.0, 2.0)

    def __init__(self, c: int = 8, blocks: int = 1) -> None:
        super().__init__()
        self.inp = nn.Conv2d(4, c, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(c) for _ in range(blocks)])
        self.cols = nn.Conv2d(c, c, 1)
        self.rows = nn.Conv2d(c, c, 1)
        self.frame = nn.Linear(c + len(self.SIGMAS), c)
        self.out = nn.Conv2d(c, 4 * (1 + len(self.SIGMAS)), 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        for i, s in enumerate(self.SIGMAS):
            self.register_buffer(f"gauss{i}", _gauss_kernel(s), persistent=False)

    def bands(self, x: torch.Tensor) -> torch.Tensor:
        """(B, len(SIGMAS), H, W): x - G1 x, G1 x - G2 x (replicate borders)."""
        levels = [x]
        for i in range(len(self.SIGMAS)):
            k = getattr(self, f"gauss{i}")
            r = k.numel() // 2
            y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
            levels.append(F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1)))
        return torch.cat([a - b for a, b in zip(levels[:-1], levels[1:])], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bands(x)
        z = self.body(F.leaky_relu(self.inp(F.pixel_unshuffle(x, 2)), 0.1))
        # How blurred or noisy the frame is shows in the whole frame (no sharp edge anywhere), not
        # at a pixel: the features' frame means and the log energy of each band steer every pixel.
        frame = self.frame(torch.cat([z.mean((2, 3)), torch.log(b.abs().mean((2, 3)) + 1e-4)], 1))
        z = (
            z
            + self.cols(z.mean(2, keepdim=True))
            + self.rows(z.mean(3, keepdim=True))
            + frame[..., None, None]
        )
        out = F.pixel_shuffle(self.out(F.leaky_relu(z, 0.1)), 2)  # (B, 1 + bands, H, W): residual, gains
        gained = (out[:, 1:] * b).sum(1, keepdim=True)
        return (x + out[:, :1] + gained).clamp(0.0, 1.0)


class FusionNet(nn.Module):
    """``forward(vis_y, ir, text=None) -> (fused_y, features)``; inputs (B, 1, H, W) in [0, 1].

    ``features``: the bottleneck (1/8) and the 1/4 and 1/2 decoder features, for distillation.
    ``text``: (B, TEXT_DIM) or (TEXT_DIM,) sentence embeddings, for a text-conditioned net only;
    None uses the stored "clean" embedding. H and W may be anything: inputs are padded to a
    multiple of 8 internally. ``restore``: (channels, blocks) of a :class:`Restorer` for the visible
    and one for the IR, which each source first passes (the ``student-restore`` architecture, issue
    13); :meth:`restored` gives their outputs. None: no restorers.
    """

    def __init__(
        self,
        widths: tuple[int, int, int, int] = (16, 32, 64, 128),
        enc_blocks: int = 2,
        mid_blocks: int = 3,
        text: bool = True,
        restore: tuple[tuple[int, int], tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.restore = nn.ModuleList([Restorer(*cb) for cb in restore]) if restore else None
        self.enc_vis = Encoder(self.widths, enc_blocks)
        self.enc_ir = Encoder(self.widths, enc_blocks)
        self.fuse = nn.ModuleList(CrossFuse(w) for w in self.widths)
        self.mid = nn.ModuleList(ResBlock(self.widths[3]) for _ in range(mid_blocks))
        w0, w1, w2, w3 = self.widths
        # text modulation of the bottleneck, then of the 1/4 and 1/2 decoder levels
        self.film = nn.ModuleList(Film(TEXT_DIM, c) for c in (w3, w2, w1)) if text else None
        if text:
            self.register_buffer("clean_text", torch.zeros(TEXT_DIM))
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

    def restored(self, vis_y: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sources as the fusion sees them: through the restorers (identity without them)."""
        if self.restore is None:
            return vis_y, ir
        h, w = vis_y.shape[-2:]
        pad = (0, w % 2, 0, h % 2)
        if any(pad):
            vis_y, ir = F.pad(vis_y, pad, mode="replicate"), F.pad(ir, pad, mode="replicate")
        return self.restore[0](vis_y)[..., :h, :w], self.restore[1](ir)[..., :h, :w]

    def forward(
        self, vis_y: torch.Tensor, ir: torch.Tensor, text: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        y, feats, _ = self.forward_all(vis_y, ir, text)
        return y, feats

    def forward_all(
        self, vis_y: torch.Tensor, ir: torch.Tensor, text: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """``forward``, plus the restored sources (cropped to H x W) for training's restoration loss."""
        h, w = vis_y.shape[-2:]
        pad = (0, (-w) % 8, 0, (-h) % 8)
        if any(pad):
            vis_y, ir = F.pad(vis_y, pad, mode="replicate"), F.pad(ir, pad, mode="replicate")
        vis_y, ir = self.restored(vis_y, ir)
        fv, fi = self.enc_vis(vis_y), self.enc_ir(ir)
        f = [fuse(a, b) for fuse, a, b in zip(self.fuse, fv, fi)]
        x = f[3]
        for blk in self.mid:
            x = blk(x)
        film = self.film
        if film is not None:
            t = self.clean_text if text is None else text.to(x.dtype)
            t = t.expand(x.shape[0], -1) if t.dim() == 1 else t
        elif text is not None:
            raise ValueError("this network takes no text (a student): call it without one")

        def up(block: nn.Module, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            size = skip.shape[-2:]
            return block(
                torch.cat([F.interpolate(x, size=size, mode="bilinear", align_corners=False), skip], 1)
            )

        def modulate(i: int, x: torch.Tensor) -> torch.Tensor:
            return x if film is None else film[i](x, t)

        b = modulate(0, x)
        d2 = modulate(1, up(self.up2, b, f[2]))
        d1 = modulate(2, up(self.up1, d2, f[1]))
        feats = [b, d2, d1]
        x = up(self.up0, d1, f[0])
        # The net predicts a correction of the per-pixel max of the sources; no output squashing
        # (a sigmoid here saturated and stalled training), just the valid range.
        base = torch.maximum(vis_y, ir)
        y = (base + self.head(torch.cat([x, vis_y, ir], 1))).clamp(0.0, 1.0)
        return y[..., :h, :w], feats, (vis_y[..., :h, :w], ir[..., :h, :w])


def teacher(**kw) -> FusionNet:
    """About 3 M parameters, text-conditioned."""
    return FusionNet(widths=(16, 32, 64, 128), enc_blocks=2, mid_blocks=4, text=True, **kw)


def student(**kw) -> FusionNet:
    """About a tenth of the teacher, no text input."""
    return FusionNet(widths=(8, 16, 24, 40), enc_blocks=1, mid_blocks=2, text=False, **kw)


def student_restore(**kw) -> FusionNet:
    """The student with a :class:`Restorer` per source in front (issue 13: degraded inputs). The IR
    one is the larger: denoising stripes, banding and noise together is the harder task (seventh
    round, weights/MODEL_CARD.md)."""
    return FusionNet(
        widths=(8, 16, 24, 40), enc_blocks=1, mid_blocks=2, text=False, restore=((8, 1), (16, 2)), **kw
    )


ARCHS = {"teacher": teacher, "student": student, "student-restore": student_restore}
