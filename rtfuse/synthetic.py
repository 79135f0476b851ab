"""A deterministic synthetic IR + visible scene, for the demo, tests and benchmarks, and its Source.

Warm targets (people, vehicles) move over a textured background and are rendered consistently in
both modalities: in the visible they are dim, low-contrast shapes (dusk lighting); in the IR they
are bright. The same ``seed`` and frame index always give the same pixels.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from rtfuse.sources.base import DEFAULT_FPS, Frame, Source

# Raw 16-bit counts per 8-bit IR level, and the offset: a plausible radiometric-camera range.
IR16_GAIN = 24.0
IR16_OFFSET = 7000.0


@dataclass
class _Target:
    x0: float
    y0: float
    vx: float
    vy: float
    rx: int
    ry: int
    heat: float
    colour: tuple[int, int, int]


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise in [0, 1], float32 (h, w[, channels]): random grid upsampled bicubically."""
    gh, gw = max(2, h * cells // max(h, w)), max(2, w * cells // max(h, w))
    shape = (gh, gw, channels) if channels > 1 else (gh, gw)
    small = rng.random(shape, dtype=np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0.0, 1.0)


class SyntheticScene:
    """Render frame ``i`` of a moving scene: ``vis`` uint8 (H, W, 3) BGR, ``ir`` uint8 (H, W).

    ``render_ir16(i)`` gives the same IR as raw-like uint16 counts (for the 16-bit/AGC path).
    """

    def __init__(
        self, width: int = 640, height: int = 480, seed: int = 0, fps: float = DEFAULT_FPS, n_targets: int = 5
    ) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"synthetic scene needs at least 16x16 pixels, got {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.width, self.height, self.seed, self.fps = int(width), int(height), int(seed), float(fps)
        rng = np.random.default_rng(seed)
        h, w = self.height, self.width
        horizon = int(h * 0.4)
        # Visible: sky gradient, textured ground, a few building blocks; dusk lighting (dim).
        vis = np.empty((h, w, 3), np.float32)
        sky = np.linspace(0.55, 0.35, horizon, dtype=np.float32)[:, None, None] * np.array(
            [200, 170, 140], np.float32
        )
        vis[:horizon] = sky
        tex = _smooth_noise(rng, h, w, 48, 3) * 0.6 + _smooth_noise(rng, h, w, 8, 3) * 0.4
        vis[horizon:] = (tex[horizon:] * np.array([90, 110, 100], np.float32)) + 30
        ir = np.empty((h, w), np.float32)
        ir[:horizon] = np.linspace(20, 45, horizon, dtype=np.float32)[:, None]  # cold sky
        ir[horizon:] = 70 + 40 * _smooth_noise(rng, h, w, 6)[horizon:] + 15 * tex[horizon:, :, 0]
        for _ in range(4):
            bw, bh = int(rng.integers(w // 10, w // 4)), int(rng.integers(h // 6, h // 3))
            bx = int(rng.integers(0, w - bw))
            by = horizon - bh + int(rng.integers(0, h // 10))
            shade = rng.uniform(0.5, 1.0)
            vis[by : by + bh, bx : bx + bw] = np.array([120, 125, 130], np.float32) * shade
            # Windows: visible detail that the IR barely shows, so fusion has texture to keep.
            for wy in range(by + 4, by + bh - 6, max(6, bh // 8)):
                for wx in range(bx + 4, bx + bw - 6, max(6, bw // 8)):
                    vis[wy : wy + 3, wx : wx + 3] = (200, 220, 230)
            ir[by : by + bh, bx : bx + bw] = 90 + 20 * shade
        self._vis_bg = np.clip(vis * 0.6, 0, 255)  # dusk
        self._ir_bg = ir
        self._noise = [rng.normal(0, 2.0, (h, w)).astype(np.float32) for _ in range(4)]
        self._targets = []
        for _ in range(n_targets):
            person = rng.random() < 0.6
            ry = int(h * (rng.uniform(0.08, 0.14) if person else rng.uniform(0.05, 0.08)))
            rx = int(ry * (0.35 if person else 1.8))
            self._targets.append(
                _Target(
                    x0=float(rng.uniform(0, w)),
                    y0=float(rng.uniform(horizon + ry, h - ry)),
                    vx=float(rng.uniform(-0.25, 0.25) * w),
                    vy=float(rng.uniform(-0.03, 0.03) * h),
                    rx=max(rx, 2),
                    ry=max(ry, 2),
                    heat=float(rng.uniform(190, 245)),
                    colour=tuple(int(c) for c in rng.integers(20, 70, 3)),
                )
            )

    def _positions(self, index: int) -> list[tuple[int, int]]:
        t = index / self.fps
        out = []
        for tg in self._targets:
            span_x = self.width + 2 * tg.rx
            x = (tg.x0 + tg.vx * t) % span_x - tg.rx
            y = tg.y0 + tg.vy * np.sin(2 * np.pi * t / 7.0) * 5
            out.append((int(round(x)), int(round(y))))
        return out

    def _ir_field(self, index: int) -> np.ndarray:
        ir = self._ir_bg + self._noise[index % len(self._noise)]
        for tg, (x, y) in zip(self._targets, self._positions(index)):
            cv2.ellipse(ir, (x, y), (tg.rx, tg.ry), 0, 0, 360, tg.heat, -1, cv2.LINE_AA)
            cv2.ellipse(
                ir,
                (x, y - tg.ry // 3),
                (max(tg.rx // 2, 1), max(tg.ry // 3, 1)),
                0,
                0,
                360,
                min(tg.heat + 10, 255),
                -1,
            )
        return ir

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``index``: (vis uint8 (H, W, 3) BGR, ir uint8 (H, W))."""
        return self.render_vis(index), self.render_ir(index)

    def render_vis(self, index: int) -> np.ndarray:
        """Visible frame ``index``, uint8 (H, W, 3) BGR."""
        vis = self._vis_bg.copy()
        for tg, (x, y) in zip(self._targets, self._positions(index)):
            cv2.ellipse(vis, (x, y), (tg.rx, tg.ry), 0, 0, 360, tg.colour, -1, cv2.LINE_AA)
        return vis.astype(np.uint8)

    def render_ir(self, index: int) -> np.ndarray:
        """IR frame ``index``, uint8 (H, W)."""
        return np.clip(self._ir_field(index), 0, 255).astype(np.uint8)

    def render_ir16(self, index: int) -> np.ndarray:
        """IR of frame ``index`` as uint16 counts (``IR16_OFFSET + IR16_GAIN * level``)."""
        return np.clip(self._ir_field(index) * IR16_GAIN + IR16_OFFSET, 0, 65535).astype(np.uint16)


class SyntheticSource(Source):
    """Frames of one modality (``"vis"``, ``"ir"`` or ``"ir16"``) of a deterministic scene.

    Two sources with the same ``seed`` and size render the same scene, so they are registered.
    ``count`` None is endless. ``realtime`` makes it behave like a camera: frames are paced at
    ``fps`` on the wall clock, stamped with their capture time on ``time.monotonic()``, and the
    source is ``live`` (the pipeline drops frames rather than slowing it). Otherwise
    ``t = index / fps`` and frames come as fast as they are consumed, losslessly.
    """

    def __init__(
        self,
        modality: str,
        width: int = 640,
        height: int = 480,
        fps: float = DEFAULT_FPS,
        seed: int = 0,
        count: int | None = None,
        realtime: bool = False,
    ) -> None:
        if modality not in ("vis", "ir", "ir16"):
            raise ValueError(f"modality must be vis, ir or ir16, got {modality!r}")
        self.modality = modality
        self.scene = SyntheticScene(width, height, seed=seed, fps=fps)
        self.fps = float(fps)
        self.size = (width, height)
        self.frame_count = count
        self.realtime = realtime
        self.live = realtime
        self.name = f"synthetic {modality}"

    def _render(self, i: int):
        if self.modality == "vis":
            return self.scene.render_vis(i)
        if self.modality == "ir":
            return self.scene.render_ir(i)
        return self.scene.render_ir16(i)

    def frames(self) -> Iterator[Frame]:
        i = 0
        start = time.monotonic()
        while self.frame_count is None or i < self.frame_count:
            if self.realtime:
                delay = start + i / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                img = self._render(i)
                yield Frame(time.monotonic(), img, i)
            else:
                yield Frame(i / self.fps, self._render(i), i)
            i += 1
