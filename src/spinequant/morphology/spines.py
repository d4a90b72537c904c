"""The spine table: one row per spine, every number in µm, µm² or µm³."""

from __future__ import annotations

import cc3d
import edt
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.spatial import cKDTree

from ..boxes import box_within, grow_box
from ..errors import InputError
from ._common import as_label_image, checked_spacing, dendrite_label_image
from ._spine_geometry import SpineCrop, SpineGeometry, spine_geometry
from .classify import classify_spines
from .config import MorphologyConfig, resolve_config
from .intensity import image_channels, intensity_columns, region_intensities
from .skeleton import DendriteSkeleton, dendrite_skeleton

#: Distances from a spine to the dendrite are exact up to this far (µm); every spine kept by
#: the instance stage lies within 1 µm of its dendrite and is at most a few µm long.
DENDRITE_SEARCH_UM = 5.0

#: Distance maps are computed per spine, in its box grown by DENDRITE_SEARCH_UM, unless those
#: boxes add up to more than this many times the stack (dense spines in a small stack), where
#: two whole-stack maps are faster. Measured (work/diag, 2026-11-30): a 101 x 1024 x 1024
#: phantom with 469 spines (boxes 1.3x the stack) took 13.5 s and 0.53 GB per spine against
#: 21.6 s and 1.48 GB whole; 32 x 256 x 256 phantoms with 42-74 spines (boxes 9x) 0.96-1.46 s
#: per spine against 0.33-0.38 s whole. Same table either way.
LOCAL_BOXES_MAX_RATIO = 3.0
#: A spine's distances to the dendrite are first computed in its box grown by this much (µm)
#: and taken when they are exact there (:func:`_dendrite_distance`); most spines need no more.
NEAR_SEARCH_UM = 2.0
#: ... and never whole-stack maps above this many voxels (their two float32 maps and masks
#: would cost more memory than the analysis itself).
WHOLE_MAPS_MAX_VOXELS = 32_000_000

#: Columns of the spine table, in order (intensity columns follow when an image is given).
SPINE_COLUMNS = [
    "id", "dendrite_id", "attached", "at_edge",
    "centroid_z_um", "centroid_y_um", "centroid_x_um",
    "base_z_um", "base_y_um", "base_x_um",
    "head_z_um", "head_y_um", "head_x_um",
    "tip_z_um", "tip_y_um", "tip_x_um",
    "volume_um3", "head_volume_um3", "surface_um2", "length_um", "tip_distance_um",
    "head_diameter_um", "neck_length_um", "neck_min_diameter_um", "neck_mean_diameter_um",
    "head_neck_ratio", "has_neck", "n_heads", "position_um", "nn_distance_um", "type", "type_rule",
]

#: The columns a 3D quantity has in 2D: an area for the volume, a perimeter for the surface.
PLANAR_NAMES = {"volume_um3": "area_um2", "head_volume_um3": "head_area_um2",
                "surface_um2": "perimeter_um"}

#: Columns of the spine table of a 2D image (a plane or a projection): no z coordinates,
#: and the planar names of :data:`PLANAR_NAMES`; every other column means the same as in 3D.
SPINE_COLUMNS_2D = [PLANAR_NAMES.get(c, c) for c in SPINE_COLUMNS if not c.endswith("_z_um")]


#: How many spines :func:`measure_spines` measures between two calls of its ``progress``.
PROGRESS_EVERY = 10


def spine_columns(ndim: int) -> list[str]:
    """The spine table's columns for a 3D stack or a 2D image."""
    return SPINE_COLUMNS if ndim == 3 else SPINE_COLUMNS_2D


