"""Every training loss: the teacher's unsupervised fusion loss (DTPF / LUT-Fuse style) on luma plus the
colour term, the student's distillation loss and the LUT fit's loss with its table regularisers.

Tensors are float in [0, 1]; luma (B, 1, H, W), BGR (B, 3, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rtfuse.color import luma_nchw, replace_luma_nchw


def _gauss1d(window: int, sigma: float, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``window`` taps (odd), float32."""
    x = torch.arange(window, dtype=torch.float32, device=device) - (window - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def _gauss(window: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    g = _gauss1d(window, sigma, device)
    return (g[:, None] * g[None, :]).view(1, 1, window, window)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, per_sample: bool = False) -> torch.Tensor:
    """Mean SSIM of single-channel images in [0, 1] (Gaussian 11x11, sigma 1.5, valid region):
    a scalar, or (B,) with ``per_sample``."""
    w = _gauss(window, device=x.device).to(x.dtype)
    mx, my = F.conv2d(x, w), F.conv2d(y, w)
    vx = F.conv2d(x * x, w) - mx * mx
    vy = F.conv2d(y * y, w) - my * my
    vxy = F.conv2d(x * y, w) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean((1, 2, 3)) if per_sample else s.mean()


def sobel(x: torch.Tensor) -> torch.Tensor:
    """|Gx| + |Gy| of (B, 1, H, W) with replicate border."""
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(xp, k.view(1, 1, 3, 3)).abs() + F.conv2d(xp, k.t().reshape(1, 1, 3, 3)).abs()


def cbcr(bgr: torch.Tensor) -> torch.Tensor:
    """BT.601 Cb, Cr (centred at 0) of BGR (B, 3, H, W) in [0, 1]."""
    y = luma_nchw(bgr)
    # BT.601's 0.5 / (1 - LUMA_B) and 0.5 / (1 - LUMA_R) to 3 places, as in LUT-Fuse's YCbCr conversion
    return torch.cat([(bgr[:, 0:1] - y) * 0.564, (bgr[:, 2:3] - y) * 0.713], 1)


def lowpass(x: torch.Tensor, sigma: float = 4.0) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) with reflect border (the image's base layer)."""
    r = int(3 * sigma + 0.5)
    g = _gauss1d(2 * r + 1, sigma, x.device).to(x.dtype)
    x = F.pad(x, (r, r, r, r), mode="reflect")
    return F.conv2d(F.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))


DEFAULT_WEIGHTS = {"ssim": 1.0, "int": 1.0, "grad": 4.0, "color": 2.0, "base": 0.0}


