"""The ``student`` (and ``teacher``) backends on the torch engine: a fusion network in PyTorch, CUDA when
available. :mod:`rtfuse.fusion.onnxnet` runs the same networks, exported, on ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch  # at import: the registry turns its absence into "install rtfuse[torch]"

from rtfuse.color import luma_nchw, replace_luma_nchw
from rtfuse.errors import InputError
from rtfuse.fusion.checkpoint import load_model
from rtfuse.fusion.validate import check_pair


class NetFuser:
    """``fuser(vis_bgr, ir) -> fused_bgr`` with a trained :class:`rtfuse.fusion.nets.FusionNet`.

    The network predicts the fused luma; the visible chroma is kept exactly as in the LUT path.
    Runs on ``device`` (default: CUDA if torch sees one, else CPU). ``prompt``: for a
    text-conditioned network (the teacher), a sentence describing the input's degradations,
    embedded once (:mod:`rtfuse.fusion.text`, the train extra); without one the network uses its
    stored embedding of "clean".
    """

    engine = "torch"

    def __init__(
        self, path: str | Path, device: str | None = None, name: str = "student", prompt: str | None = None
    ) -> None:
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(
                f"device {self.device!r} requested, but torch sees no CUDA device; use device='cpu'"
            )
        self.net, ck = load_model(path, self.device)
        if self.device == "cpu":  # NHWC convolutions: about 1.4x faster on a CPU, within 1 level (issue 16)
            self.net = self.net.to(memory_format=torch.channels_last)
        self.arch = ck.get("arch")
        self.name = name
        self.path = Path(path)
        self.text = None
        if prompt is not None:
            if self.net.film is None:
                raise InputError(f"{self.path}: a {self.arch} takes no prompt (only the teacher reads one)")
            if not prompt.strip():
                raise InputError(
                    "the prompt is empty: describe the degradations, or leave it out for 'clean'"
                )
            from rtfuse.fusion.text import TextEncoder

            self.text = torch.from_numpy(TextEncoder()([prompt])[0]).to(self.device)

    def __call__(self, vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        vis, ir = check_pair(vis, ir)
        with torch.inference_mode():
            v = torch.from_numpy(vis).to(self.device).permute(2, 0, 1)[None].float() / 255.0
            i = torch.from_numpy(ir).to(self.device)[None, None].float() / 255.0
            y = luma_nchw(v)
            fused_y, _ = self.net(y, i, self.text)
            out = (replace_luma_nchw(v, y, fused_y) * 255.0).round().to(torch.uint8)
        return out[0].permute(1, 2, 0).contiguous().cpu().numpy()

    def __repr__(self) -> str:
        return f"NetFuser({self.arch}, {self.path.name}, {self.device})"