def measure_spines(spine_labels, dendrite_mask, spacing, image=None, *,
                   config: MorphologyConfig | dict | None = None,
                   skeleton: DendriteSkeleton | None = None, progress=None) -> pd.DataFrame:
    """Measure every spine: size, shape, position on its dendrite, type and intensity.

    Parameters
    ----------
    spine_labels : (Z, Y, X) or (Y, X) int array
        One id per spine, 0 = background (a boolean mask is split into connected pieces). A
        2D image (a single plane or a projection) is measured in the plane.
    dendrite_mask : (Z, Y, X) or (Y, X) bool or int array
        Dendrite mask or label image (one id per dendrite). Spine voxels win where both are set.
    spacing : sequence of 3 floats (z, y, x), or 2 (y, x) for a 2D image
        Voxel size in µm.
    image : array or Stack, optional
        Intensities, (Z, Y, X) or channels first (C, Z, Y, X), for the intensity columns.
    config : MorphologyConfig or dict, optional
        Type rules and thresholds (default ``rule_set="auto"``: the image network for a 2D
        image given with ``image``, the learnt classifier of the outline for a 2D image
        without, NeuronStudio's rules for a 3D stack).
    skeleton : DendriteSkeleton, optional
        Centrelines from :func:`dendrite_skeleton` of the same dendrite labels, to reuse.
    progress : callable, optional
        Called with the fraction of the spines measured, every :data:`PROGRESS_EVERY` spines
        and at the end; it may raise :class:`~spinequant.errors.Cancelled` to stop.

    Returns
    -------
    DataFrame
        One row per spine with the columns of :data:`SPINE_COLUMNS` (coordinates in µm with
        the centre of voxel (0, 0, 0) at 0; for a 2D image :data:`SPINE_COLUMNS_2D`: no z,
        ``area_um2``, ``head_area_um2`` and ``perimeter_um``), then ``<region>_<stat>_intensity[_c<k>]`` for the regions
        spine, head and neck and the statistics mean, max and integrated (sum x voxel volume).
        Definitions are in ``docs/measurements.md``.

    Examples
    --------
    >>> z, y, x = np.mgrid[:12, :40, :40]
    >>> dend = (y < 10)
    >>> spine = ((y >= 10) & (y < 25) & (abs(x - 20) <= 1) & (z == 6)).astype(int)
    >>> t = measure_spines(spine, dend, (0.5, 0.1, 0.1))
    >>> round(float(t.length_um[0]), 1), bool(t.attached[0]), t.type[0]
    (1.5, True, 'thin')
    """
    cfg = resolve_config(config)
    spines = as_label_image(spine_labels, name="The spine labels")
    sp = checked_spacing(spacing, spines.ndim)
    if spines.dtype == bool:
        spines = cc3d.connected_components(spines, connectivity=26)
    dend = dendrite_label_image(dendrite_mask, shape=spines.shape)
    channels = image_channels(image, spines.shape)
    if skeleton is None:
        skeleton = dendrite_skeleton(np.where(spines > 0, 0, dend), sp, config=cfg)

    rows, extra = [], []
    n_spines = int(spines.max()) if spines.size else 0
    for sid, box, crop in _spine_crops(spines, dend, sp):
        if progress is not None and sid % PROGRESS_EVERY == 0:
            progress(sid / max(n_spines, 1))
        g = spine_geometry(crop, sp, smoothing_iterations=cfg.smoothing_iterations,
                           min_neck_length_um=cfg.min_neck_length_um,
                           hidden_neck_ratio=cfg.hidden_neck_ratio,
                           branch_min_head_fraction=cfg.branch_min_head_fraction)
        rows.append(spine_row(sid, g, skeleton, sp, neck_ratio=cfg.neck_ratio,
                              at_edge=_touches_edge(crop.mask, crop.edges)))
        if channels is not None:
            masks = {"spine": crop.mask, "head": g.head_mask, "neck": g.neck_mask}
            extra.append(region_intensities(channels, box, masks, float(np.prod(sp))))

    if progress is not None:
        progress(1.0)
    table = pd.DataFrame(rows, columns=spine_columns(spines.ndim))
    table = table.astype({"id": np.int64, "dendrite_id": np.int64, "attached": bool,
                          "at_edge": bool, "has_neck": bool,
                          "n_heads": np.int64})
    table["nn_distance_um"] = nearest_neighbour_distance(table)
    if len(table):
        table["type"], table["type_rule"] = _types(table, spines, dend, channels, sp, cfg)
    if channels is not None:
        names = intensity_columns(len(channels))
        table = pd.concat([table, pd.DataFrame(extra or None, columns=names, dtype=float)], axis=1)
    return table


