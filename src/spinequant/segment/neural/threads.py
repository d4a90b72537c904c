"""PyTorch's CPU thread count, set for the length of one call and then put back."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` CPU threads in PyTorch (unchanged when None or 0),
    restoring the previous count afterwards, also when the block raises.

    The count is process-wide: a caller's own setting (a napari session, a Dask worker)
    must not change behind its back.
    """
    # Nothing to set and torch not loaded (an ONNX Runtime run): leave it unimported.
    torch = importlib.import_module("torch") if threads else sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)
