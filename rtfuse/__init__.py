"""rtfuse: real-time infrared + visible video fusion.

>>> import rtfuse
>>> fuse = rtfuse.load_fuser("lut")
>>> fused = fuse(vis_bgr, ir)  # uint8 HxWx3 BGR, uint8 HxW -> uint8 HxWx3 BGR
"""

from rtfuse.errors import InputError, LutFormatError, RtfuseError

__version__ = "0.1.0"
__all__ = ["BACKENDS", "InputError", "LutFormatError", "RtfuseError", "load_fuser", "__version__"]


def __getattr__(name: str):
    # Imported on first use: the command line installs its signal handlers before numpy loads.
    if name in ("BACKENDS", "load_fuser"):
        from rtfuse.fusion import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'rtfuse' has no attribute {name!r}")
