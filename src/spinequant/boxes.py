"""Bounding boxes (tuples of slices, as :func:`scipy.ndimage.find_objects` gives them).

>>> grow_box((slice(2, 4), slice(0, 3)), 2, (10, 4))
(slice(0, 6, None), slice(0, 4, None))
>>> box_within((slice(2, 4), slice(1, 3)), (slice(0, 6), slice(1, 4)))
(slice(2, 4, None), slice(0, 2, None))
"""

from __future__ import annotations

import numpy as np


def grow_box(box: tuple, margin, shape: tuple) -> tuple:
    """``box`` widened by ``margin`` voxels on every side (an int, or one per axis), clipped
    to an array of ``shape``."""
    margin = np.broadcast_to(np.asarray(margin, dtype=np.int64), (len(box),))
    return tuple(slice(max(s.start - int(m), 0), min(s.stop + int(m), n))
                 for s, m, n in zip(box, margin, shape))


def box_within(box: tuple, outer: tuple) -> tuple:
    """``box`` in the coordinates of the array cut out by ``outer`` (which contains it)."""
    return tuple(slice(b.start - o.start, b.stop - o.start) for b, o in zip(box, outer))
