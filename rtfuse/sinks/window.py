"""On-screen window with a HUD: an OpenCV ``imshow`` sink (runs on the main thread)."""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from rtfuse.images import write_image
from rtfuse.sinks.base import Fused, Sink
from rtfuse.sources.base import DEFAULT_FPS

KEYS = {
    "f": "fused view",
    "v": "visible view",
    "i": "IR view (colormapped)",
    "b": "blend view (visible + colormapped IR, alpha slider)",
    "s": "side by side: visible | IR | fused",
    "c": "cycle the IR colormap (inferno, jet, gray)",
    "p": "snapshot: save fused, visible and IR images",
    "r": "start/stop recording the current view to a video",
    "h": "HUD on/off",
    "q": "quit (also Esc)",
}
KEYS_HELP = "keys: " + ", ".join(f"{k} {v}" for k, v in KEYS.items())
VIEWS = {"f": "fused", "v": "visible", "i": "IR", "b": "blend", "s": "side by side"}
COLORMAPS = {"inferno": cv2.COLORMAP_INFERNO, "jet": cv2.COLORMAP_JET, "gray": None}


def has_display() -> tuple[bool, str]:
    """Whether a window can open here, and if not, why."""
    gui = ""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            gui = line.split(":", 1)[1].strip()
    if gui.upper() in ("", "NONE"):
        return False, "this OpenCV build has no GUI support (opencv-python-headless?)"
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False, "no display (DISPLAY/WAYLAND_DISPLAY unset)"
    return True, ""


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float = 0.55, colour=(255, 255, 255)) -> None:
    cv2.putText(img, s, (org[0] + 1, org[1] + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


class WindowSink(Sink):
    """Show the fused stream with views, colormaps, an alpha slider, snapshots and recording.

    ``compose()`` builds what the window shows and is usable without a display (tests).
    Snapshots and recordings go to ``save_dir``.
    """

    name = "window"

    def __init__(self, title: str = "rtfuse", save_dir: str | Path = ".", codec: str = "h264") -> None:
        self.title = title
        self.save_dir = Path(save_dir)
        self.codec = codec
        self.view = "fused"
        self.colormap = "inferno"
        self.alpha = 0.5
        self.hud = True
        self.message = ""
        self._message_until = 0.0
        # The HUD's fps and latency: over the last 30 frames (about a second), steady yet current.
        self._times: deque[float] = deque(maxlen=30)
        self._lat: deque[float] = deque(maxlen=30)
        self._recorder = None
        self._last: Fused | None = None
        self._fps = DEFAULT_FPS  # until open() gives the stream's rate
        self.count = 0
        self.snapshots: list[Path] = []
        self.recordings: list[str] = []

    def open(self, size: tuple[int, int], fps: float) -> None:
        self._fps = fps
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        cv2.resizeWindow(self.title, *size)
        cv2.createTrackbar("blend alpha %", self.title, int(self.alpha * 100), 100, self._on_alpha)

    def _on_alpha(self, value: int) -> None:
        self.alpha = value / 100.0

    def ir_colour(self, ir: np.ndarray) -> np.ndarray:
        cmap = COLORMAPS[self.colormap]
        return cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR) if cmap is None else cv2.applyColorMap(ir, cmap)

    def compose(self, item: Fused, tick: bool = True) -> np.ndarray:
        """The current view of ``item`` with the HUD, uint8 BGR. ``tick``: count it for fps/latency."""
        if self.view == "visible":
            img = item.vis.copy()
        elif self.view == "IR":
            img = self.ir_colour(item.ir)
        elif self.view == "blend":
            img = cv2.addWeighted(item.vis, 1.0 - self.alpha, self.ir_colour(item.ir), self.alpha, 0.0)
        elif self.view == "side by side":
            img = np.hstack([item.vis, self.ir_colour(item.ir), item.fused])
        else:
            img = item.fused.copy()
        now = time.monotonic()
        if tick:
            self._times.append(now)
            self._lat.append(now - item.received)
        if self.hud:
            fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 else 0.0
            lat = 1e3 * float(np.median(self._lat))
            rec = "  REC" if self._recorder is not None else ""
            _text(
                img, f"{self.view}  {fps:5.1f} fps  latency {lat:5.1f} ms  IR {self.colormap}{rec}", (10, 24)
            )
            if item.status:
                _text(img, item.status, (10, 50), 0.6, (0, 0, 255))
            if self.message and now < self._message_until:
                _text(img, self.message, (10, 76), 0.5, (0, 255, 255))
            _text(
                img,
                "f v i b s views | c colormap | p snapshot | r record | h HUD | q quit",
                (10, img.shape[0] - 10),
                0.4,
            )
        return img

    def _say(self, text: str) -> None:
        self.message, self._message_until = text, time.monotonic() + 2.0

    def snapshot(self, item: Fused) -> list[Path]:
        stamp = _dt.datetime.now().strftime("%Y%m%d_%H%M%S_%f")[:-3]
        paths = []
        for kind, img in (("fused", item.fused), ("visible", item.vis), ("ir", item.ir)):
            p = self.save_dir / f"snapshot_{stamp}_{kind}.png"
            write_image(p, img)
            paths.append(p)
        self.snapshots.extend(paths)
        self._say(f"saved {paths[0].name} (+ visible, ir)")
        return paths

    def toggle_recording(self, frame_size: tuple[int, int]) -> None:
        from rtfuse.sinks.video import VideoSink

        if self._recorder is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d_%H%M%S")
            ext = ".mkv" if self.codec == "ffv1" else ".mp4"
            self._recorder = VideoSink(self.save_dir / f"recording_{stamp}{ext}", codec=self.codec)
            self._recorder.open(frame_size, self._fps)
            self._say(f"recording to {self._recorder.path.name}")
        else:
            note = self._recorder.close()
            self.recordings.append(note)
            self._recorder = None
            self._say(note)

    def handle_key(self, key: int, item: Fused | None, shown: np.ndarray | None) -> bool:
        """Apply one key press; False means quit."""
        ch = chr(key) if 0 < key < 256 else ""
        if key == 27 or ch == "q":
            return False
        if ch in VIEWS:
            if self._recorder is not None and VIEWS[ch] != self.view:
                self.toggle_recording((0, 0))  # a recording keeps one frame size: stop it
            self.view = VIEWS[ch]
        elif ch == "c":
            names = list(COLORMAPS)
            self.colormap = names[(names.index(self.colormap) + 1) % len(names)]
        elif ch == "h":
            self.hud = not self.hud
        elif ch == "p" and item is not None:
            self.snapshot(item)
        elif ch == "r" and shown is not None:
            self.toggle_recording((shown.shape[1], shown.shape[0]))
        return True

    def write(self, item: Fused) -> bool:
        self._last = item
        shown = self.compose(item)
        if self._recorder is not None:
            self._recorder.write(Fused(item.t, item.index, shown, item.vis, item.ir, item.received))
        cv2.imshow(self.title, shown)
        self.count += 1
        if not self.handle_key(cv2.waitKey(1) & 0xFF, item, shown):
            return False
        # The user closed the window with the mouse.
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def idle(self, status: str) -> bool:
        """Keep the window responsive while no frame arrives (a stalled camera)."""
        key = cv2.waitKey(1) & 0xFF
        if self._last is not None and self.hud:
            img = self.compose(
                Fused(
                    self._last.t,
                    self._last.index,
                    self._last.fused,
                    self._last.vis,
                    self._last.ir,
                    self._last.received,
                    status,
                ),
                tick=False,
            )
            cv2.imshow(self.title, img)
        return self.handle_key(key, self._last, None) if key != 255 else True

    def close(self) -> str:
        if self._recorder is not None:
            self.recordings.append(self._recorder.close())
            self._recorder = None
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
        notes = [f"window: showed {self.count} frames"]
        if self.snapshots:
            notes.append(f"{len(self.snapshots) // 3} snapshot(s) in {self.save_dir}")
        notes.extend(self.recordings)
        return "; ".join(notes)
