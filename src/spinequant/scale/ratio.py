"""The two-channel spine-to-dendrite ratio (RSDR) of a chunked run too large to hold.

What :func:`spinequant.pipeline.analyze.spine_ratios` computes from whole arrays, here from the
two channels and the stitched labels read tile by tile (all planes; ``maps.read_tiles``): each spine's
mean in both channels and the dendrite's (dendrite voxels that are not spine) from sums, the
``"auto"`` background as the exact 5th percentile of the voxels outside every label
(:mod:`.streamed`). The PSF-corrected ratio (linear unmixing over the labels and a shell
around them) is not streamed: a chunked run above the whole-export size refuses
``psf_fwhm_um`` before it starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError
from ..morphology.ratio import AUTO_BACKGROUND_PERCENTILE
from .maps import read_region, read_tiles
from .streamed import percentile


def _tiles(tagged, structure, spine_labels, dendrite_labels):
    """(tagged, structure, spine labels, dendrite labels) of consecutive tiles (all planes)."""
    for (rows, cols), structure_band in read_tiles(structure):
        region = (slice(None), rows, cols)
        yield (read_region(tagged, region), structure_band, read_region(spine_labels, region),
               read_region(dendrite_labels, region))


def streamed_background(tagged, structure, spine_labels, dendrite_labels) -> tuple[float, float]:
    """The ``"auto"`` background of both channels: the exact
    :data:`~spinequant.morphology.ratio.AUTO_BACKGROUND_PERCENTILE` th percentile of each over
    the voxels outside every spine and dendrite label."""
    n = 0
    for _, _, spines, dendrites in _tiles(tagged, structure, spine_labels, dendrite_labels):
        n += int(np.count_nonzero((spines == 0) & (dendrites == 0)))
    if n == 0:
        raise InputError("Every voxel is spine or dendrite: no background to estimate; give the "
                         "background of both channels in ADU.")

    def outside(which):
        def values():
            for band in _tiles(tagged, structure, spine_labels, dendrite_labels):
                yield band[which][(band[2] == 0) & (band[3] == 0)]
        return values

    return tuple(percentile(outside(i), n, AUTO_BACKGROUND_PERCENTILE, channel.dtype)
                 for i, channel in ((0, tagged), (1, structure)))


def streamed_ratios(spines: pd.DataFrame, tagged, structure, spine_labels, dendrite_labels, *, config):
    """``spines`` with ``tagged_mean_intensity`` and ``rsdr`` added, and what the run records
    about the ratio (as :func:`~spinequant.pipeline.analyze.spine_ratios`, without the
    corrected ratio). ``config``: the run's :class:`~spinequant.pipeline.analyze.RatioConfig`."""
    if config.psf_fwhm_um is not None:
        raise InputError("The PSF-corrected ratio (--psf-fwhm) needs the whole volume in memory; this chunked "
                         "run is above scale.whole_export_max_voxels. Leave out --psf-fwhm (the raw rsdr "
                         "is still written).")
    background = config.background
    if background == "auto":
        background = streamed_background(tagged, structure, spine_labels, dendrite_labels)
    bg = (0.0, 0.0) if background is None else tuple(float(b) for b in background)
    n_ids = int(spines["id"].max()) + 1 if len(spines) else 1
    sums = np.zeros((2, n_ids))
    counts = np.zeros(n_ids, np.int64)
    dendrite_sums, dendrite_count = np.zeros(2), 0
    for t, s, sl, dl in _tiles(tagged, structure, spine_labels, dendrite_labels):
        inside = sl > 0
        ids = sl[inside].astype(np.int64)
        for c, channel in enumerate((t, s)):
            sums[c] += np.bincount(ids, weights=channel[inside].astype(np.float64), minlength=n_ids)[:n_ids]
        counts += np.bincount(ids, minlength=n_ids)[:n_ids]
        dendrite = (dl > 0) & ~inside
        dendrite_count += int(np.count_nonzero(dendrite))
        dendrite_sums += [float(t[dendrite].sum(dtype=np.float64)), float(s[dendrite].sum(dtype=np.float64))]
    subtracted = "no background subtracted" if background is None else f"background {list(bg)} ADU subtracted"
    info = {"definition": "(tagged_spine / structure_spine) / (tagged_dendrite / structure_dendrite), "
                          f"mean raw intensities ({subtracted})",
            "background_adu": None if background is None else list(bg)}
    ids = spines["id"].to_numpy(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums[:, ids] / counts[ids]                      # raw means per spine (both channels)
    spines = spines.copy()
    spines["tagged_mean_intensity"] = means[0]
    spines["rsdr"] = np.nan
    if dendrite_count == 0:
        info["warning"] = "No RSDR: There is no dendrite voxel: the RSDR needs the dendrite's mean in both channels."
        return spines, info
    tagged_d, structure_d = dendrite_sums / dendrite_count - np.asarray(bg)
    if tagged_d <= 0 or structure_d <= 0:
        info["warning"] = (f"No RSDR: The dendrite's mean is not positive (tagged {tagged_d:g}, structure "
                           f"{structure_d:g}); the background subtracted is too large.")
        return spines, info
    with np.errstate(divide="ignore", invalid="ignore"):
        spines["rsdr"] = ((means[0] - bg[0]) / (means[1] - bg[1])) / (tagged_d / structure_d)
    info.update(tagged_dendrite_mean=float(tagged_d + bg[0]), structure_dendrite_mean=float(structure_d + bg[1]))
    return spines, info
