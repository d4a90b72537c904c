"""Zeroed volumes whose pages take memory only once written (label volumes, a sparse map)."""

from __future__ import annotations

import mmap

import numpy as np

#: Volumes from this size on are their own mapping (smaller ones are plain ``np.zeros``).
BLANK_MIN_BYTES = 16 << 20


def blank_volume(shape, dtype=np.int32) -> np.ndarray:
    """A zeroed volume (int32 unless ``dtype``) whose pages take memory only once written.

    Spine and dendrite objects cover a few percent of a stack; written object by object
    into such a volume, a label volume is resident only around them, not whole. numpy asks
    the kernel for huge pages (2 MiB) for large arrays, which would make any object's voxel
    bring in 2 MiB around it (half a 1024 x 1024 int32 plane): a large volume is therefore
    its own anonymous mapping with huge pages declined (tests/test_memory_maps.py: 400 MiB
    with a small object in each of its 100 planes is resident for a few MiB, not 250).
    """
    shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < BLANK_MIN_BYTES or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return np.zeros(shape, dtype)
    # Private: reading a page no one wrote maps the kernel's zero page (shared would allocate it).
    buffer = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)
    buffer.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buffer, dtype).reshape(shape)
