"""The network backends as ONNX: ``rtfuse export onnx`` and the fuser that runs the files on ONNX Runtime.

An exported network maps ``vis_y`` and ``ir`` (float32, N x 1 x H x W, in [0, 1]; any N, H and W) to
``fused_y`` (the same shape). The teacher has a third input, ``text`` (N x 384, a sentence
embedding), whose stored default is its "clean" embedding, so it may be left out. The colour rule
(replace the luma, keep the visible chroma) stays outside the graph, in numpy, exactly as
:class:`rtfuse.fusion.net.NetFuser` applies it in torch, so both engines give the same frames.

Running a file needs only ``onnxruntime`` and numpy (the ``onnx`` extra), not torch. Exporting
needs torch, ``onnx`` and ``onnxscript`` (the ``export`` extra): it uses torch's dynamo exporter.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from rtfuse.color import LUMA_B, LUMA_G, LUMA_R, replace_luma
from rtfuse.cpu import available_cores
from rtfuse.errors import InputError
from rtfuse.fusion.validate import check_pair

INPUTS = ("vis_y", "ir")
TEXT_INPUT = "text"
OUTPUT = "fused_y"
OPSET = 18
_MADE_BY = "make one with `rtfuse export onnx`"
_LUMA = np.array([LUMA_B, LUMA_G, LUMA_R], np.float32)  # BGR order, as rtfuse.color.luma_nchw


class OnnxFuser:
    """``fuser(vis_bgr, ir) -> fused_bgr`` running an exported fusion network on ONNX Runtime (CPU).

    ``threads``: intra-op threads (default: the usable cores). ``prompt``: for a teacher, a sentence
    describing the input's degradations (embedded once; needs the train extra), else its stored
    "clean" embedding is used.
    """

    engine = "onnx"

    def __init__(
        self,
        path: str | os.PathLike,
        name: str = "student",
        prompt: str | None = None,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ModuleNotFoundError:
            raise InputError(
                f"the {name} backend on the onnx engine needs ONNX Runtime: pip install 'rtfuse[onnx]'"
            ) from None
        self.path, self.name = Path(path), name
        if not self.path.is_file():
            what = "is not a file" if self.path.exists() else "does not exist"
            raise InputError(f"ONNX network {self.path} {what}; {_MADE_BY}")
        self.threads = threads or available_cores()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3  # errors only: the reason reaches the user as the one line below
        # Idle workers sleep instead of spinning: faster here when other threads (decoders, the
        # encoder, other processes) share the cores (benchmarks/RESULTS.md, issue 16).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT raises its own types for unreadable models
            raise InputError(
                f"{self.path}: not a readable ONNX network ({_first_line(e)}); {_MADE_BY}"
            ) from None
        required = {i.name for i in self.session.get_inputs()}
        optional = {i.name for i in self.session.get_overridable_initializers()}
        outputs = {o.name for o in self.session.get_outputs()}
        if not required.issuperset(INPUTS) or OUTPUT not in outputs or required - {*INPUTS, TEXT_INPUT}:
            raise InputError(
                f"{self.path}: not an rtfuse fusion network (inputs {sorted(required)}, outputs "
                f"{sorted(outputs)}; expected inputs {list(INPUTS)} and output {OUTPUT!r}); {_MADE_BY}"
            )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.arch = meta.get("rtfuse_arch", "network")
        self.feeds: dict[str, np.ndarray] = {}
        takes_text = TEXT_INPUT in required | optional
        if TEXT_INPUT in required:  # exported elsewhere, without the stored default
            raise InputError(f"{self.path}: its text input has no stored default; re-export it with rtfuse")
        if prompt is not None:
            if not takes_text:
                raise InputError(f"{self.path}: a {self.arch} takes no prompt (only the teacher reads one)")
            if not prompt.strip():
                raise InputError(
                    "the prompt is empty: describe the degradations, or leave it out for 'clean'"
                )
            from rtfuse.fusion.text import TextEncoder

            self.feeds[TEXT_INPUT] = np.asarray(TextEncoder()([prompt]), np.float32)[:1]

    def fuse_luma(self, vis_y: np.ndarray, ir: np.ndarray) -> np.ndarray:
        """The network alone: float32 (N, 1, H, W) luma and IR in [0, 1] -> fused luma, same shape."""
        feeds = {INPUTS[0]: vis_y, INPUTS[1]: ir, **self.feeds}
        return self.session.run([OUTPUT], feeds)[0]

    def __call__(self, vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        vis, ir = check_pair(vis, ir)
        # The same float32 luma the torch path feeds the network (rtfuse.color.luma_nchw of vis / 255).
        y = (vis.astype(np.float32) / np.float32(255.0)) @ _LUMA
        i = ir.astype(np.float32) / np.float32(255.0)
        fused = self.fuse_luma(y[None, None], i[None, None])[0, 0]
        return replace_luma(vis, y, fused, 255.0)

    def __repr__(self) -> str:
        return f"OnnxFuser({self.arch}, {self.path.name}, onnxruntime, {self.threads} threads)"


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line.removeprefix("[ONNXRuntimeError] : ").strip()


# --- export (torch, onnx, onnxscript) -------------------------------------------------------------


def _missing_export_packages() -> list[str]:
    return [m for m in ("torch", "onnx", "onnxscript") if importlib.util.find_spec(m) is None]


def export_onnx(
    checkpoint: str | os.PathLike,
    output: str | os.PathLike,
    expect: str | None = None,
    merge_stem: bool | None = None,
) -> dict[str, object]:
    """Write the network in ``checkpoint`` (a .pt) to ``output`` as ONNX; return a summary dict.

    ``expect``: the backend the checkpoint must be for (``student`` or ``teacher``), if any; a
    ``student-restore`` is a student.
    ``merge_stem``: run the encoders' full-resolution stage as one convolution (see
    :func:`_export_module`); default: for the student.

    Batch, height and width are dynamic (padding to a multiple of 8 happens inside the graph, as
    in torch). Weights that are exactly float16 (the shipped student's) are stored as float16 and
    cast back to float32 when the session is built, which halves the file and changes no value.
    """
    missing = _missing_export_packages()
    if missing:
        raise InputError(
            f"exporting needs {', '.join(missing)}: pip install 'rtfuse[export]' (torch, onnx, onnxscript)"
        )
    import contextlib
    import io
    import logging
    import warnings

    import onnx
    import torch

    from rtfuse import __version__
    from rtfuse.atomic import write_atomic
    from rtfuse.fusion.checkpoint import load_model

    net, ck = load_model(checkpoint, "cpu")
    arch = str(ck.get("arch"))
    if expect is not None and arch.split("-")[0] != expect:
        raise InputError(f"{checkpoint} holds a {arch}, not a {expect}", option="backend")
    if merge_stem is None:  # the stem's two streams fit one 16-channel block (the student's 2 x 8)
        merge_stem = net.film is None and 2 * net.widths[0] <= 16
    graph = _export_module(net, merge_stem).eval()
    gen = torch.Generator().manual_seed(0)
    # Batch 2 and a size not a multiple of 8: neither gets specialised into the graph.
    example = [torch.rand(2, 1, 61, 83, generator=gen) for _ in INPUTS]
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    shapes: dict[str, object] = {"vis_y": dims, "ir": dims}
    names = list(INPUTS)
    if net.film is not None:
        example.append(net.clean_text.expand(2, -1).clone())
        shapes["text"] = {0: dims[0]}
        names.append(TEXT_INPUT)
    quiet = logging.getLogger("torch.onnx")  # e.g. "torchvision is not installed", on every export
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as log:
        warnings.simplefilter("ignore")  # the exporter's deprecation and axis-naming notes
        try:
            program = torch.onnx.export(
                graph,
                tuple(example),
                dynamo=True,
                input_names=names,
                output_names=[OUTPUT],
                dynamic_shapes=shapes,
                opset_version=OPSET,
                verbose=False,
            )
        except Exception as e:  # noqa: BLE001 - the exporter raises many types
            tail = log.getvalue().strip().splitlines()[-1:] or [""]
            raise InputError(
                f"{checkpoint}: ONNX export failed: {_first_line(e)} {tail[0]}".strip()
            ) from None
        finally:
            quiet.setLevel(level)
    model = program.model_proto
    for node in model.graph.node:  # the exporter's per-node notes: FX names and this machine's paths
        del node.metadata_props[:]
        node.doc_string = ""
    if net.film is not None:  # the default text: the stored "clean" embedding, as text=None in torch
        clean = net.clean_text.detach().float().numpy()[None]
        model.graph.initializer.append(onnx.numpy_helper.from_array(clean, TEXT_INPUT))
        # One embedding for the whole batch (the default) or one per image: the text's first axis gets
        # a name of its own, and the intermediate shapes that tied it to the batch are dropped (ORT
        # infers them again), else ORT's memory planner takes the two for the same size.
        text_in = next(i for i in model.graph.input if i.name == TEXT_INPUT)
        text_in.type.tensor_type.shape.dim[0].dim_param = "text_batch"
        del model.graph.value_info[:]
    halved = _float16_weights(model)
    meta = {
        "rtfuse_arch": arch,
        "rtfuse_source": Path(checkpoint).name,
        "rtfuse_version": __version__,
        "rtfuse_io": "vis_y, ir: float32 Nx1xHxW in [0,1] (BT.601 luma of BGR/255; IR/255)"
        + ("; text: Nx384 or 1x384 sentence embedding, default 'clean'" if net.film is not None else "")
        + "; fused_y: Nx1xHxW in [0,1]",
    }
    for k, v in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    write_atomic(output, data, "ONNX network")
    params = sum(p.numel() for p in net.parameters())
    return {
        "arch": arch,
        "bytes": len(data),
        "params": params,
        "float16_tensors": halved,
        "opset": OPSET,
        "merged_stem": merge_stem,
    }


def engines_differ(checkpoint: str | os.PathLike, exported: str | os.PathLike) -> int:
    """Largest difference, in levels, between the torch and ONNX Runtime fusions of two test frames
    (one of a size that is not a multiple of 8, so the padding is covered)."""
    from rtfuse.fusion.net import NetFuser
    from rtfuse.synthetic import SyntheticScene

    torch_fuser, onnx_fuser = NetFuser(checkpoint, device="cpu"), OnnxFuser(exported)
    worst = 0
    for w, h in ((160, 120), (101, 77)):
        vis, ir = SyntheticScene(w, h, seed=1).render(3)
        worst = max(worst, int(np.abs(torch_fuser(vis, ir).astype(np.int16) - onnx_fuser(vis, ir)).max()))
    return worst


def _float16_weights(model) -> int:
    """Store every float32 initializer whose values are exactly float16 as float16 + a Cast node."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    inputs = {i.name for i in graph.input}
    casts, kept, n = [], [], 0
    for init in graph.initializer:
        arr = numpy_helper.to_array(init) if init.data_type == onnx.TensorProto.FLOAT else None
        if (
            arr is None
            or init.name in inputs
            or arr.size < 2
            or not np.array_equal(arr.astype(np.float16).astype(np.float32), arr)
        ):
            kept.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), f"{init.name}__f16")
        kept.append(half)
        casts.append(onnx.helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT))
        n += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return n


