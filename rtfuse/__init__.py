"""rtfuse: real-time infrared + visible video fusion.

>>> import rtfuse
>>> fuse = rtfuse.load_fuser("lut")
>>> fused = fuse(vis_bgr, ir)  # uint8 HxWx3 BGR, uint8 HxW -> uint8 HxWx3 BGR
"""

from rtfuse.errors import InputError, LutFormatError, RtfuseError
from rtfuse.fusion.registry import BACKENDS, load_fuser

__version__ = "0.1.0"
__all__ = ["BACKENDS", "InputError", "LutFormatError", "RtfuseError", "load_fuser", "__version__"]
