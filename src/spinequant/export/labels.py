"""Label volumes: instance and semantic labels as TIFF (with scale) and OME-Zarr."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .._blank import blank_volume

#: Values of the semantic label volume.
BACKGROUND, DENDRITE, SPINE = 0, 1, 2


def semantic_labels(spine_labels: np.ndarray, dendrite_labels: np.ndarray) -> np.ndarray:
    """uint8 volume: 0 background, 1 dendrite, 2 spine (a voxel in both counts as spine).

    Made a plane at a time into a :func:`~spinequant._blank.blank_volume` volume:
    resident only where objects lie, and no whole-volume mask is held (101 MiB each on a
    101 x 1024 x 1024 stack)."""
    spine_labels, dendrite_labels = np.asarray(spine_labels), np.asarray(dendrite_labels)
    if spine_labels.shape != dendrite_labels.shape:
        raise InputError(
            f"Spine labels {spine_labels.shape} and dendrite labels {dendrite_labels.shape} differ in "
            f"shape; both must come from the same stack."
        )
    out = blank_volume(spine_labels.shape, np.uint8)
    for plane, dendrite, spine in zip(*map(_planes, (out, dendrite_labels, spine_labels))):
        plane[dendrite > 0] = DENDRITE
        plane[spine > 0] = SPINE
    return out


def _planes(volume: np.ndarray):
    """A 3D volume's planes (views); a 2D image is its own one plane."""
    return volume if volume.ndim > 2 else volume[None]
