"""`rtfuse distill lut`: fit a 3-D or 4-D LUT and its context net to the teacher's outputs.

The fit runs through the differentiable twin (:mod:`rtfuse.fusion.twin`), so what is trained is
exactly what the Numba kernel evaluates. Loss: L1 to the teacher's luma + (1 - SSIM) + L1 between
their Sobel gradients (so the table keeps the teacher's detail), plus a monotonicity penalty (fused luma should not fall when visible luma or IR rises) and a total-
variation smoothness penalty over the table. The export is the plain-array ``.npz`` format.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

from rtfuse.fusion.initial import analytic_lut
from rtfuse.fusion.lutfile import load_lut, save_lut
from rtfuse.fusion.twin import LutFusion
from rtfuse.messages import make_console
from rtfuse.training import checkpoint
from rtfuse.training.data import CropSampler, darken, load_pairs, to_float
from rtfuse.training.degrade import degrade_batch, describe
from rtfuse.training.losses import lut_fit_loss
from rtfuse.training.schedule import cosine_lr
from rtfuse.training.train import _progress


@dataclass
class LutFitConfig:
    teacher: str
    data: list[str]  # folders with vis/ and ir/; the training split of each is used
    out: str
    kind: str = "3d"
    init: str = ""  # a LUT .npz to start from (default: the analytic one of this kind)
    ctx_bins: int = 8  # nodes on the context axis of a fresh table (finer: sharper local contrast)
    steps: int = 1500
    batch: int = 8
    crop: int = 192
    bank: int = 320  # teacher outputs computed once for this many crops
    dark: float = 0.5  # share of bank crops whose visible image is darkened (night coverage)
    ir_dark: float = 0.5  # share of bank crops whose IR is darkened (cold scenes, other AGC settings)
    degrade: float = 0.0  # share of bank crops degraded; the teacher reads their description
    lr_table: float = 5e-3
    lr_ctx: float = 2e-3
    w_ssim: float = 1.0
    w_grad: float = 1.0  # L1 between Sobel gradients of the LUT's and the teacher's luma (keeps detail)
    detail: float = 1.0  # gradient target = detail x the teacher's gradient (> 1: sharper than the teacher)
    w_mono: float = 1.0
    w_tv: float = 0.05
    seed: int = 0
    ckpt: str = ""  # resumable state (default: runs/lutfit/<output stem>.last.pt)
    ckpt_every: int = 250


# Cosine schedule floor (fraction of each peak rate), as the shipped LUTs were fitted. No warm-up: the fit
# starts from a working table, not random weights.
LR_FLOOR = 0.05

# What may differ when a fit is resumed: how long and where it runs, not what it learns.
_MAY_CHANGE_ON_RESUME = ("steps", "out", "ckpt", "ckpt_every")


def checkpoint_path(cfg: LutFitConfig) -> Path:
    return Path(cfg.ckpt) if cfg.ckpt else Path("runs") / "lutfit" / f"{Path(cfg.out).stem}.last.pt"


def _bank(cfg: LutFitConfig, teacher, console: Console):
    """Crops of the training split with the teacher's fused luma, as uint8 / float16 tensors.

    With ``cfg.degrade``, that share of the crops is degraded and the teacher, told what is wrong
    with them, fuses them: a table fitted to its (cleaner) outputs learns not to sharpen noise."""
    pairs = [p for root in cfg.data for p in load_pairs(root, "train")]
    sampler = CropSampler(pairs, cfg.crop, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    texts = None
    if cfg.degrade > 0:
        from rtfuse.fusion.text import TextEncoder

        texts = TextEncoder()
    vis_all, ir_all, y_all = [], [], []
    with torch.no_grad():
        for start in range(0, cfg.bank, 16):
            vis_u8, ir_u8 = sampler.batch(min(16, cfg.bank - start))
            # Bright daylight pairs leave the low cells of the table unseen: darken a share of the
            # visible crops (night scenes) and, independently, of the IR crops (cold scenes and
            # other AGC settings put thermal frames at a mean of 20-40 rather than ~120).
            vis_u8, ir_u8 = darken(vis_u8, ir_u8, cfg.dark, cfg.ir_dark, gen)
            text = None
            if texts is not None:
                vis_u8, ir_u8, degs = degrade_batch(vis_u8, ir_u8, sampler.rng, cfg.degrade)
                text = torch.from_numpy(texts([describe(d, sampler.rng) for d in degs]))
            _, vis_y, ir = to_float(vis_u8, ir_u8)
            y, _ = teacher(vis_y, ir, text)
            vis_all.append(vis_u8)
            ir_all.append(ir_u8)
            y_all.append(y.half())
    if texts is not None:
        texts.save()
    console.print(f"teacher outputs for {cfg.bank} crops of {cfg.crop}^2 computed")
    return torch.cat(vis_all), torch.cat(ir_all), torch.cat(y_all)


def fit_lut(cfg: LutFitConfig, console: Console | None = None) -> Path:
    console = console or make_console()
    torch.manual_seed(cfg.seed)
    teacher, tck = checkpoint.load_model(cfg.teacher)
    model = load_lut(cfg.init) if cfg.init else analytic_lut(cfg.kind, n_ctx=cfg.ctx_bins)
    twin = LutFusion(model)
    opt = torch.optim.Adam(
        [
            {"params": [twin.table], "lr": cfg.lr_table},
            {"params": list(twin.ctx_w) + list(twin.ctx_b), "lr": cfg.lr_ctx},
        ]
    )
    rng = np.random.default_rng(cfg.seed)
    ckpt = checkpoint_path(cfg)
    start, last = 0, {}
    if ckpt.is_file():
        ck = checkpoint.load(ckpt)
        checkpoint.check_same_settings(
            ckpt,
            ck.get("config", {}),
            cfg,
            _MAY_CHANGE_ON_RESUME,
            "delete it or pass --ckpt to start a new fit",
        )
        twin.load_state_dict(ck["twin"])
        opt.load_state_dict(ck["opt"])
        rng.bit_generator.state = ck["rng"]
        start, last = int(ck["step"]), ck.get("last", {})
        console.print(f"resuming {ckpt} at step {start}")
    vis_b, ir_b, y_b = _bank(cfg, teacher, console)  # deterministic from the seed: rebuilt on resume

    def save(step: int) -> None:
        checkpoint.save(
            ckpt,
            twin=twin.state_dict(),
            opt=opt.state_dict(),
            rng=rng.bit_generator.state,
            step=step,
            config=asdict(cfg),
            last=last,
        )

    t0 = time.time()
    with _progress(console) as progress:
        task = progress.add_task(f"fitting {model.kind} LUT", total=cfg.steps, completed=start, loss="-")
        for step in range(start, cfg.steps):
            for g, base in zip(opt.param_groups, (cfg.lr_table, cfg.lr_ctx)):
                g["lr"] = cosine_lr(base, step, cfg.steps, LR_FLOOR)
            idx = torch.from_numpy(rng.integers(0, len(vis_b), cfg.batch))
            _, y_lut = twin(vis_b[idx], ir_b[idx], dense=True)
            y_lut = y_lut / 255.0
            target = y_b[idx].float()
            loss, (l1, l_ssim, mono, tv) = lut_fit_loss(
                y_lut, target, twin.table, twin.axes, cfg.detail, cfg.w_ssim, cfg.w_grad, cfg.w_mono, cfg.w_tv
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                twin.table.clamp_(0.0, 1.0)
            last = {"l1": l1.item(), "ssim": 1 - l_ssim.item(), "mono": mono.item(), "tv": tv.item()}
            progress.update(task, advance=1, loss=f"{loss.item():.4f} (L1 {255 * l1.item():.2f} levels)")
            if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
                save(step + 1)
    meta = {
        "untrained": False,
        "method": "distilled from the teacher through the PyTorch twin (rtfuse distill lut)",
        "teacher": Path(cfg.teacher).name,
        "teacher_steps": int(tck.get("step", 0)),
        "created": _dt.date.today().isoformat(),
        "config": asdict(cfg),
        "final_losses": last,
    }
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_lut(out, twin.to_model(**meta))
    if last:
        console.print(
            f"wrote {out} ({time.time() - t0:.0f} s this run; final L1 to teacher {255 * last['l1']:.2f} "
            f"levels, SSIM {last['ssim']:.4f})"
        )
    else:
        console.print(f"wrote {out} (the checkpoint had already reached step {start})")
    return out