def _types(table: pd.DataFrame, spines: np.ndarray, dend: np.ndarray, channels, sp: np.ndarray,
           cfg: MorphologyConfig):
    """The type columns: the image network for a 2D image measured with its image (rule sets
    ``network`` and ``auto``), the table's rules otherwise."""
    if cfg.rule_set == "network" and (spines.ndim != 2 or channels is None):
        raise InputError("The 'network' spine type rule set looks at the image around each spine: "
                         + ("it types spines of 2D images only; for a 3D stack choose 'neuronstudio' "
                            "or 'risher'." if spines.ndim != 2 else
                            "pass the image to measure_spines, or choose 'learnt'."))
    if spines.ndim == 2 and channels is not None and cfg.rule_set in ("network", "auto"):
        from .type_network import classify_by_network

        return classify_by_network(channels[0], spines, table, sp, dendrite=dend,
                                   filopodia_max_head_um=cfg.filopodia_max_head_um)
    return classify_spines(table, config=cfg)


def spine_row(spine_id: int, g: SpineGeometry, skeleton: DendriteSkeleton, sp: np.ndarray, *,
              neck_ratio: float, at_edge: bool) -> dict:
    """One row of the spine table, keyed by the columns of :func:`spine_columns` (``nn_distance_um``
    and the type columns are filled in later, over the whole table)."""
    dendrite_id, position = _place_on_dendrite(g, skeleton)
    row = {"id": spine_id, "dendrite_id": dendrite_id, "attached": g.attached, "at_edge": at_edge}
    for point in ("centroid", "base", "head", "tip"):
        row.update(zip(_axis_columns(point, len(sp)), getattr(g, f"{point}_um")))
    row.update({
        "volume_um3": g.volume_um3, "head_volume_um3": float(g.head_mask.sum() * np.prod(sp)),
        "surface_um2": g.surface_um2, "length_um": g.length_um,
        "tip_distance_um": g.tip_distance_um if np.isfinite(g.tip_distance_um) else np.nan,
        "head_diameter_um": g.head_diameter_um, "neck_length_um": g.neck_length_um,
        "neck_min_diameter_um": g.neck_min_diameter_um,
        "neck_mean_diameter_um": g.neck_mean_diameter_um, "head_neck_ratio": g.head_neck_ratio,
        "has_neck": bool(g.head_neck_ratio > neck_ratio), "n_heads": g.n_heads, "position_um": position,
        "nn_distance_um": np.nan, "type": "", "type_rule": "",
    })
    return row if len(sp) == 3 else {PLANAR_NAMES.get(k, k): v for k, v in row.items()}


def _spine_crops(spines: np.ndarray, dend: np.ndarray, sp: np.ndarray):
    """(id, box, :class:`SpineCrop`) for every spine, its box grown by one voxel. Spine voxels
    never count as dendrite (labels made elsewhere may overlap); that is applied crop by crop,
    so no stack-sized copy of the dendrite labels is made."""
    aniso = tuple(sp)
    boxes = ndimage.find_objects(spines)
    search = np.ceil(DENDRITE_SEARCH_UM / sp).astype(int)
    wide = [None if b is None else grow_box(b, search, spines.shape) for b in boxes]
    boxed = sum(int(np.prod([s.stop - s.start for s in w])) for w in wide if w is not None)
    whole = boxed > LOCAL_BOXES_MAX_RATIO * spines.size and spines.size <= WHOLE_MAPS_MAX_VOXELS
    if whole:
        not_dend = (dend == 0) | (spines > 0)
        # Outside the volume counts as background: a spine cut by the edge is no wider than shown.
        r_full = edt.edt(spines, anisotropy=aniso, black_border=True)
        d_full = edt.edt(not_dend.view(np.uint8), anisotropy=aniso) if not not_dend.all() else None
    for sid, box in enumerate(boxes, start=1):
        if box is None:
            continue
        box = grow_box(box, 1, spines.shape)
        mask = spines[box] == sid
        dendrite = np.where(spines[box] > 0, 0, dend[box])
        if whole:
            r_spine = r_full[box]
            d_dend = d_full[box] if d_full is not None else np.full(mask.shape, np.inf)
        else:
            r_spine = edt.edt(mask.view(np.uint8), anisotropy=aniso, black_border=True)
            d_dend = _dendrite_distance(spines, dend, wide[sid - 1], box, aniso)
        yield sid, box, SpineCrop(
            mask=mask, dendrite=dendrite, r_spine=r_spine, d_dend=d_dend,
            offset=np.array([s.start for s in box]),
            edges=tuple((s.start == 0, s.stop == n) for s, n in zip(box, spines.shape)),
        )


