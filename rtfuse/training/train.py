"""`rtfuse train teacher` and `rtfuse distill student`: seeded, resumable, with a progress bar.

With ``degrade`` > 0 (issue 13, DTPF), that share of the crops is degraded
(:mod:`rtfuse.training.degrade`) before it reaches the networks, while the losses see the clean
crops as their targets. The teacher also reads a sentence describing each crop's degradations (its
sentence embedding, :mod:`rtfuse.fusion.text`), and its SSIM and gradient terms weight the two
sources by how degraded the sentence says each is. The student sees only the degraded pair.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from rtfuse.errors import RtfuseError
from rtfuse.fusion.text import CLEAN_PROMPT, TextEncoder
from rtfuse.messages import make_console
from rtfuse.training import checkpoint
from rtfuse.training.data import CropSampler, darken, load_pairs, to_float
from rtfuse.training.degrade import degrade_batch, describe, exposed_batch, reliability
from rtfuse.training.losses import distill_loss, fusion_loss, restore_loss
from rtfuse.training.models import ARCHS, n_params
from rtfuse.training.schedule import cosine_lr


@dataclass
class TrainConfig:
    data: list[str]  # folders with vis/ and ir/ pairs; the training split of each is used
    out: str
    steps: int = 4000
    batch: int = 8
    crop: int = 128
    lr: float = 5e-4
    seed: int = 0
    device: str = "cpu"
    detail: float = 1.3  # gradient target = detail * max source gradient (sharper than either source)
    detail_edges: float = 0.0  # > 0: apply detail only where the max source gradient exceeds this
    base_weight: float = 0.0  # weight of the base-layer L1 to the per-pixel max (losses.fusion_loss)
    base_sigma: float = 4.0  # Gaussian sigma of that base layer, pixels
    init: str = ""  # start from this checkpoint's weights (fine-tuning: fresh optimiser and schedule)
    ckpt_every: int = 250
    ship: str = ""  # also write the final weights as float16 here (the shipped rtfuse/weights/student.pt)
    dark: float = 0.0  # share of crops with the visible darkened (night coverage), see data.darken
    ir_dark: float = 0.0  # share of crops with the IR darkened
    degrade: float = 0.0  # share of crops degraded (inputs only; the clean crops stay the targets)
    # distillation only
    teacher: str = ""
    w_feat: float = 1.0
    w_out: float = 4.0
    w_base: float = 1.0
    teacher_input: Literal["degraded", "clean"] = "degraded"  # "clean": the teacher fuses the clean crops
    restore: bool = False  # the student-restore architecture: a Restorer per source in front
    w_restore: float = 1.0  # weight of the restorers' L1 (values and Sobel gradients) to the clean crops
    w_restore_grad: float = 1.0  # weight of the Sobel-gradient term within that loss
    train_only: Literal["all", "restore"] = "all"  # "restore": the fusion part stays as --init left it


# What may differ when a run folder is resumed: how long and where it runs, not what it learns.
_MAY_CHANGE_ON_RESUME = ("steps", "out", "ckpt_every", "ship", "device")

# Cosine schedule floor (fraction of the peak rate) and warm-up steps, as the shipped networks were trained.
# Networks start from random weights, hence the warm-up (the LUT fit starts from a table and needs none).
LR_FLOOR = 0.02
LR_WARMUP = 100


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=console,
    )


def _run(cfg: TrainConfig, arch: str, console: Console) -> Path:
    """Shared loop of teacher training and student distillation (with cfg.teacher), or the restorers'
    pre-training (:func:`_restore_only`, no teacher)."""
    if cfg.teacher_input not in ("degraded", "clean"):
        raise ValueError(f"teacher_input must be 'degraded' or 'clean', got {cfg.teacher_input!r}")
    if cfg.train_only not in ("all", "restore"):
        raise ValueError(f"train_only must be 'all' or 'restore', got {cfg.train_only!r}")
    if cfg.train_only == "restore" and not (cfg.restore and cfg.init):
        raise RtfuseError("training the restorers alone needs --restore and --init (the fusion weights)")
    restore_only = _restore_only(cfg)
    if restore_only and cfg.w_restore == 0:
        raise RtfuseError("--w-restore 0 with --w-base, --w-feat and --w-out at 0 leaves nothing to train")
    if cfg.restore and arch == "student":
        arch = "student-restore"
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    ckpt_path = out / "last.pt"
    net = ARCHS[arch]().to(cfg.device)
    proj = None
    teacher = None
    if cfg.teacher and not restore_only:  # the restorers' own loss needs no teacher
        teacher, _ = checkpoint.load_model(cfg.teacher, cfg.device)
        for p in teacher.parameters():
            p.requires_grad_(False)
        # Learned 1x1 projections of the student's features onto the teacher's, one per level
        # (bottleneck, 1/4, 1/2): DTPF's feature distillation.
        proj = torch.nn.ModuleList(
            torch.nn.Conv2d(net.widths[k], teacher.widths[k], 1) for k in (3, 2, 1)
        ).to(cfg.device)
    # Sentences are embedded for a network that reads them: a text-guided student or teacher, fed the
    # degraded crops they describe.
    reads_text = teacher is not None and teacher.film is not None and cfg.teacher_input == "degraded"
    texts = TextEncoder() if (net.film is not None or reads_text) else None
    trained = net.restore if cfg.train_only == "restore" else net
    if trained is not net:  # the fusion keeps the weights of --init
        net.requires_grad_(False)
        trained.requires_grad_(True)
    params = list(trained.parameters()) + (list(proj.parameters()) if proj is not None else [])
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sampler = CropSampler([p for root in cfg.data for p in load_pairs(root, "train")], cfg.crop, cfg.seed)
    start = 0
    if ckpt_path.is_file():
        ck = checkpoint.load(ckpt_path, cfg.device)
        if "config" in ck:  # resuming with other settings would train a mix of two runs
            checkpoint.check_same_settings(
                ckpt_path,
                ck["config"],
                cfg,
                _MAY_CHANGE_ON_RESUME,
                "re-run with those to resume it, or start afresh in a new --out folder",
            )
        # e.g. a run of an architecture whose layers have changed since: one line, not a traceback
        checkpoint.load_weights(
            net, ck["model"], ckpt_path, arch, "start the run afresh in a new --out folder"
        )
        opt.load_state_dict(ck["opt"])
        if proj is not None and "proj" in ck:
            proj.load_state_dict(ck["proj"])
        sampler.rng.bit_generator.state = ck["sampler"]
        torch.set_rng_state(ck["torch_rng"])
        start = int(ck["step"])
        console.print(f"resuming {ckpt_path} at step {start}")
    elif cfg.init:
        init, ck = checkpoint.load_model(cfg.init, cfg.device)
        if ck["arch"] != arch and not (arch == "student-restore" and ck["arch"] == "student"):
            raise RtfuseError(f"--init {cfg.init} holds a {ck['arch']}, not a {arch}")
        # a student's weights start a student-restore: its restorers start as the identity
        missing, unexpected = net.load_state_dict(init.state_dict(), strict=False)
        if unexpected or any(not k.startswith("restore.") for k in missing):
            raise RtfuseError(f"--init {cfg.init}: its weights do not fit a {arch}")
        console.print(f"starting from the weights of {cfg.init}")
    if net.film is not None:  # a teacher called without a text is told its input is clean
        net.clean_text.copy_(torch.from_numpy(texts([CLEAN_PROMPT])[0]))
    console.print(
        f"{arch}: {n_params(net):,} parameters; {len(sampler.pairs)} training pairs; "
        f"{cfg.steps} steps of {cfg.batch} x {cfg.crop}^2 crops on {cfg.device}"
        + (f"; {cfg.degrade:.0%} of the crops degraded" if cfg.degrade else "")
    )

    def save(step: int) -> None:
        payload = dict(
            model=net.state_dict(),
            opt=opt.state_dict(),
            step=step,
            arch=arch,
            config=asdict(cfg),
            sampler=sampler.rng.bit_generator.state,
            torch_rng=torch.get_rng_state(),
        )
        if proj is not None:
            payload["proj"] = proj.state_dict()
        checkpoint.save(ckpt_path, **payload)
        if texts is not None:
            texts.save()

    distill_only_output = teacher is not None and cfg.w_feat == 0 and cfg.w_out == 0
    t0 = time.time()

    def checkpoint_at(step: int, loss: torch.Tensor) -> None:
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            save(step + 1)
            if not console.is_terminal:  # a log file gets no progress bar: a line per checkpoint
                console.print(
                    f"step {step + 1}/{cfg.steps} loss {loss.item():.4f} ({time.time() - t0:.0f} s)"
                )

    def fusion_step(in_y, in_ir, vis, vis_y, ir, text, weights):
        """The fusion's loss on one batch (the base loss, with the teacher's terms when distilling)
        and the restored sources."""
        fused, feats, (r_y, r_ir) = net.forward_all(in_y, in_ir, text if net.film is not None else None)
        loss, terms = fusion_loss(
            fused,
            vis_y,
            ir,
            vis,
            {"base": cfg.base_weight},
            detail=cfg.detail,
            detail_edges=cfg.detail_edges,
            base_sigma=cfg.base_sigma,
            source_weights=weights,
        )
        if teacher is not None:
            if distill_only_output:  # the ablation: the base loss alone, no teacher pass
                loss = cfg.w_base * loss
            else:
                with torch.no_grad():
                    if cfg.teacher_input == "clean":  # the pair before degradation, told "clean"
                        t_out, t_feats = teacher(vis_y, ir, None)
                    else:
                        t_out, t_feats = teacher(in_y, in_ir, text)
                s_feats = [p(f) for p, f in zip(proj, feats)]
                loss = distill_loss(loss, s_feats, t_feats, fused, t_out, cfg.w_base, cfg.w_feat, cfg.w_out)
        return loss, (r_y, r_ir)

    with _progress(console) as progress:
        task = progress.add_task(f"training {arch}", total=cfg.steps, completed=start, loss="-")
        for step in range(start, cfg.steps):
            for g in opt.param_groups:
                g["lr"] = cosine_lr(cfg.lr, step, cfg.steps, LR_FLOOR, LR_WARMUP)
            vis_u8, ir_u8 = darken(*sampler.batch(cfg.batch), cfg.dark, cfg.ir_dark)
            vis, vis_y, ir = to_float(vis_u8, ir_u8, cfg.device)  # the targets
            weights, text = None, None
            clean_vis_u8 = vis_u8
            if cfg.degrade > 0:
                vis_u8, ir_u8, degs = degrade_batch(vis_u8, ir_u8, sampler.rng, cfg.degrade)
                # Drawn whether or not a network reads them, so a seed gives the same crops either way.
                sentences = [describe(d, sampler.rng) for d in degs]
                if texts is not None:
                    text = torch.from_numpy(texts(sentences)).to(cfg.device)
                if net.film is not None:
                    weights = torch.tensor([reliability(d) for d in degs], device=cfg.device)
            restore_y = vis_y  # what the visible restorer gives back: the clean crop at its exposure
            if cfg.degrade > 0 and net.restore is not None:
                _, restore_y, _ = to_float(exposed_batch(clean_vis_u8, degs), ir_u8, cfg.device)
            _, in_y, in_ir = to_float(vis_u8, ir_u8, cfg.device)
            if restore_only:  # the restorers' own loss (added below): no fusion, no teacher
                r_y, r_ir = net.restored(in_y, in_ir)
                loss = torch.zeros((), device=cfg.device)
            else:
                loss, (r_y, r_ir) = fusion_step(in_y, in_ir, vis, vis_y, ir, text, weights)
            if net.restore is not None and cfg.w_restore > 0:  # the clean crops are what they restore to
                loss = loss + cfg.w_restore * (
                    restore_loss(r_y, restore_y, cfg.w_restore_grad)
                    + restore_loss(r_ir, ir, cfg.w_restore_grad)
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            progress.update(task, advance=1, loss=f"{loss.item():.4f}")
            checkpoint_at(step, loss)
    final = out / f"{arch}.pt"
    checkpoint.save(final, model=net.state_dict(), arch=arch, step=cfg.steps, config=asdict(cfg))
    console.print(f"wrote {final} ({time.time() - t0:.0f} s this run)")
    if cfg.ship:
        # float16 storage halves the file; loading copies into the float32 network
        half = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
        checkpoint.save(cfg.ship, model=half, arch=arch, step=cfg.steps, config=asdict(cfg))
        console.print(f"wrote {cfg.ship} (float16 weights)")
    return final


def train_teacher(cfg: TrainConfig, console: Console | None = None) -> Path:
    return _run(cfg, "teacher", console or make_console())


def _restore_only(cfg: TrainConfig) -> bool:
    """Pre-training the restorers (issue 13): their loss alone, against the clean crops; no teacher."""
    return cfg.train_only == "restore" and cfg.w_base == cfg.w_feat == cfg.w_out == 0


def distill_student(cfg: TrainConfig, console: Console | None = None) -> Path:
    if not cfg.teacher and not _restore_only(cfg):
        raise RtfuseError(
            "distilling a student needs --teacher CHECKPOINT (only pre-training the restorers, "
            "--train-only restore --w-base 0 --w-feat 0 --w-out 0, goes without one)"
        )
    return _run(cfg, "student", console or make_console())
