"""Geometry of one spine inside its bounding box: base, tip, centre path, head and neck.

Every step works on the spine's padded bounding box only; the distance maps it reads
(``r_spine``, ``d_dend``) are computed once for the whole volume by the caller. The same code
measures a spine in a 2D image (a plane or a projection): spheres become discs, the volume
an area and the marching-cubes surface the marching-squares perimeter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours, marching_cubes, mesh_surface_area

from ._common import full_footprint, half_extent, ray_exit, smooth_polyline
from ._geodesic import geodesic
from ._heads import count_heads

#: Mean overshoot of a distance to outside voxel centres, as a fraction of the voxel extent
#: across the axis (calibrated on rasterised balls and cylinders, see _slab_radius).
_OVERSHOOT = 0.15
#: The same in a 2D image, where a section is a line of pixels across the axis: a pixel-aligned
#: edge puts the nearest outside pixel centre half a pixel beyond it (checked on the necks of
#: projected phantoms, benchmarks/measure_accuracy.py --2d).
_OVERSHOOT_2D = 0.5


@dataclass
class SpineCrop:
    """The arrays of one spine's padded bounding box."""

    mask: np.ndarray      # this spine's voxels
    dendrite: np.ndarray  # dendrite labels (0 = none)
    r_spine: np.ndarray   # distance to the nearest voxel outside this spine (µm)
    d_dend: np.ndarray    # distance to the nearest dendrite voxel (µm; inf without dendrite)
    offset: np.ndarray    # voxel index of the crop's corner in the full volume
    edges: tuple = ((False, False),) * 3  # per axis: does the box reach the volume's low/high face


@dataclass
class SpineGeometry:
    attached: bool
    dendrite_id: int
    base_um: np.ndarray
    tip_um: np.ndarray
    head_um: np.ndarray
    centroid_um: np.ndarray
    volume_um3: float     # area (µm²) in 2D
    surface_um2: float    # perimeter (µm) in 2D
    length_um: float
    tip_distance_um: float
    head_diameter_um: float
    neck_length_um: float
    neck_min_diameter_um: float
    neck_mean_diameter_um: float
    head_neck_ratio: float
    n_heads: int
    head_mask: np.ndarray
    neck_mask: np.ndarray


def spine_geometry(crop: SpineCrop, sp: np.ndarray, *, smoothing_iterations: int,
                   min_neck_length_um: float, hidden_neck_ratio: float = np.inf,
                   branch_min_head_fraction: float = 0.6) -> SpineGeometry:
    """Measure one spine (see ``docs/measurements.md`` for the definitions).

    base -> (centre path) -> head centre -> (straight on) -> tip: the length is the path from
    the base surface to the centre of the largest inscribed sphere, continued in the same
    direction to where the ray leaves the spine. Head and neck widths use one estimator
    (:func:`_slab_radius`), so a uniform cylinder has a head/neck ratio of 1.
    """
    mask = crop.mask
    finest = float(sp.min())
    voxels = np.argwhere(mask)
    voxels_um = voxels * sp
    base_set, attached, dendrite_id = _base(crop, voxels, sp)
    width = np.where(mask, _background_distance(crop, sp), 0.0)
    voxel_width = width[tuple(voxels.T)]
    path = _centre_path(crop, voxels, width, voxel_width, base_set, sp, smoothing_iterations)
    ahead = _head_direction(crop, path, sp)
    head_diameter = max(2.0 * _ball_radius(voxels_um, voxel_width, path.head_um, path.head_radius), finest)
    head_width = max(2.0 * _slab_radius(voxels_um, voxel_width, path.head_um[None], ahead[None], sp,
                                        np.array([path.head_radius]))[0], finest)
    beyond, tip = ray_exit(mask, path.head_um, ahead, sp)
    neck = _neck(crop, voxels, voxels_um, voxel_width, width, path, ahead, sp,
                 neck_end_um=path.arc_um[-1] - 0.5 * head_diameter, head_width=head_width,
                 min_neck_length_um=min_neck_length_um, hidden_neck_ratio=hidden_neck_ratio)
    head_mask = mask & ~neck.mask
    # A head smaller than a z step loses its rim in the labels and its inscribed sphere reads
    # small; its volume does not, so the diameter of a sphere of the head's volume is a
    # second lower bound (on phantoms at 0.094/0.5 µm the larger of the two errs 0.03 µm
    # median against 0.10 µm for the inscribed sphere alone).
    head_diameter = max(head_diameter, equivalent_diameter(float(head_mask.sum() * np.prod(sp)), mask.ndim))
    # A spine that does not touch its dendrite (a network's map often leaves the faint neck
    # out) still starts at the dendrite's surface: its length spans the gap too.
    gap = 0.0 if attached else _surface_gap(crop.d_dend[tuple(path.voxels[0])], path.outward, sp)
    origin = crop.offset * sp
    return SpineGeometry(
        attached=attached, dendrite_id=dendrite_id, base_um=path.base_um + origin,
        tip_um=path.head_um + beyond * ahead + origin, head_um=path.head_um + origin,
        centroid_um=voxels_um.mean(axis=0) + origin,
        volume_um3=float(len(voxels) * np.prod(sp)), surface_um2=surface_area(mask, sp),
        length_um=float(path.arc_um[-1] + beyond + gap), tip_distance_um=float(crop.d_dend[tip]),
        head_diameter_um=float(head_diameter), neck_length_um=neck.length_um,
        neck_min_diameter_um=neck.min_diameter_um, neck_mean_diameter_um=neck.mean_diameter_um,
        head_neck_ratio=neck.head_neck_ratio, head_mask=head_mask, neck_mask=neck.mask,
        n_heads=count_heads(mask, crop.r_spine, base_set, sp, min_head_fraction=branch_min_head_fraction),
    )


