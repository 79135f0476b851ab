"""Checkpoints: written atomically here; read by the runtime's loader (:mod:`rtfuse.fusion.checkpoint`)."""

from __future__ import annotations

from pathlib import Path

import torch

from rtfuse.fusion.checkpoint import load, load_model, load_weights

__all__ = ["load", "load_model", "load_weights", "save"]


def save(path: str | Path, **payload) -> None:
    """Write ``payload`` with torch.save to a temporary name, then rename: no half-written checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(payload, tmp)
    tmp.replace(path)
