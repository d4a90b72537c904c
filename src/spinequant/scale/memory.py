"""Choosing the block size from a memory budget (``--max-memory``).

A worker's peak while it runs a block grows with the block's *window* (its core plus the
halo on every side, the whole z extent): the window is read, segmented, its maps kept in
float16, its objects built. Measured with ``benchmarks/scale_large.py window`` (one inner
block per fresh process, maps and objects, default model lean2d_real with ONNX Runtime,
48-plane windows of 864², 1120² and 1632² pixels; docs/scale.md, "Memory model"):

    peak ≈ BASE + PER_VOXEL x window voxels

The numbers below are that fit; :data:`MARGIN` is added on top. The chosen block is the
largest multiple of 16 pixels whose window fits the budget. The classical method was not
measured: the network's fit is used for it too.
"""

from __future__ import annotations

import math

from ..errors import InputError
from .config import ALIGN_PX

#: Measured fit, per method family: (bytes before any block: interpreter, libraries, model;
#: bytes per window voxel). See docs/scale.md, "Memory model". (classical: not measured.)
MODEL = {"network": (0.411e9, 12.2), "classical": (0.411e9, 12.2)}
#: Headroom on the fitted peak (other allocations, fragmentation).
MARGIN = 1.15


def parse_memory(value) -> int:
    """Bytes from ``4GB``, ``4 GiB``, ``3.5e9`` or an int."""
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(value) if isinstance(value, str) else int(value)
    except (ValueError, TypeError):
        raise InputError(f"Cannot read the memory size {value!r}; write it like 4GB, 4GiB or 500MB.") from None
    if n <= 0:
        raise InputError(f"The memory size must be positive; got {value!r}.")
    return int(n)


def predicted_peak(window_voxels: int, method: str) -> float:
    """Predicted peak bytes of a worker running a block with this many window voxels."""
    base, per_voxel = MODEL["classical" if method == "classical" else "network"]
    return MARGIN * (base + per_voxel * window_voxels)


def chunk_for_memory(max_memory, shape, *, halo: int, method: str) -> int:
    """The largest block core edge (pixels, a multiple of 16) whose window fits ``max_memory``.

    A block larger than the volume is no use: the result is at most the volume's larger edge
    (rounded up to 16).
    """
    budget = parse_memory(max_memory)
    nz, ny, nx = (int(n) for n in shape)
    base, per_voxel = MODEL["classical" if method == "classical" else "network"]
    voxels = (budget / MARGIN - base) / per_voxel
    edge = math.sqrt(max(voxels, 0) / nz) - 2 * halo       # window edge = core + 2 halo
    chunk = int(edge // ALIGN_PX) * ALIGN_PX
    if chunk < ALIGN_PX:
        need = predicted_peak(nz * (ALIGN_PX + 2 * halo) ** 2, method)
        raise InputError(f"--max-memory {max_memory} is too small for this {nz}-plane volume with "
                         f"{halo}-px halos: the smallest block needs about {need / 1e9:.1f} GB per worker. "
                         f"Give more memory.")
    largest = -(-max(ny, nx) // ALIGN_PX) * ALIGN_PX
    return min(chunk, largest)