@dataclass
class _CentrePath:
    """The path through the middle of a spine, from its base to its head centre."""

    voxels: np.ndarray    # (K, ndim) voxel indices in the crop, base first
    points_um: np.ndarray  # (K, ndim) smoothed positions, the last one the head centre
    along_um: np.ndarray  # (K,) path length from the first point
    arc_um: np.ndarray    # (K,) path length from the spine's base surface (half a voxel more)
    outward: np.ndarray   # direction out of the spine at its base (not normalised)
    base_um: np.ndarray   # where the path leaves the spine at its base
    head_um: np.ndarray   # head centre
    head_radius: float    # largest inscribed radius (uncorrected)


def _background_distance(crop: SpineCrop, sp: np.ndarray) -> np.ndarray:
    """Distance (µm) to background with the dendrite counted as inside: a neck's width is
    measured against background, not against the dendrite it stands on."""
    inside = crop.mask | (crop.dendrite > 0)
    if inside.all():  # no background in the box: fall back on the spine's own distances
        return crop.r_spine.astype(float)
    # scipy is quicker than edt on boxes this small (no thread start-up). Outside the volume
    # is background; the box's other faces are not.
    pad = [(int(lo), int(hi)) for lo, hi in crop.edges]
    distance = ndimage.distance_transform_edt(np.pad(inside, pad), sampling=tuple(sp))
    return distance[tuple(slice(lo, distance.shape[k] - hi) for k, (lo, hi) in enumerate(pad))]


def _centre_path(crop, voxels, width, voxel_width, base_set, sp, smoothing_iterations) -> _CentrePath:
    """One cost-weighted distance map from the base orders the voxels outwards and gives a
    path through the middle of the spine (the cost falls with the distance to background)."""
    mcp, from_base = geodesic(crop.mask, (voxel_width.max() / np.maximum(width, 1e-6)) ** 2, base_set, sp)
    head_um, head_voxel, head_radius = _head_centre(voxels, crop.r_spine[tuple(voxels.T)],
                                                    from_base[tuple(voxels.T)], sp)
    path = np.array(mcp.traceback(head_voxel))
    points = smooth_polyline(path * sp, smoothing_iterations)
    points[-1] = head_um
    arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    outward = (points[0] - points[min(3, len(points) - 1)] if len(points) > 1
               else -_away(crop, path[0], sp))
    base_cap = half_extent(outward, sp)
    return _CentrePath(voxels=path, points_um=points, along_um=arc, arc_um=arc + base_cap, outward=outward,
                       base_um=points[0] + base_cap * _unit(outward), head_um=head_um,
                       head_radius=head_radius)


def _head_direction(crop: SpineCrop, path: _CentrePath, sp: np.ndarray) -> np.ndarray:
    """Unit direction of the path as it enters the head (over the head's last radius), or
    away from the dendrite where the path is too short to say."""
    points = path.points_um
    back = int(np.searchsorted(path.along_um, path.along_um[-1] - path.head_radius))
    ahead = (path.head_um - points[min(back, len(points) - 2)] if len(points) > 1
             else _away(crop, path.voxels[0], sp))
    if np.linalg.norm(ahead) < 0.5 * float(sp.min()):  # head centre on the base
        ahead = _away(crop, path.voxels[-1], sp)
    return _unit(ahead)


@dataclass
class _Neck:
    length_um: float = 0.0
    min_diameter_um: float = np.nan
    mean_diameter_um: float = np.nan
    head_neck_ratio: float = np.nan
    mask: np.ndarray | None = None


