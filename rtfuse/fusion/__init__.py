"""Fusion backends: the Numba LUT kernels and simple reference fusions."""

from rtfuse.fusion.registry import BACKENDS, load_fuser

__all__ = ["BACKENDS", "load_fuser"]
