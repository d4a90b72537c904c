"""Let glibc keep freed memory for reuse: an opt-in for programs that own their process.

By default glibc hands every freed block above 128 kB straight back to the system, so each
batch of tiles pays for fresh, zeroed pages for its intermediate tensors: on a
101 x 1024 x 1024 stack that page-fault storm cost ~20 s of a 50 s prediction (measured:
53 s without, 30 s with the settings below). glibc raises the threshold by itself after the
first large free, which is why a second prediction in the same process was always faster.

The settings are process-wide and cannot be undone (glibc has no way to read them back, and
setting them turns its own adaptive thresholds off for good), so :func:`predict` does not
touch them: a napari session or a Dask worker keeps its allocator. A command-line program or
batch script that owns its process calls :func:`keep_freed_memory` once at start.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied = False


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 512 << 20) -> bool:
    """Raise glibc's mmap and trim thresholds for the rest of the process (Linux only); True
    if set. Call it only from a program that owns its process (see the module's note)."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) & bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return _applied
