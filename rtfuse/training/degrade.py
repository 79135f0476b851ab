"""Randomised camera degradations for training, each with a severity in [0, 1], and the sentence that
describes them (the teacher's text prior).

Modelled on the real degraded M3SVD frames in ``video_frames_degraded`` (docs/degradations.md has
the measurements): their thermal frames carry a fixed column pattern (std 8-9 levels), a weaker
fixed row pattern (4-9), white noise (std 11-17) and a lift of 30-40 levels in the dark parts;
their visible frames are blurred (a Gaussian of sigma 1.5-2 explains most of it) and 4-7 levels
brighter. The family is deliberately wider than those clips (every fault, at every severity, in
any combination), so that a model does not learn those three clips.

Contract: :func:`apply` takes one visible uint8 (H, W, 3) BGR crop and one IR uint8 (H, W) crop
and returns degraded copies of the same shape and dtype; every random draw comes from the
generator passed in, so a seeded sampler reproduces a run (and resumes it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

IR_FAULTS = ("ir_stripes", "ir_rows", "ir_fpn", "ir_noise", "ir_contrast", "ir_blur")
VIS_FAULTS = ("vis_dark", "vis_blur", "vis_motion", "vis_over", "vis_jpeg")
# Probability that a degraded sample has each fault (a sample with none drawn is clean).
FAULT_P = {
    "ir_stripes": 0.45,
    "ir_rows": 0.25,
    "ir_fpn": 0.25,
    "ir_noise": 0.5,
    "ir_contrast": 0.35,
    "ir_blur": 0.2,
    "vis_dark": 0.35,
    "vis_blur": 0.4,
    "vis_motion": 0.15,
    "vis_over": 0.12,
    "vis_jpeg": 0.2,
}


@dataclass(frozen=True)
class Degradation:
    """Severities in [0, 1] (0: absent). The effects at severity s:

    - ``ir_stripes``: a fixed column-offset pattern, std 2 + 14 s levels (vertical stripes);
    - ``ir_rows``: a row-offset pattern, std 1 + 9 s (horizontal banding);
    - ``ir_fpn``: per-pixel fixed-pattern gain (std 0.01 + 0.06 s) and offset (std 1 + 5 s);
    - ``ir_noise``: Gaussian noise of std 2 + 16 s levels plus shot noise that grows with signal;
    - ``ir_contrast``: the range squeezed to 1 - 0.7 s of itself and lifted (low contrast);
    - ``ir_blur``: defocus, Gaussian sigma 0.5 + 2.5 s;
    - ``vis_dark``: low light: gain 1 - 0.88 s, gamma 1 + 0.8 s, then sensor noise of std
      1 + 7 s levels (colour noise included): the noise of a dark frame brightened by the camera;
    - ``vis_blur``: defocus, Gaussian sigma 0.5 + 3 s;
    - ``vis_motion``: a line kernel of 3 + 18 s pixels at a random angle;
    - ``vis_over``: over-exposure, gain 1 + 1.5 s and a lift, clipped;
    - ``vis_jpeg``: JPEG compression at quality 60 - 55 s.
    """

    ir_stripes: float = 0.0
    ir_rows: float = 0.0
    ir_fpn: float = 0.0
    ir_noise: float = 0.0
    ir_contrast: float = 0.0
    ir_blur: float = 0.0
    vis_dark: float = 0.0
    vis_blur: float = 0.0
    vis_motion: float = 0.0
    vis_over: float = 0.0
    vis_jpeg: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"severity {f.name}={v} is outside [0, 1]")

    def severity(self, modality: str) -> float:
        """The worst fault of ``"ir"`` or ``"vis"``."""
        names = IR_FAULTS if modality == "ir" else VIS_FAULTS
        return max(getattr(self, n) for n in names)

    @property
    def clean(self) -> bool:
        return self.severity("ir") == 0 and self.severity("vis") == 0


def sample(rng: np.random.Generator, p_degraded: float = 0.85) -> Degradation:
    """A random degradation: with probability ``p_degraded`` each fault is drawn with its
    :data:`FAULT_P` and a severity uniform in [0.15, 1]; dark and over-exposed exclude each other."""
    if rng.random() >= p_degraded:
        return Degradation()
    sev = {n: float(rng.uniform(0.15, 1.0)) if rng.random() < p else 0.0 for n, p in FAULT_P.items()}
    if sev["vis_dark"] and sev["vis_over"]:
        sev["vis_over" if rng.random() < 0.5 else "vis_dark"] = 0.0
    return Degradation(**sev)


def reliability(d: Degradation) -> tuple[float, float]:
    """(visible, IR) weights in (0, 2) that sum to 2: how much each source is to be trusted, from the
    described degradations (a source at severity 1 gets a third of the trust of a clean one)."""
    rv, ri = 1 - 2 / 3 * d.severity("vis"), 1 - 2 / 3 * d.severity("ir")
    return 2 * rv / (rv + ri), 2 * ri / (rv + ri)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = int(np.ceil(length)) | 1
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = np.cos(angle), np.sin(angle)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * n):
        k[int(round(c + t * dy)), int(round(c + t * dx))] = 1.0
    return k / k.sum()


def _ir(ir: np.ndarray, d: Degradation, rng: np.random.Generator) -> np.ndarray:
    x = ir.astype(np.float32)
    h, w = x.shape
    if d.ir_blur:
        x = cv2.GaussianBlur(x, (0, 0), 0.5 + 2.5 * d.ir_blur)
    if d.ir_contrast:
        g = 1 - 0.7 * d.ir_contrast
        x = x * g + rng.uniform(0.3, 1.0) * (1 - g) * 255
    if d.ir_fpn:
        gain = rng.normal(1.0, 0.01 + 0.06 * d.ir_fpn, (h, w)).astype(np.float32)
        x = x * gain + rng.normal(0, 1 + 5 * d.ir_fpn, (h, w)).astype(np.float32)
    if d.ir_stripes:
        cols = rng.normal(0, 1, w)
        # real column patterns mix pixel-scale and broader bands
        cols = 0.7 * cols + 0.3 * np.convolve(rng.normal(0, 1, w + 8), np.ones(9) / 3, "valid")
        x = x + (2 + 14 * d.ir_stripes) * (cols / cols.std()).astype(np.float32)[None, :]
    if d.ir_rows:
        rows = rng.normal(0, 1, h)
        x = x + (1 + 9 * d.ir_rows) * (rows / rows.std()).astype(np.float32)[:, None]
    if d.ir_noise:
        s = d.ir_noise
        x = x + rng.normal(0, 1, (h, w)).astype(np.float32) * (
            2 + 16 * s + 0.5 * s * np.sqrt(np.maximum(x, 0))
        )
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _exposure(x: np.ndarray, d: Degradation) -> np.ndarray:
    """The visible faults that change the exposure, not the detail: low light's gain and gamma,
    over-exposure's gain and lift (float32 levels, not clipped)."""
    if d.vis_dark:
        s = d.vis_dark
        # max(x, 0): the power of a negative level is NaN
        x = 255 * ((np.maximum(x, 0) / 255) * (1 - 0.88 * s)) ** (1 + 0.8 * s)
    if d.vis_over:
        x = x * (1 + 1.5 * d.vis_over) + 40 * d.vis_over
    return x


