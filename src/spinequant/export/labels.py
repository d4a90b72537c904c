"""Label volumes: instance and semantic labels as TIFF (with scale) and OME-Zarr."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: Values of the semantic label volume.
BACKGROUND, DENDRITE, SPINE = 0, 1, 2


def semantic_labels(spine_labels: np.ndarray, dendrite_labels: np.ndarray) -> np.ndarray:
    """uint8 volume: 0 background, 1 dendrite, 2 spine (a voxel in both counts as spine)."""
    spine_labels, dendrite_labels = np.asarray(spine_labels), np.asarray(dendrite_labels)
    if spine_labels.shape != dendrite_labels.shape:
        raise InputError(
            f"Spine labels {spine_labels.shape} and dendrite labels {dendrite_labels.shape} differ in "
            f"shape; both must come from the same stack."
        )
    out = np.zeros(spine_labels.shape, dtype=np.uint8)
    out[dendrite_labels > 0] = DENDRITE
    out[spine_labels > 0] = SPINE
    return out
