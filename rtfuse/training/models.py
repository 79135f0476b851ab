"""Training's view of the fusion networks: the architectures live in the runtime (:mod:`rtfuse.fusion.nets`).

Re-exported here so that training code and older scripts keep their import path.
"""

from __future__ import annotations

from torch import nn

from rtfuse.fusion.nets import ARCHS, FusionNet, student, teacher

__all__ = ["ARCHS", "FusionNet", "n_params", "student", "teacher"]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
