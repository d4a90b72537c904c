"""spinequant: find and measure dendrites and dendritic spines in 3D microscopy stacks.

Every function takes arrays with an explicit ``spacing`` in µm ordered (z, y, x), or a
:class:`Stack` that carries it, and reports physical units.

>>> import spinequant as sq
>>> stack = sq.read_stack("dendrite.tif", voxel_size=(0.5, 0.094, 0.094))  # doctest: +SKIP
>>> result = sq.analyze(stack)                                              # doctest: +SKIP
>>> result.spines.head()                                                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib

from .errors import InputError, OutputError, SpinequantError, VoxelSizeError

__version__ = "0.1.0"

# Everything else loads on first use: `import spinequant` stays fast, and the command line
# (whose entry point imports this package) can set up its Ctrl-C handling before numpy, zarr
# and torch are imported.
_LAZY = {
    "Stack": "spinequant.stack",
    "open_stack": "spinequant.io",
    "read_stack": "spinequant.io",
    "analyze": "spinequant.pipeline",
    "analyze_file": "spinequant.pipeline",
    "analyze_folder": "spinequant.pipeline",
    "AnalyzeConfig": "spinequant.pipeline",
    "measure_spines": "spinequant.morphology",
    "measure_dendrites": "spinequant.morphology",
    "spine_instances": "spinequant.instances",
    "make_phantom": "spinequant.synth",
}

#: Subpackages reachable as attributes (``sq.data.sample_path()``), imported on first use.
_SUBPACKAGES = ("data", "io", "segment", "instances", "morphology", "export", "report", "pipeline",
                "synth", "evaluate")

__all__ = [
    "Stack", "open_stack", "read_stack", *_LAZY,
    "SpinequantError", "InputError", "OutputError", "VoxelSizeError", "__version__",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"spinequant.{name}")
    raise AttributeError(f"module 'spinequant' has no attribute {name!r}")
