"""Calibration: the IR -> visible homography by checkerboard, point pairs or automatic registration."""

from rtfuse.calib.checkerboard import detect, solve
from rtfuse.calib.homography import apply_h, fit_ir_to_vis, ir_errors
from rtfuse.calib.points import fit_points, read_points
from rtfuse.calib.preview import overlay
from rtfuse.calib.registration import Registration, register, structure_field

__all__ = [
    "apply_h",
    "detect",
    "fit_ir_to_vis",
    "fit_points",
    "ir_errors",
    "overlay",
    "read_points",
    "register",
    "Registration",
    "solve",
    "structure_field",
]