def _neck(crop, voxels, voxels_um, voxel_width, width, path, ahead, sp, *, neck_end_um,
          head_width, min_neck_length_um, hidden_neck_ratio) -> _Neck:
    """The neck: from the base to where the head's inscribed sphere begins (``neck_end_um``
    along the path), with its widths and its voxels."""
    finest = float(sp.min())
    points, arc = path.points_um, path.arc_um
    if neck_end_um >= min_neck_length_um:
        on_neck = arc <= neck_end_um
        on_neck[0] = True
        tangent = np.gradient(points, axis=0) if len(points) > 1 else ahead[None]
        tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
        radii = _slab_radius(voxels_um, voxel_width, points[on_neck], tangent[on_neck], sp,
                             width[tuple(path.voxels[on_neck].T)])
        widths = np.maximum(2.0 * radii, finest)
        # Each voxel belongs to the part (neck or head) of its nearest path point.
        nearest = np.argmin(np.linalg.norm(voxels_um[:, None, :] - points[None], axis=2), axis=1)
        mask = np.zeros_like(crop.mask)
        mask[tuple(voxels[arc[nearest] <= neck_end_um].T)] = True
        return _Neck(float(neck_end_um), float(widths.min()), float(widths.mean()),
                     head_width / float(widths.mean()), mask)
    neck = _Neck(mask=np.zeros_like(crop.mask))
    if len(points) > 1:
        # A neck shorter than the resolution (often one pointing along z, hidden between two
        # planes) still shows as a clear waist where the spine meets the dendrite: the width
        # there is the neck's diameter, its length unresolved (0). A slight waist is a stubby
        # spine's, hence the stricter ratio.
        tangent = _unit(points[1] - points[0])[None]
        base_width = max(2.0 * float(_slab_radius(voxels_um, voxel_width, points[:1], tangent, sp,
                                                  width[tuple(path.voxels[:1].T)])[0]), finest)
        if head_width / base_width >= hidden_neck_ratio:
            neck.min_diameter_um = neck.mean_diameter_um = base_width
            neck.head_neck_ratio = head_width / base_width
    return neck


def _surface_gap(centre_distance: float, direction: np.ndarray, sp: np.ndarray) -> float:
    """Gap (µm) between a detached spine's base surface and the dendrite's surface, from the
    distance between the two voxel centres (each surface lies half a voxel out)."""
    if not np.isfinite(centre_distance):
        return 0.0
    return max(float(centre_distance) - 2.0 * half_extent(direction, sp), 0.0)


def equivalent_diameter(size: float, ndim: int) -> float:
    """Diameter of the ball (3D, ``size`` in µm³) or disc (2D, ``size`` in µm²) of that size."""
    return (6.0 * size / np.pi) ** (1 / 3) if ndim == 3 else (4.0 * size / np.pi) ** 0.5


def surface_area(mask: np.ndarray, sp: np.ndarray) -> float:
    """Area (µm²) of the marching-cubes surface of ``mask``, its base included; in 2D the
    length (µm) of its marching-squares outline (the 0.5 iso-line, as the ROI export draws it)."""
    if not mask.any():
        return 0.0
    box = ndimage.find_objects(mask.view(np.uint8))[0]
    padded = np.pad(mask[box], 1).astype(np.float32)
    if mask.ndim == 2:
        return float(sum(np.linalg.norm(np.diff(c * sp, axis=0), axis=1).sum()
                         for c in find_contours(padded, 0.5)))
    verts, faces, _, _ = marching_cubes(padded, level=0.5, spacing=tuple(sp))
    return float(mesh_surface_area(verts, faces))


def _base(crop: SpineCrop, vox: np.ndarray, sp: np.ndarray):
    """Voxels where the spine meets its dendrite, whether it touches, and the dendrite id."""
    m, dend = crop.mask, crop.dendrite
    touching = m & ndimage.binary_dilation(dend > 0, full_footprint(m.ndim))
    if touching.any():
        patches, n = ndimage.label(touching, full_footprint(m.ndim))
        if n > 1:
            # A head that leans on the shaft touches it too: the base is the contact patch
            # farthest from the widest point (the head), where the neck starts.
            widest = vox[np.argmax(crop.r_spine[tuple(vox.T)])]
            cells = np.argwhere(touching)
            dist = np.linalg.norm((cells - widest) * sp, axis=1)
            near = ndimage.minimum(dist, patches[tuple(cells.T)], np.arange(1, n + 1))
            touching = patches == 1 + int(np.argmax(near))
        # The box is the spine's plus one voxel: its dendrite voxels are those at the base.
        counts = np.bincount(dend[dend > 0])
        return [tuple(v) for v in np.argwhere(touching)], True, int(np.argmax(counts))
    d = crop.d_dend[tuple(vox.T)]
    if np.isfinite(d).any():
        return [tuple(v) for v in vox[d <= d.min() + 1e-6]], False, 0
    # No dendrite anywhere: the spine's base is the end farthest from its widest point.
    _, far = geodesic(m, 1.0, [tuple(vox[np.argmax(crop.r_spine[tuple(vox.T)])])], np.ones(m.ndim))
    return [tuple(vox[np.argmax(far[tuple(vox.T)])])], False, 0