def fusion_loss(
    fused_y: torch.Tensor,
    vis_y: torch.Tensor,
    ir: torch.Tensor,
    vis_bgr: torch.Tensor,
    weights: dict[str, float] | None = None,
    detail: float = 1.0,
    detail_edges: float = 0.0,
    base_sigma: float = 4.0,
    source_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The base loss: SSIM to both sources, L1 to the per-pixel max intensity, L1 to the per-pixel
    max Sobel gradient (times ``detail``, > 1 asks for sharper-than-source edges; with
    ``detail_edges`` > 0 only where that max gradient exceeds it, so flat and textured areas keep
    their source values), L1 on CbCr of the output BGR to the visible image (non-zero only
    where brightening clips a channel), and (weight ``base``) L1 between the base layers
    (:func:`lowpass` at ``base_sigma``) of the output and of the per-pixel max: it keeps the
    large-scale intensities a function of the sources, so the detail term sharpens edges without
    shifting whole regions (which costs mutual information with the sources).

    The sources are the targets: with degraded training inputs, pass the clean pair here.
    ``source_weights`` (B, 2), (visible, IR) per sample (DTPF's text-dependent weights, from
    :func:`rtfuse.training.degrade.reliability`): the SSIM terms are weighted by them, and the
    gradient target takes each source's gradient times its weight over the larger of the two, so a
    source described as badly degraded leads less. None: both 1 (the fixed-weight base loss)."""
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    if source_weights is None:
        l_ssim = (1 - ssim(fused_y, vis_y)) + (1 - ssim(fused_y, ir))
        g_vis, g_ir = sobel(vis_y), sobel(ir)
    else:
        wv, wi = source_weights[:, 0], source_weights[:, 1]
        l_ssim = (
            wv * (1 - ssim(fused_y, vis_y, per_sample=True)) + wi * (1 - ssim(fused_y, ir, per_sample=True))
        ).mean()
        top = source_weights.max(1).values
        g_vis = sobel(vis_y) * (wv / top)[:, None, None, None]
        g_ir = sobel(ir) * (wi / top)[:, None, None, None]
    mx = torch.maximum(vis_y, ir)
    l_int = (fused_y - mx).abs().mean()
    g_max = torch.maximum(g_vis, g_ir)
    boost = 1 + (detail - 1) * (g_max > detail_edges).to(g_max.dtype) if detail_edges > 0 else detail
    l_grad = (sobel(fused_y) - boost * g_max).abs().mean()
    l_color = (cbcr(replace_luma_nchw(vis_bgr, vis_y, fused_y)) - cbcr(vis_bgr)).abs().mean()
    total = w["ssim"] * l_ssim + w["int"] * l_int + w["grad"] * l_grad + w["color"] * l_color
    terms = {"ssim": l_ssim.item(), "int": l_int.item(), "grad": l_grad.item(), "color": l_color.item()}
    if w["base"] > 0:
        l_base = (lowpass(fused_y, base_sigma) - lowpass(mx, base_sigma)).abs().mean()
        total = total + w["base"] * l_base
        terms["base"] = l_base.item()
    return total, terms


def distill_loss(
    base: torch.Tensor,
    student_feats: list[torch.Tensor],
    teacher_feats: list[torch.Tensor],
    student_out: torch.Tensor,
    teacher_out: torch.Tensor,
    w_base: float,
    w_feat: float,
    w_out: float,
) -> torch.Tensor:
    """The student's loss (DTPF eq. 17-19): ``w_base`` x its own fusion loss (``base``, fixed
    weights) + ``w_feat`` x the mean over levels of the L1 between its projected features and the
    teacher's + ``w_out`` x L1 between the two outputs."""
    l_feat = sum(F.l1_loss(s, t) for s, t in zip(student_feats, teacher_feats)) / len(teacher_feats)
    l_out = F.l1_loss(student_out, teacher_out)
    return w_base * base + w_feat * l_feat + w_out * l_out


def restore_loss(restored: torch.Tensor, clean: torch.Tensor, w_grad: float = 1.0) -> torch.Tensor:
    """L1 of a restored source (B, 1, H, W) to its clean crop, on values and (weight ``w_grad``) on
    Sobel gradients (the gradient term keeps the restorer from trading edges for smoothness)."""
    return F.l1_loss(restored, clean) + w_grad * F.l1_loss(sobel(restored), sobel(clean))


def table_regularisers(table: torch.Tensor, axes: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(monotonicity penalty along the vis_y and ir axes, total variation over every axis)."""
    mono = table.new_zeros(())
    tv = table.new_zeros(())
    for d, name in enumerate(axes):
        diff = torch.diff(table, dim=d)
        tv = tv + (diff * diff).mean()
        if name in ("vis_y", "ir"):
            mono = mono + F.relu(-diff).mean()
    return mono, tv


def lut_fit_loss(
    y_lut: torch.Tensor,
    target: torch.Tensor,
    table: torch.Tensor,
    axes: tuple[str, ...],
    detail: float,
    w_ssim: float,
    w_grad: float,
    w_mono: float,
    w_tv: float,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A LUT's loss against the teacher's fused luma (both (B, 1, H, W) in [0, 1]): L1 + SSIM + L1 to
    ``detail`` x the teacher's Sobel gradient, plus the table's monotonicity and TV regularisers.
    Returns the loss and its (L1, 1 - SSIM, monotonicity, TV) parts for logging."""
    l1 = (y_lut - target).abs().mean()
    l_ssim = 1 - ssim(y_lut.clamp(0, 1), target)
    l_grad = (sobel(y_lut) - detail * sobel(target)).abs().mean()
    mono, tv = table_regularisers(table, axes)
    return l1 + w_ssim * l_ssim + w_grad * l_grad + w_mono * mono + w_tv * tv, (l1, l_ssim, mono, tv)
