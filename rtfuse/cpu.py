"""How many CPU cores this process may use: one definition for every thread and worker count."""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share), at least 1."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):  # no affinity on macOS and Windows
        return os.cpu_count() or 1
