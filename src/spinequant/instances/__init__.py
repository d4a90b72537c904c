"""Spine objects: from spine and dendrite maps to one label per spine, in µm-based rules.

>>> from spinequant.instances import spine_instances, InstanceConfig
>>> result = spine_instances(spine_prob, dendrite_prob, spacing=(0.5, 0.094, 0.094))  # doctest: +SKIP
>>> result.spine_labels.max()                                                           # doctest: +SKIP
"""

from __future__ import annotations

from .config import InstanceConfig, InstanceResult, planar_area_um2
from .filters import noise_filter, object_filter, remove_small
from .floodfill import seeded_flood_fill
from .pipeline import spine_instances
from .split import split_touching

__all__ = ["spine_instances", "InstanceConfig", "InstanceResult", "planar_area_um2", "seeded_flood_fill", "split_touching",
           "object_filter", "noise_filter", "remove_small"]