def _dendrite_distance(spines: np.ndarray, dend: np.ndarray, wide, box, aniso) -> np.ndarray:
    """Distance (µm) to the nearest dendrite voxel (not spine) within ``wide``, read out over
    ``box``.

    Computed first in ``box`` grown by :data:`NEAR_SEARCH_UM` (a few times fewer voxels than
    ``wide`` for a typical spine): a distance found there is the one ``wide`` gives wherever it
    is no longer than the way out of the near box (on a side where ``wide`` reaches further),
    since every voxel beyond is at least that far. Otherwise, for any voxel of ``box``, the
    whole of ``wide`` is used."""
    sp = np.asarray(aniso, float)
    near = box_within(grow_box(box, np.ceil(NEAR_SEARCH_UM / sp).astype(int), spines.shape), wide)
    outer = tuple(slice(0, w.stop - w.start) for w in wide)
    if near != outer:
        d = _distance_in(spines[wide][near], dend[wide][near], box_within(box_within(box, wide), near), aniso)
        if np.all(d <= _way_out(box_within(box, wide), near, outer, sp)):
            return d
    return _distance_in(spines[wide], dend[wide], box_within(box, wide), aniso)


def _distance_in(spines: np.ndarray, dend: np.ndarray, inner, aniso) -> np.ndarray:
    """Distance (µm) to the nearest voxel of ``dend`` that is no spine voxel, within the given
    crops, read out over ``inner``; inf where there is none."""
    region = (dend == 0) | (spines > 0)
    if region.all():
        return np.full(tuple(b.stop - b.start for b in inner), np.inf)
    return edt.edt(region.view(np.uint8), anisotropy=aniso)[inner]


def _way_out(box, near, outer, sp: np.ndarray) -> np.ndarray:
    """For every voxel of ``box`` (all three in ``outer``'s coordinates), the distance (µm) to
    the nearest voxel of ``outer`` outside ``near``; inf when ``near`` is all of ``outer``."""
    way = np.full(tuple(b.stop - b.start for b in box), np.inf)
    for axis, (b, n, o) in enumerate(zip(box, near, outer)):
        index = np.arange(b.start, b.stop)
        side = np.full(index.shape, np.inf)
        if n.start > o.start:
            side = np.minimum(side, (index - n.start + 1) * sp[axis])
        if n.stop < o.stop:
            side = np.minimum(side, (n.stop - index) * sp[axis])
        shape = [1] * len(box)
        shape[axis] = -1
        way = np.minimum(way, side.reshape(shape))
    return way


def _axis_columns(point: str, ndim: int) -> list[str]:
    """``<point>_z_um``, ``<point>_y_um``, ``<point>_x_um`` (no z in 2D)."""
    return [f"{point}_{a}_um" for a in "zyx"[3 - ndim:]]


def _touches_edge(mask: np.ndarray, edges) -> bool:
    """Whether the spine has voxels on a face of the volume (it may be cut there)."""
    for axis, (lo, hi) in enumerate(edges):
        index = [slice(None)] * mask.ndim
        for side, flag in ((0, lo), (-1, hi)):
            index[axis] = side
            if flag and mask[tuple(index)].any():
                return True
    return False


def _place_on_dendrite(g, skeleton: DendriteSkeleton):
    """Dendrite id and path position of the skeleton node nearest the spine's base."""
    node = skeleton.nearest_node(g.base_um, g.dendrite_id or None)
    if node < 0:
        return g.dendrite_id, np.nan
    return int(skeleton.label[node]), float(skeleton.position_um[node])


def nearest_neighbour_distance(table: pd.DataFrame) -> np.ndarray:
    """Distance (µm) from each head centre to the nearest other head centre."""
    if len(table) < 2:
        return np.full(len(table), np.nan)
    pts = table[[c for c in ("head_z_um", "head_y_um", "head_x_um") if c in table]].to_numpy()
    d, _ = cKDTree(pts).query(pts, k=2)
    return d[:, 1]
