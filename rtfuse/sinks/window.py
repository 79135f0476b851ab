"""On-screen window with a HUD: an OpenCV ``imshow`` sink (runs on the main thread)."""

from __future__ import annotations

import os
import sys
import time
from collections import deque

import cv2
import numpy as np

from rtfuse.sinks.base import Fused, Sink

KEYS_HELP = "f fused | v visible | i IR | s side by side | h HUD on/off | q or Esc quit"
VIEWS = {ord("f"): "fused", ord("v"): "visible", ord("i"): "IR", ord("s"): "side by side"}


def has_display() -> tuple[bool, str]:
    """Whether a window can open here, and if not, why."""
    gui = ""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            gui = line.split(":", 1)[1].strip()
    if gui.upper() in ("", "NONE"):
        return False, "this OpenCV build has no GUI support (opencv-python-headless?)"
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY/WAYLAND_DISPLAY unset)"
    return True, ""


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float = 0.55) -> None:
    cv2.putText(img, s, (org[0] + 1, org[1] + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


class WindowSink(Sink):
    """Show fused / visible / IR / side-by-side views with fps and latency; q quits."""

    name = "window"

    def __init__(self, title: str = "rtfuse") -> None:
        self.title = title
        self.view = "fused"
        self.hud = True
        self._times: deque[float] = deque(maxlen=30)
        self._lat: deque[float] = deque(maxlen=30)
        self.count = 0

    def open(self, size: tuple[int, int], fps: float) -> None:
        cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        cv2.resizeWindow(self.title, *size)

    def compose(self, item: Fused) -> np.ndarray:
        ir_bgr = cv2.cvtColor(item.ir, cv2.COLOR_GRAY2BGR)
        if self.view == "visible":
            img = item.vis.copy()
        elif self.view == "IR":
            img = ir_bgr
        elif self.view == "side by side":
            img = np.hstack([item.vis, ir_bgr, item.fused])
        else:
            img = item.fused.copy()
        if self.hud:
            now = time.monotonic()
            self._times.append(now)
            self._lat.append(now - item.received)
            fps = (len(self._times) - 1) / (self._times[-1] - self._times[0]) if len(self._times) > 1 else 0.0
            lat = 1e3 * float(np.median(self._lat))
            _text(img, f"{self.view}  {fps:5.1f} fps  latency {lat:5.1f} ms", (10, 24))
            _text(img, KEYS_HELP, (10, img.shape[0] - 10), 0.4)
        return img

    def write(self, item: Fused) -> bool:
        cv2.imshow(self.title, self.compose(item))
        self.count += 1
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        if key in VIEWS:
            self.view = VIEWS[key]
        elif key == ord("h"):
            self.hud = not self.hud
        # The user closed the window with the mouse.
        return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> str:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass
        return f"window: showed {self.count} frames"
