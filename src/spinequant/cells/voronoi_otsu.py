"""Voronoi-Otsu labelling of cells in 3D, with every size in µm (anisotropic voxels).

0. Optionally even out uneven illumination: divide by a wide Gaussian blur of the image.
1. Smooth the image twice with Gaussians whose sigmas are given in µm (so per axis in
   voxels): the *outline* image and the *spot* image.
2. Foreground: the outline image above Otsu's threshold.
3. Seeds: local maxima of the spot image inside the foreground, one per cell.
4. Every foreground voxel goes to a seed: the nearest in µm (flooded from the seeds within
   the foreground, so each cell is one piece), or by a seeded watershed of the spot image.
   Foreground pieces that hold no seed become cells of their own.
5. Objects smaller than a volume in µm³ are removed; ids are 1..N in scan order.

The method is CellSeg3D's choice for post-processing (Achard et al. 2024, after clEsperanto's
``voronoi_otsu_labeling``); it separates touching round cells better than connected components.
"""

from __future__ import annotations

import cc3d
import edt
import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from ..validate import check_image_values, check_spacing
from .config import CellConfig


def sigma_voxels(sigma_um, spacing) -> tuple[float, float, float]:
    """A sigma in µm (one value or z, y, x) as voxels per axis."""
    sigma = np.broadcast_to(np.asarray(sigma_um, float), (3,))
    return tuple(float(s / d) for s, d in zip(sigma, spacing))


