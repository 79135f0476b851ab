"""Checkpoints: written atomically here; read by the runtime's loader (:mod:`rtfuse.fusion.checkpoint`)."""

from __future__ import annotations

from dataclasses import MISSING, asdict, fields
from pathlib import Path

import torch

from rtfuse.errors import RtfuseError
from rtfuse.fusion.checkpoint import load, load_model, load_weights

__all__ = ["check_same_settings", "load", "load_model", "load_weights", "save", "settings_changed"]


def save(path: str | Path, **payload) -> None:
    """Write ``payload`` with torch.save to a temporary name, then rename: no half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(payload, tmp)
    tmp.replace(path)


def settings_changed(saved: dict, cfg, free: tuple[str, ...]) -> list[str]:
    """The settings of the dataclass ``cfg``, other than those in ``free``, that differ from a
    checkpoint's saved config, each as ``"name: then, now"``. A setting the checkpoint predates
    counts as its default."""
    defaults = {f.name: f.default for f in fields(cfg) if f.default is not MISSING}
    diff = []
    for k, now in asdict(cfg).items():
        then = saved.get(k, defaults.get(k))
        if k not in free and then != now:
            diff.append(f"{k}: {then!r}, now {now!r}")
    return diff


def check_same_settings(path: str | Path, saved: dict, cfg, free: tuple[str, ...], remedy: str) -> None:
    """Refuse to resume the checkpoint at ``path`` if ``cfg`` differs from its ``saved`` config
    (:func:`settings_changed`): one line naming each setting, then ``remedy``."""
    diff = settings_changed(saved, cfg, free)
    if diff:
        raise RtfuseError(f"{path} was made with other settings ({'; '.join(diff)}); {remedy}")
