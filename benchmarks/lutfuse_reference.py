"""Speed reference: our PyTorch re-implementation of LUT-Fuse's published inference path.

Same structure and cost as the ICCV 2025 release, written here from the paper's description
(no code copied): a context CNN at *full resolution* (4 -> 16 channels, five 3x3 convs with
InstanceNorm and LeakyReLU, a residual connection, sigmoid), the visible gradient min-max
normalised per image, and a 16^4 LUT over (Y, gradient, context, IR) read quadrilinearly.
Weights are random: only the cost matters here, not the picture.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rtfuse.fusion.twin import multilinear


class ContextCNN(nn.Module):
    def __init__(self, cin: int = 4, ch: int = 16) -> None:
        super().__init__()
        self.head = nn.Conv2d(cin, ch, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(ch, ch, 3, padding=1) for _ in range(3))
        self.norms = nn.ModuleList(nn.InstanceNorm2d(ch, affine=True) for _ in range(4))
        self.tail = nn.Conv2d(ch, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.norms[0](self.head(x)), 0.2)
        skip = h
        for conv, norm in zip(self.body, self.norms[1:]):
            h = F.leaky_relu(norm(conv(h)), 0.2)
        return torch.sigmoid(self.tail(h + skip))


class LutFuseReference(nn.Module):
    """``forward(vis_bgr (1,3,H,W) float 0..1, ir (1,1,H,W) float 0..1) -> fused BGR (1,3,H,W)``."""

    def __init__(self, bins: int = 16, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.context = ContextCNN()
        self.lut = nn.Parameter(torch.rand(bins, bins, bins, bins, generator=g))
        self.bins = bins
        k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
        self.register_buffer("kx", k.view(1, 1, 3, 3))
        self.register_buffer("ky", k.t().contiguous().view(1, 1, 3, 3))

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        b, g, r = vis[:, 0:1], vis[:, 1:2], vis[:, 2:3]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        cb = (b - y) * 0.564 + 0.5
        cr = (r - y) * 0.713 + 0.5
        grad = F.conv2d(y, self.kx, padding=1).abs() + F.conv2d(y, self.ky, padding=1).abs()
        grad = (grad - grad.amin()) / (grad.amax() - grad.amin() + 1e-6)  # per-image min-max
        ctx = self.context(torch.cat([y, ir, grad, vis.mean(1, keepdim=True)], 1))
        coords = []
        for v in (y, grad, ctx, ir):
            p = v.clamp(0, 1) * (self.bins - 1)
            i0 = p.floor().long().clamp(max=self.bins - 2)
            coords.append((i0, p - i0))
        y_new = multilinear(self.lut, coords)
        r2 = y_new + 1.403 * (cr - 0.5)
        g2 = y_new - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5)
        b2 = y_new + 1.773 * (cb - 0.5)
        return torch.cat([b2, g2, r2], 1).clamp(0, 1)
