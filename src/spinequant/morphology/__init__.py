"""Measure spines and dendrites in µm from label images.

>>> from spinequant.morphology import measure_spines, measure_dendrites, dendrite_centrelines
>>> spines = measure_spines(spine_labels, dendrite_labels, spacing=(0.5, 0.094, 0.094))  # doctest: +SKIP
>>> dendrites = measure_dendrites(dendrite_labels, (0.5, 0.094, 0.094), spines)         # doctest: +SKIP

Definitions of every column and the spine type rules are in ``docs/measurements.md``.
"""

from __future__ import annotations

from .._lazy import lazy_getattr
from .config import RULE_SETS, SPINE_TYPES, MorphologyConfig

# The measuring modules load on first use: they import pandas (about 65 MiB resident), which
# a run needs only from its measure stage on, not while the network and the spine-object
# stage hold the stack's maps (docs/scale.md, "Memory of the in-memory path").
__getattr__ = lazy_getattr(__name__, {
    "classify_spines": ".classify",
    "DENDRITE_COLUMNS": ".dendrites", "DENDRITE_COLUMNS_2D": ".dendrites",
    "dendrite_centrelines": ".dendrites", "measure_dendrites": ".dendrites",
    "DendriteSkeleton": ".skeleton", "dendrite_skeleton": ".skeleton",
    "SPINE_COLUMNS": ".spines", "SPINE_COLUMNS_2D": ".spines", "measure_spines": ".spines",
})

__all__ = [
    "measure_spines", "measure_dendrites", "dendrite_centrelines", "dendrite_skeleton",
    "classify_spines", "MorphologyConfig", "DendriteSkeleton",
    "SPINE_COLUMNS", "SPINE_COLUMNS_2D", "DENDRITE_COLUMNS", "DENDRITE_COLUMNS_2D", "SPINE_TYPES", "RULE_SETS",
]