def _export_module(net, merge_stem: bool):
    """The module that is exported: ``forward(vis_y, ir[, text]) -> fused_y``, the network's function.

    The padding to a multiple of 8 is written so the exporter keeps height and width symbolic (the
    network's own check would fix them). ``merge_stem`` (the student): the two encoders' full-resolution
    stage runs as one block-diagonal convolution (2 -> 2 w0 -> 2 w0 channels; zero weights across the
    streams) whose output already is the first fusion's concatenation, and the next convolutions read
    their stream's half through zero weights. The same sums, so the same values; it saves ONNX Runtime
    layout changes and a concatenation at full resolution, about 10-15 % of the student's time on an
    AVX-512 CPU, where 8 channels are padded to a 16-channel block anyway (benchmarks/RESULTS.md).
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    def pad8(vis_y, ir):
        h, w = vis_y.shape[-2:]
        pad = (0, (w + 7) // 8 * 8 - w, 0, (h + 7) // 8 * 8 - h)
        return F.pad(vis_y, pad, mode="replicate"), F.pad(ir, pad, mode="replicate")

    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, vis_y, ir, text=None):
            h, w = vis_y.shape[-2:]
            return self.net(*pad8(vis_y, ir), text)[0][..., :h, :w]

    if not merge_stem:
        return Plain()
    if net.film is not None:
        raise ValueError("merge_stem is for a network without text input (the student)")

    def merged(a: nn.Conv2d, b: nn.Conv2d, cin: int) -> nn.Conv2d:
        """``a`` on the first input channels and ``b`` on the last, as one convolution."""
        o, i = a.weight.shape[:2]
        c = nn.Conv2d(cin, 2 * o, a.kernel_size, a.stride, a.padding)
        weight = torch.zeros_like(c.weight)
        weight[:o, :i], weight[o:, cin - i :] = a.weight, b.weight
        c.weight.data.copy_(weight)
        c.bias.data.copy_(torch.cat([a.bias, b.bias]))
        return c

    def half(a: nn.Conv2d, which: int) -> nn.Conv2d:
        """``a`` reading half ``which`` (0 or 1) of a concatenated input."""
        o, i = a.weight.shape[:2]
        c = nn.Conv2d(2 * i, o, a.kernel_size, a.stride, a.padding)
        weight = torch.zeros_like(c.weight)
        weight[:, which * i : (which + 1) * i] = a.weight
        c.weight.data.copy_(weight)
        c.bias.data.copy_(a.bias)
        return c

    class MergedStem(nn.Module):
        """:meth:`rtfuse.fusion.nets.FusionNet.forward` (no text) with the merged stem."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            ev, ei = net.enc_vis, net.enc_ir
            self.stem0 = merged(ev.s0[0], ei.s0[0], 2)
            self.stem1 = merged(ev.s0[2], ei.s0[2], 2 * ev.s0[2].weight.shape[1])
            self.down_vis, self.down_ir = half(ev.s1[0], 0), half(ei.s1[0], 1)

        def forward(self, vis_y, ir):
            h, w = vis_y.shape[-2:]
            vis_y, ir = pad8(vis_y, ir)
            n, ev, ei = self.net, self.net.enc_vis, self.net.enc_ir
            if n.restore is not None:  # student-restore: each source through its restorer (even H, W here)
                vis_y, ir = n.restore[0](vis_y), n.restore[1](ir)
            f0 = self.stem1(F.leaky_relu(self.stem0(torch.cat([vis_y, ir], 1)), 0.1))  # = cat(f0 vis, f0 ir)
            f1v = ev.s1[2](F.leaky_relu(self.down_vis(f0), 0.1))
            f1i = ei.s1[2](F.leaky_relu(self.down_ir(f0), 0.1))
            f2v, f2i = ev.s2(f1v), ei.s2(f1i)
            f3v, f3i = ev.s3(f2v), ei.s3(f2i)

            def fuse(m: nn.Module, cat):  # CrossFuse.forward on a concatenated input; the mean as a pool
                g = torch.sigmoid(m.gate(F.adaptive_avg_pool2d(cat, 1).flatten(1)))[..., None, None]
                return F.leaky_relu(m.mix(cat), 0.1) * g

            f = [fuse(n.fuse[0], f0)]
            f += [
                fuse(m, torch.cat([a, b], 1)) for m, a, b in zip(n.fuse[1:], (f1v, f2v, f3v), (f1i, f2i, f3i))
            ]
            x = f[3]
            for blk in n.mid:
                x = blk(x)

            def up(block: nn.Module, x, skip):
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                return block(torch.cat([x, skip], 1))

            x = up(n.up0, up(n.up1, up(n.up2, x, f[2]), f[1]), f[0])
            y = (torch.maximum(vis_y, ir) + n.head(torch.cat([x, vis_y, ir], 1))).clamp(0.0, 1.0)
            return y[..., :h, :w]

    return MergedStem()
