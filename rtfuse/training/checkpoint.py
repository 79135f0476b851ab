"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (no pickle code)."""

from __future__ import annotations

from pathlib import Path

import torch

from rtfuse.errors import RtfuseError
from rtfuse.training.models import ARCHS, FusionNet


def save(path: str | Path, **payload) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(payload, tmp)
    tmp.replace(path)


def load(path: str | Path, device: str = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise RtfuseError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        raise RtfuseError(f"{path}: not a readable rtfuse checkpoint ({type(e).__name__}: {e})") from None


def load_model(path: str | Path, device: str = "cpu") -> tuple[FusionNet, dict]:
    """A network and its checkpoint dict; the file names its architecture."""
    ck = load(path, device)
    arch = ck.get("arch")
    if arch not in ARCHS or "model" not in ck:
        raise RtfuseError(f"{path}: no known architecture in the checkpoint (arch={arch!r})")
    net = ARCHS[arch]()
    try:
        net.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise RtfuseError(f"{path}: weights do not fit the {arch} architecture ({e})") from None
    return net.to(device).eval(), ck