def _head_centre(vox, r_in, g_vox, sp):
    """Centre (µm in the crop) of the largest inscribed sphere, the spine voxel nearest it, and
    the largest inscribed radius (uncorrected).

    Among voxels within half a voxel of the widest, the one farthest from the base is taken
    (a neck as wide as the head puts the head at the outer end); the centre is the centroid of
    the core around it (distance >= half the maximum, within one radius).
    """
    h = float(sp.min())
    pts = vox * sp
    r_max = float(r_in.max())
    k = int(np.argmax(np.where(r_in >= r_max - 0.5 * h, g_vox, -np.inf)))
    core = (r_in >= 0.5 * r_max) & (np.linalg.norm(pts - pts[k], axis=1) <= r_max)
    centre = pts[core].mean(axis=0)
    return centre, tuple(vox[int(np.argmin(np.linalg.norm(pts - centre, axis=1)))]), r_max


def _ball_radius(pts, r, centre, r_max) -> float:
    """Radius of the largest sphere around ``centre`` that stays clear of background.

    The distance map is a cone around the true centre, sampled at voxel centres that rarely
    hit it: distance + offset from the centre is averaged over the inner half of the sphere.
    No overshoot correction: on phantom labels (a voxel is labelled when half filled, as a
    probability map thresholded at 0.5 would), this reads balls of 0.2-0.6 µm radius within
    +-0.04 µm at 0.075/0.28 µm voxels; on labels sampled at voxel centres it reads about half
    a voxel high.
    """
    dist = np.linalg.norm(pts - centre, axis=1)
    inner = dist <= dist.min() + 0.5 * r_max
    return float(np.mean(r[inner] + dist[inner]))


def _slab_radius(pts, r, centres, tangents, sp, guesses) -> np.ndarray:
    """Radius of the cross-section through each centre, perpendicular to its tangent.

    The distance map is sampled at voxel centres that rarely lie on the axis; for voxels in a
    one-voxel slab across the axis, distance + offset from the axis estimates the radius.
    The mean over the inner half of the section, minus the mean overshoot of distances to
    outside voxel centres (``_OVERSHOOT`` x the voxel extent across the axis), is returned.
    Calibrated on balls and cylinders of 0.1-0.6 µm radius at 0.094/0.5, 0.075/0.28 and
    0.1/0.2 µm voxels (median error within +-0.02 µm).
    """
    h = float(sp.min())
    d = pts[None, :, :] - centres[:, None, :]
    along = np.einsum("knj,kj->kn", d, tangents)
    perp = np.linalg.norm(d - along[..., None] * tangents[:, None, :], axis=2)
    half = 0.5 * np.abs(tangents) @ sp
    sel = (np.abs(along) <= half[:, None]) & (perp <= np.maximum(0.5 * guesses, h)[:, None])
    nearest = np.argmin(np.linalg.norm(d, axis=2), axis=1)
    sel[np.arange(len(centres)), nearest] |= ~sel.any(axis=1)
    mean = np.where(sel, r[None, :] + perp, 0.0).sum(axis=1) / sel.sum(axis=1)
    overshoot = _OVERSHOOT if len(sp) == 3 else _OVERSHOOT_2D
    return mean - overshoot * _cross_extent(tangents, sp)


def _cross_extent(tangents: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """Mean voxel extent (µm) over directions perpendicular to each tangent.

    Over the unit circle perpendicular to t, the component along axis i has amplitude
    sqrt(1 - t_i^2) and mean absolute value 2/pi times that. In 2D the one perpendicular
    direction has exactly that amplitude.
    """
    factor = 2 / np.pi if tangents.shape[1] == 3 else 1.0
    return factor * np.sqrt(np.clip(1.0 - tangents ** 2, 0.0, 1.0)) @ sp


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.zeros(len(v))


def _away(crop: SpineCrop, voxel, sp: np.ndarray) -> np.ndarray:
    """Direction away from the dendrite at ``voxel`` (µm units), or +y without dendrite."""
    d = np.where(np.isfinite(crop.d_dend), crop.d_dend, 0.0)
    lo = [max(int(v) - 1, 0) for v in voxel]
    g = []
    for axis in range(d.ndim):
        i_lo = list(voxel)
        i_hi = list(voxel)
        i_lo[axis] = lo[axis]
        i_hi[axis] = min(int(voxel[axis]) + 1, d.shape[axis] - 1)
        span = (i_hi[axis] - i_lo[axis]) * sp[axis]
        g.append((d[tuple(i_hi)] - d[tuple(i_lo)]) / span if span > 0 else 0.0)
    g = np.array(g)
    plus_y = np.eye(d.ndim)[d.ndim - 2]
    return g if np.linalg.norm(g) > 0 else plus_y
