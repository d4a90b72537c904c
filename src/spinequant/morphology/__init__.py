"""Measure spines and dendrites in µm from label images.

>>> from spinequant.morphology import measure_spines, measure_dendrites, dendrite_centrelines
>>> spines = measure_spines(spine_labels, dendrite_labels, spacing=(0.5, 0.094, 0.094))  # doctest: +SKIP
>>> dendrites = measure_dendrites(dendrite_labels, (0.5, 0.094, 0.094), spines)         # doctest: +SKIP

Definitions of every column and the spine type rules are in ``docs/measurements.md``.
"""

from __future__ import annotations

from .classify import SPINE_TYPES, classify_spines
from .config import RULE_SETS, MorphologyConfig
from .dendrites import DENDRITE_COLUMNS, DENDRITE_COLUMNS_2D, dendrite_centrelines, measure_dendrites
from .skeleton import DendriteSkeleton, dendrite_skeleton
from .spines import SPINE_COLUMNS, SPINE_COLUMNS_2D, measure_spines

__all__ = [
    "measure_spines", "measure_dendrites", "dendrite_centrelines", "dendrite_skeleton",
    "classify_spines", "MorphologyConfig", "DendriteSkeleton",
    "SPINE_COLUMNS", "SPINE_COLUMNS_2D", "DENDRITE_COLUMNS", "DENDRITE_COLUMNS_2D", "SPINE_TYPES", "RULE_SETS",
]