def foreground(image: np.ndarray, spacing, config: CellConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """(mask, outline image, threshold): the outline image above Otsu's threshold x the factor."""
    outline = ndi.gaussian_filter(image.astype(np.float32, copy=False), sigma_voxels(config.outline_sigma_um, spacing),
                                  mode="nearest")
    level = float(threshold_otsu(outline)) * config.threshold_factor
    return outline > level, outline, level


def flatten(image: np.ndarray, spacing, sigma_um: float) -> np.ndarray:
    """``image`` less its dark level (1st percentile) over its Gaussian blur of ``sigma_um``
    (µm): a multiplicative illumination that changes slowly in space cancels out. 10 % of the
    mean blur is added below the fraction, so empty dark regions do not become bright."""
    img = image.astype(np.float32)
    img -= np.float32(np.percentile(img, 1))
    local = ndi.gaussian_filter(img, sigma_voxels(sigma_um, spacing), mode="nearest")
    local += np.float32(0.1 * local.mean())
    img /= local
    return img


def seeds(spot: np.ndarray, mask: np.ndarray, spacing, config: CellConfig) -> np.ndarray:
    """Labelled seed voxels 1..K: maxima of ``spot`` within ``config.spot_radius_um`` inside ``mask``.

    A plateau (equal neighbours) gives one seed per connected piece of it.
    """
    fp = _footprint(config.spot_radius_um, spacing)
    peaks = (spot == ndi.maximum_filter(spot, footprint=fp, mode="nearest")) & mask
    return cc3d.connected_components(peaks, connectivity=26).astype(np.int32)


def _footprint(radius_um: float, spacing) -> np.ndarray:
    if radius_um <= 0:
        return np.ones((3, 3, 3), bool)
    r = [max(1, int(np.floor(radius_um / d))) for d in spacing]
    grid = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    return sum((g * d / radius_um) ** 2 for g, d in zip(grid, spacing)) <= 1.0 + 1e-9


def cells_from_probability(image, probability: np.ndarray, spacing, config: CellConfig | None = None, *,
                           self_supervised: bool = False, calibrated: float | None = None) -> tuple[np.ndarray, dict]:
    """Cell labels of a network's foreground ``probability`` (above the config's threshold),
    split between seeds at the maxima of the smoothed ``image`` as :func:`voronoi_otsu` does.
    The ``"auto"`` threshold is Otsu's for ``self_supervised`` maps (WNet3D's class map), else
    the model card's ``calibrated`` threshold when it has one, else 0.5."""
    config = config or CellConfig()
    level = config.probability_threshold
    if level == "auto":
        level = "otsu" if self_supervised else (0.5 if calibrated is None else float(calibrated))
    level = float(threshold_otsu(np.asarray(probability))) if level == "otsu" else float(level)
    image = np.asarray(image)
    spacing = check_spacing(spacing, ndim=3, where="the cell volume")
    work = (flatten(image, spacing, config.flatten_sigma_um) if config.flatten_sigma_um is not None
            else image.astype(np.float32, copy=False))
    labels, found = split_foreground(work, np.asarray(probability) > level, spacing, config)
    return labels, {"probability_threshold": level, **found}


def voronoi_otsu(image, spacing, config: CellConfig | None = None) -> tuple[np.ndarray, dict]:
    """Cell labels (int32, 0 = background) of a 3D ``image`` and what was found on the way.

    ``spacing`` is the voxel size (z, y, x) in µm. The dict holds the Otsu threshold (in the
    outline image's units), the number of seeds, of seedless pieces and of objects removed as
    too small.
    """
    config = config or CellConfig()
    image = np.asarray(image)
    spacing = check_spacing(spacing, ndim=3, where="the cell volume")
    check_image_values(image, where="the cell volume")
    work = (flatten(image, spacing, config.flatten_sigma_um) if config.flatten_sigma_um is not None
            else image.astype(np.float32, copy=False))
    mask, outline, level = foreground(work, spacing, config)
    separation = foreground_separation(outline, mask)
    del outline
    labels, found = split_foreground(work, mask, spacing, config)
    return labels, {"otsu_threshold": level, "foreground_separation": separation, **found}


#: Below this :func:`foreground_separation` the foreground does not stand out from the
#: background: Otsu's threshold always splits a histogram, and on noise alone it cuts at about
#: the mean (separation 2.7 for Poisson or Gaussian noise, 3.4 with a linear gradient, about half
#: the volume foreground). The nuclei phantoms give 6.6 at SNR 2, 10.4 at SNR 4 and 13-24 at the
#: presets' SNR (seeds 100-101; measured 2026-11-30).
MIN_FOREGROUND_SEPARATION = 4.5


def foreground_separation(outline: np.ndarray, mask: np.ndarray) -> float:
    """How far the foreground's mean lies above the background's, in standard deviations of
    the background (of the smoothed outline image); NaN when either class is empty.

    >>> rng = np.random.default_rng(0)
    >>> noise = rng.normal(100, 10, (20, 40, 40)).astype(np.float32)
    >>> round(foreground_separation(noise, noise > noise.mean()), 2)   # theory: 1.596 / 0.603
    2.65
    """
    fg, bg = outline[mask], outline[~mask]
    if fg.size == 0 or bg.size == 0:
        return float("nan")
    spread = float(bg.std())
    return float((fg.mean() - bg.mean()) / spread) if spread > 0 else float("inf")


def split_foreground(work: np.ndarray, mask: np.ndarray, spacing, config: CellConfig) -> tuple[np.ndarray, dict]:
    """Cells of a foreground ``mask``: seeds at maxima of ``work`` smoothed by the spot sigma,
    every foreground voxel given to a seed (``config.split``), seedless pieces kept as cells,
    small objects removed. Shared by the classical method and the networks' foregrounds."""
    spot = ndi.gaussian_filter(work.astype(np.float32, copy=False), sigma_voxels(config.spot_sigma_um, spacing),
                               mode="nearest")
    markers = seeds(spot, mask, spacing, config)
    n_seeds = int(markers.max())
    if config.split == "voronoi":
        dist = edt.edt(markers == 0, anisotropy=spacing, black_border=False, parallel=1)
        labels = watershed(dist, markers, mask=mask)
    else:
        labels = watershed(-spot, markers, mask=mask)
    # foreground pieces that no seed reached (no maximum inside them) are cells of their own
    rest = cc3d.connected_components(mask & (labels == 0), connectivity=26)
    n_rest = int(rest.max())
    pieces = rest > 0
    labels[pieces] = rest[pieces].astype(labels.dtype) + n_seeds
    labels, n_small = remove_small(labels, spacing, config.min_volume_um3)
    return labels, {"n_seeds": n_seeds, "n_seedless_pieces": n_rest,
                    "n_removed_small": n_small, "foreground_fraction": float(mask.mean())}


def remove_small(labels: np.ndarray, spacing, min_volume_um3: float) -> tuple[np.ndarray, int]:
    """Objects of at least ``min_volume_um3`` renumbered 1..N in scan order; how many were removed."""
    flat = labels.ravel()
    counts = np.bincount(flat)
    big = counts * float(np.prod(spacing)) >= min_volume_um3
    big[0] = False
    # number the kept objects by their first voxel, so ids follow the scan order
    ids, first = np.unique(flat, return_index=True)
    kept = ids[(ids > 0) & big[ids]]
    kept = kept[np.argsort(first[ids > 0][big[ids[ids > 0]]], kind="stable")]
    present = ids[ids > 0]
    lut = np.zeros(counts.size, np.int32)
    lut[kept] = np.arange(1, kept.size + 1)
    return lut[labels], int(present.size - kept.size)
