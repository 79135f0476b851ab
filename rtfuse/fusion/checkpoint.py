"""Network checkpoints, read with ``torch.load(weights_only=True)`` (no pickle code); training writes them."""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path

import torch

from rtfuse.errors import RtfuseError
from rtfuse.fusion.nets import ARCHS, FusionNet

_MADE_BY = "use a .pt written by `rtfuse train teacher` or `rtfuse distill student`"


def _why_unreadable(path: Path, e: Exception) -> str:
    """torch.load's failure in one line, without its advice to set weights_only=False or allowlist classes."""
    msg = str(e)
    if any(s in msg for s in ("weights_only", "WeightsUnpickler", "Weights only")):
        found = re.search(r"GLOBAL ([\w.]+)", msg)
        what = f"a pickled {found.group(1)} object" if found else "pickled Python objects"
        return f"it holds {what}, which rtfuse does not load (only tensors and plain values)"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot read it ({err.strerror})"
    if not head:
        return "the file is empty"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except Exception:  # noqa: BLE001 - not a zip, or a damaged one
        names = []
    if any(n.endswith(".npy") for n in names):
        return "it is a .npz archive (a LUT goes to the lut backends, not to a network)"
    if any(n.endswith("data.pkl") for n in names):  # a torch file: e.g. a device it cannot be mapped to
        first = msg.strip().splitlines()[0] if msg.strip() else ""
        return f"{type(e).__name__}: {first}"
    if names:
        return "it is a zip archive but not a PyTorch checkpoint"
    return "it is not a PyTorch file, or it is truncated"


def load(path: str | Path, device: str = "cpu") -> dict:
    """A checkpoint's dict; every failure is one :class:`RtfuseError` line."""
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise RtfuseError(f"checkpoint {path} {what}; {_MADE_BY}")
    try:
        with warnings.catch_warnings():  # e.g. torch's note on a pickle protocol: the error below says it all
            warnings.simplefilter("ignore", UserWarning)
            ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        why = _why_unreadable(path, e)
        raise RtfuseError(f"{path}: not a readable rtfuse checkpoint: {why}; {_MADE_BY}") from None
    if not isinstance(ck, dict):
        held = type(ck).__name__
        raise RtfuseError(f"{path}: not an rtfuse checkpoint (it holds a {held}, not a dict); {_MADE_BY}")
    return ck


def _misfit(net: torch.nn.Module, weights: object, e: Exception) -> str:
    """torch's multi-line load_state_dict error as counts of missing, unexpected and misshapen tensors."""
    if not isinstance(weights, dict):
        return f"the weights are a {type(weights).__name__}, not a dict of tensors"
    want = net.state_dict()
    missing = [k for k in want if k not in weights]
    unexpected = [k for k in weights if k not in want]
    shape = [k for k in want if k in weights and getattr(weights[k], "shape", None) != want[k].shape]
    parts = [
        f"{len(v)} {what}" + (f" (e.g. {v[0]})" if v else "")
        for v, what in ((missing, "missing"), (unexpected, "unexpected"), (shape, "of another shape"))
        if v
    ]
    return ", ".join(parts) or str(e).strip().splitlines()[0]


def load_weights(
    net: torch.nn.Module, weights: object, path: str | Path, arch: str, hint: str = _MADE_BY
) -> None:
    """``net.load_state_dict(weights)``; weights that do not fit are one :class:`RtfuseError` line."""
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as e:
        why = _misfit(net, weights, e)
        raise RtfuseError(f"{path}: weights do not fit the {arch} architecture ({why}); {hint}") from None


def load_model(path: str | Path, device: str = "cpu") -> tuple[FusionNet, dict]:
    """A network and its checkpoint dict; the file names its architecture."""
    ck = load(path, device)
    arch = ck.get("arch")
    if not isinstance(arch, str) or arch not in ARCHS or "model" not in ck:
        known = ", ".join(ARCHS)
        raise RtfuseError(f"{path}: no known architecture (arch={arch!r}, known: {known}); {_MADE_BY}")
    net = ARCHS[arch]()
    load_weights(net, ck["model"], path, arch)
    return net.to(device).eval(), ck
