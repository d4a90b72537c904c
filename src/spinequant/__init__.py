"""spinequant: find and measure dendrites and dendritic spines in 3D microscopy stacks.

Every function takes arrays with an explicit ``spacing`` in µm ordered (z, y, x), or a
:class:`Stack` that carries it, and reports physical units.
"""

from __future__ import annotations

from .errors import InputError, OutputError, SpinequantError, VoxelSizeError
from .io import open_stack, read_stack
from .stack import Stack

__version__ = "0.1.0"

__all__ = [
    "Stack", "open_stack", "read_stack",
    "SpinequantError", "InputError", "OutputError", "VoxelSizeError", "__version__",
]
