"""Checks of a result against what dendrites look like: a misstated voxel size shows in them."""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Width range (µm) of dendritic shafts in light microscopy: thin distal branches ~0.4 µm,
#: proximal apical shafts 2-3 µm (Harris & Kater 1994; the phantoms draw 0.6-1.3 µm).
PLAUSIBLE_SHAFT_WIDTH_UM = (0.35, 4.0)


def size_warnings(dendrites: pd.DataFrame, spacing) -> list[str]:
    """A warning when no dendrite was found, or when the dendrites' length-weighted mean width
    lies outside :data:`PLAUSIBLE_SHAFT_WIDTH_UM`: usually a pixel size wrong by a factor.

    >>> size_warnings(pd.DataFrame({"length_um": [10.0], "mean_radius_um": [0.05]}), (0.01, 0.01))[0][:45]
    'The dendrites found are 0.1 µm wide on averag'
    """
    size = " x ".join(f"{s:g}" for s in spacing)
    if not len(dendrites):
        return [f"No dendrite was found. If the image shows dendrites, check the voxel size ({size} "
                f"µm; --voxel-size): at a size wrong by a factor, dendrites look too thin or too thick "
                f"to be found."]
    if "mean_radius_um" not in dendrites:
        return []
    lengths = dendrites["length_um"].to_numpy(float)
    widths = 2 * dendrites["mean_radius_um"].to_numpy(float)
    ok = np.isfinite(widths) & np.isfinite(lengths) & (lengths > 0)
    if not ok.any():
        return []
    width = float(np.average(widths[ok], weights=lengths[ok]))
    lo, hi = PLAUSIBLE_SHAFT_WIDTH_UM
    if lo <= width <= hi:
        return []
    return [f"The dendrites found are {width:.2g} µm wide on average, but dendritic shafts are "
            f"{lo:g}-{hi:g} µm wide: the voxel size ({size} µm) is probably wrong (for ordinary shafts "
            f"about 1 µm wide, by a factor of about {1.0 / width:.2g}), and every size in the results "
            f"with it. Check it (--voxel-size), or check that the image shows dendrites."]
