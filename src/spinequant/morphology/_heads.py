"""Number of heads of one spine: the wide end lobes of its inscribed-distance map.

A branched spine (Risher et al. 2014: "two or more heads") has two or more wide parts that
each end a branch of its own. Here a *lobe* is a connected piece of the spine where the
inscribed distance is at least ``core_fraction`` of the spine's largest; a lobe counts as a
head when its own largest inscribed radius is at least ``min_head_fraction`` of the spine's
largest (a head, not a bump) and it is an *end* lobe: it does not lie on the way from the
base to any other lobe. Lobe A lies on the way to lobe B when going base -> A -> B is at most
A's radius longer than base -> B (path lengths inside the spine, in µm): a wide base under a
head, or a swelling on a neck, is then not a second head. Works in 2D and 3D alike.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._common import full_footprint
from ._geodesic import geodesic


def count_heads(mask: np.ndarray, r_in: np.ndarray, base_set, sp: np.ndarray, *,
                min_head_fraction: float, core_fraction: float = 0.5) -> int:
    """Number of heads (>= 1) of the spine ``mask``.

    Parameters
    ----------
    mask : bool array
        The spine's voxels (its padded bounding box).
    r_in : float array
        Distance (µm) of every voxel to the nearest voxel outside the spine (the dendrite
        counts as outside, so the base is narrow).
    base_set : list of index tuples
        Voxels where the spine meets its dendrite (start of the path lengths).
    sp : (ndim,) array
        Voxel size in µm.
    min_head_fraction, core_fraction : float
        See the module docstring.

    Examples
    --------
    >>> y, x = np.mgrid[:40, :40]
    >>> two = ((x - 10) ** 2 + (y - 30) ** 2 <= 25) | ((x - 30) ** 2 + (y - 30) ** 2 <= 25)
    >>> two |= (abs(x - 20) <= 1) & (y < 30) | (abs(y - 30) <= 1) & (abs(x - 20) <= 10)
    >>> r = ndimage.distance_transform_edt(two)
    >>> count_heads(two, r, [(0, 20)], np.ones(2), min_head_fraction=0.6)
    2
    """
    r = np.where(mask, r_in, 0.0)
    r_max = float(r.max())
    if r_max <= 0:
        return 1
    lobes, n = ndimage.label(r >= core_fraction * r_max, full_footprint(mask.ndim))
    if n < 2:
        return 1
    index = np.arange(1, n + 1)
    peaks = np.asarray(ndimage.maximum(r, lobes, index), float)
    wide = peaks >= min_head_fraction * r_max
    if wide.sum() < 2:
        return 1

    centres = [tuple(p) for p in ndimage.maximum_position(r, lobes, index[wide])]
    radii = peaks[wide]
    _, from_base = geodesic(mask, 1.0, base_set, sp)
    to_base = np.array([from_base[c] for c in centres])
    between = np.array([[geodesic(mask, 1.0, [a], sp)[1][b] for b in centres] for a in centres])
    # on_way[a, b]: lobe a lies on the way from the base to lobe b.
    on_way = to_base[:, None] + between - to_base[None, :] <= radii[:, None]
    np.fill_diagonal(on_way, False)
    return max(int((~on_way.any(axis=1)).sum()), 1)