def exposed(vis: np.ndarray, d: Degradation) -> np.ndarray:
    """The clean visible uint8 (H, W, 3) at the exposure of its degraded copy: what a restorer gives
    back (detail, not light: a dark scene stays dark, as the clean night scenes it cannot tell apart)."""
    if not (d.vis_dark or d.vis_over):
        return vis.copy()
    return np.clip(np.rint(_exposure(vis.astype(np.float32), d)), 0, 255).astype(np.uint8)


def _vis(vis: np.ndarray, d: Degradation, rng: np.random.Generator) -> np.ndarray:
    x = vis.astype(np.float32)
    if d.vis_blur:
        x = cv2.GaussianBlur(x, (0, 0), 0.5 + 3 * d.vis_blur)
    if d.vis_motion:
        x = cv2.filter2D(x, -1, _motion_kernel(3 + 18 * d.vis_motion, rng.uniform(0, np.pi)))
    x = _exposure(x, d)
    if d.vis_dark:
        sigma = 1 + 7 * d.vis_dark
        luma_noise = rng.normal(0, sigma, x.shape[:2]).astype(np.float32)[..., None]
        x = x + luma_noise + rng.normal(0, 0.5 * sigma, x.shape).astype(np.float32)
    out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    if d.vis_jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(round(60 - 55 * d.vis_jpeg))])
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def apply(
    vis: np.ndarray, ir: np.ndarray, d: Degradation, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Degraded copies of a visible uint8 (H, W, 3) BGR and an IR uint8 (H, W) image."""
    if vis.dtype != np.uint8 or ir.dtype != np.uint8 or vis.ndim != 3 or ir.shape != vis.shape[:2]:
        raise ValueError(
            f"need uint8 (H, W, 3) and (H, W), got {vis.dtype}{vis.shape} and {ir.dtype}{ir.shape}"
        )
    return (_vis(vis, d, rng) if d.severity("vis") else vis.copy()), (
        _ir(ir, d, rng) if d.severity("ir") else ir.copy()
    )


# --- the sentence -------------------------------------------------------------------------------

_AMOUNT = (
    (0.4, ("slight", "mild", "faint", "a little")),
    (0.7, ("moderate", "noticeable", "clear", "medium")),
    (1.01, ("strong", "heavy", "severe", "very strong")),
)
_IR_NAMES = ("the thermal image", "the infrared image", "the IR frame", "the thermal camera", "the infrared")
_VIS_NAMES = (
    "the visible image",
    "the colour image",
    "the RGB frame",
    "the visible camera",
    "the daylight camera",
)
# fault -> phrase templates; {a} is a severity word
_PHRASES = {
    "ir_stripes": ("{a} vertical stripes", "{a} column stripe noise", "{a} vertical striping"),
    "ir_rows": ("{a} horizontal banding", "{a} row noise", "{a} horizontal stripes"),
    "ir_fpn": ("{a} fixed-pattern noise", "{a} pixel non-uniformity", "{a} fixed pattern noise"),
    "ir_noise": ("{a} noise", "{a} grainy noise", "{a} sensor noise"),
    "ir_contrast": ("{a} low contrast", "a {a} loss of contrast", "{a} washed-out contrast"),
    "ir_blur": ("{a} blur", "{a} defocus", "{a} softness"),
    "vis_dark": ("{a} low light", "{a} darkness with noise", "{a} underexposure"),
    "vis_blur": ("{a} blur", "{a} defocus blur", "{a} out-of-focus blur"),
    "vis_motion": ("{a} motion blur", "{a} motion smear", "{a} camera-shake blur"),
    "vis_over": ("{a} overexposure", "{a} glare and clipping", "{a} over-exposure"),
    "vis_jpeg": ("{a} compression artefacts", "{a} JPEG blocking", "{a} compression noise"),
}
_CLEAN = ("clean", "both images are clean", "no degradation", "the thermal and visible images are clean")
_CLEAN_ONE = ("is clean", "looks clean", "has no visible degradation")


def _amount(s: float, rng: np.random.Generator) -> str:
    words = next(w for top, w in _AMOUNT if s < top)
    return words[rng.integers(len(words))]


def _clause(names: tuple[str, ...], faults: tuple[str, ...], d: Degradation, rng: np.random.Generator) -> str:
    name = names[rng.integers(len(names))]
    present = [f for f in faults if getattr(d, f)]
    if not present:
        return f"{name} {_CLEAN_ONE[rng.integers(len(_CLEAN_ONE))]}"
    rng.shuffle(present)
    parts = [_PHRASES[f][rng.integers(3)].format(a=_amount(getattr(d, f), rng)) for f in present]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    verb = ("has", "shows", "suffers from")[rng.integers(3)]
    return f"{name} {verb} {listed}"


def describe(d: Degradation, rng: np.random.Generator) -> str:
    """A sentence describing ``d`` with randomly varied wording, e.g. "the thermal image has strong
    vertical stripes; the visible image shows moderate low light and slight blur"."""
    if d.clean:
        return _CLEAN[rng.integers(len(_CLEAN))]
    clauses = [
        ("ir", _clause(_IR_NAMES, IR_FAULTS, d, rng)),
        ("vis", _clause(_VIS_NAMES, VIS_FAULTS, d, rng)),
    ]
    if rng.random() < 0.5:
        clauses.reverse()
    if rng.random() < 0.3:  # sometimes the clean modality goes unmentioned
        clauses = [(m, c) for m, c in clauses if d.severity(m)]
    return ("; " if rng.random() < 0.6 else ". ").join(c for _, c in clauses)


def exposed_batch(vis_u8, degs: list[Degradation]):
    """:func:`exposed` over a uint8 torch batch (n, 3, h, w) BGR and its degradations."""
    import torch

    out = [
        exposed(np.ascontiguousarray(v.transpose(1, 2, 0)), d).transpose(2, 0, 1)
        for v, d in zip(vis_u8.numpy(), degs)
    ]
    return torch.from_numpy(np.stack(out))


def degrade_batch(vis_u8, ir_u8, rng: np.random.Generator, p_degraded: float = 0.85):
    """Degrade a uint8 torch batch (vis (n, 3, h, w) BGR, IR (n, 1, h, w)) sample by sample.

    Returns (degraded vis, degraded IR, [Degradation] * n); the inputs are not modified."""
    import torch

    vis_out, ir_out, degs = [], [], []
    for v, i in zip(vis_u8.numpy(), ir_u8.numpy()):
        d = sample(rng, p_degraded)
        dv, di = apply(np.ascontiguousarray(v.transpose(1, 2, 0)), i[0], d, rng)
        vis_out.append(dv.transpose(2, 0, 1))
        ir_out.append(di[None])
        degs.append(d)
    return torch.from_numpy(np.stack(vis_out)), torch.from_numpy(np.stack(ir_out)), degs
