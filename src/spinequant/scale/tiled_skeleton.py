"""The skeleton of a dendrite too large for memory, thinned tile by tile (issue #15).

:func:`~spinequant.morphology.dendrite_skeleton` thins a dendrite's whole bounding box (about
10 bytes a voxel: the crop, its distance transform, the thinning); on a whole neuron that
box is the volume. Here the box is cut into tiles in y/x (all planes, as the blocks are):

1. Each tile is read with a margin and thinned (Lee's thinning, as in memory). Thinning
   peels the mask one layer per pass, so a voxel's fate depends only on the mask within about
   the largest radius around it; the cut edges of the read window are peeled too, and that
   reaches no deeper than the radius of the mask they cut. With a margin of more than twice
   the largest distance-transform value in the window (checked per tile; the tile is read
   again with a wider margin if not), the skeleton voxels in the tile's core are those of the
   whole box (docs/scale.md gives how closely). Each core, widened by one voxel so that
   neighbouring cores' voxels overlap and join, keeps its skeleton voxels as coordinates,
   with the distance transform at each.
2. The tree is built on all those voxels (few: one line through a tube), and
   :func:`~spinequant.morphology.skeleton.tree_part` prunes, smooths and roots it exactly as
   in memory; it asks the mask only (:class:`TiledMask`) for a ray's exit near each free end
   (a small window around the end) and for the mask voxels nearest each node (tile by tile).

Peak memory: one tile with its margin (about ``max_voxels``, 10 bytes a voxel) plus the Zarr
chunks decoded to read it and the skeleton.
"""

from __future__ import annotations

import edt
import numpy as np
from scipy.spatial import cKDTree
from skimage.morphology import skeletonize

from ..boxes import grow_box
from ..morphology._common import ray_exit
from ..morphology.config import resolve_config
from ..morphology.skeleton import DendriteSkeleton, join_parts, tree_part
from .maps import read_region

#: The first margin tried around a tile (y/x pixels); widened per tile when the mask is thicker.
FIRST_MARGIN_PX = 16


class TiledMask:
    """One dendrite's mask inside its ``box`` of a label volume, read a window at a time.

    Answers the two questions :func:`~spinequant.morphology.skeleton.tree_part` asks of the
    mask (see :class:`~spinequant.morphology.skeleton.WholeMask`), in the box's voxel frame.
    """

    def __init__(self, labels, box: tuple, label: int, tiles: list[tuple]):
        self.labels, self.box, self.label, self.tiles = labels, box, int(label), tiles
        self.shape = tuple(s.stop - s.start for s in box)
        self.ndim = len(self.shape)

    def read(self, region: tuple) -> np.ndarray:
        """Boolean mask of ``region`` (slices in the box's frame)."""
        return read_region(self.labels, tuple(slice(r.start + b.start, r.stop + b.start)
                                              for r, b in zip(region, self.box))) == self.label

    def exit_um(self, start_vox, direction, sp) -> float:
        """The whole-box ray exit, read from a window around the start that grows until the
        ray leaves the mask inside it (the ray samples are the same as on the whole box)."""
        start = np.asarray(start_vox, dtype=np.int64)
        reach = max(FIRST_MARGIN_PX, 8)
        while True:
            region = grow_box(tuple(slice(int(v), int(v) + 1) for v in start), reach, self.shape)
            low = np.array([r.start for r in region])
            dist, last = ray_exit(self.read(region), start * sp, direction, sp, origin=low)
            size = np.array([r.stop - r.start for r in region])
            cut = ((np.asarray(last) == 0) & (low > 0)) | \
                  ((np.asarray(last) == size - 1) & (low + size < np.array(self.shape)))
            if not cut.any():
                return dist
            reach *= 2

    def nearest_counts(self, nodes: cKDTree, sp) -> np.ndarray:
        counts = np.zeros(nodes.n, dtype=np.int64)
        for tile in self.tiles:
            low = np.array([t.start for t in tile])
            points = np.argwhere(self.read(tile))
            if len(points):
                counts += np.bincount(nodes.query((points + low) * sp)[1], minlength=nodes.n)
        return counts


def tile_grid(shape: tuple, core_px: int) -> list[tuple]:
    """Tiles (slices in the box's frame) of ``core_px`` in y and x with all planes."""
    return [(slice(0, shape[0]), slice(y, min(y + core_px, shape[1])), slice(x, min(x + core_px, shape[2])))
            for y in range(0, shape[1], core_px) for x in range(0, shape[2], core_px)]


def tiled_dendrite_skeleton(labels, box: tuple, label: int, spacing, *, max_voxels: int,
                            config=None) -> DendriteSkeleton:
    """Skeleton of dendrite ``label`` of a (Zarr) label volume inside ``box`` (slices; the
    dendrite's bounding box plus one voxel), thinned in tiles of at most about
    ``max_voxels`` voxels with their margins. Node positions are in the box's frame (µm), as
    :func:`~spinequant.morphology.dendrite_skeleton` of the box's crop gives them."""
    cfg = resolve_config(config)
    sp = np.asarray(spacing, dtype=float)
    shape = tuple(s.stop - s.start for s in box)
    margin = FIRST_MARGIN_PX
    vox, radius, margin = _skeleton_voxels(labels, box, label, sp, shape, max_voxels, margin)
    core = _core_px(shape, max_voxels, margin)
    mask = TiledMask(labels, box, label, tile_grid(shape, core))
    if not len(vox):
        return join_parts([], sp, 3)
    return join_parts([tree_part(label, vox, radius, mask, np.zeros(3, np.int64), sp, cfg)], sp, 3)


def _core_px(shape, max_voxels: int, margin: int) -> int:
    """Tile core edge (y/x px) so that core plus margins hold about ``max_voxels`` voxels;
    never below the margin (a tile mostly margin would read the mask many times over)."""
    edge = int(np.sqrt(max_voxels / max(shape[0], 1)))
    return max(edge - 2 * margin, margin, 16)


def _skeleton_voxels(labels, box, label, sp, shape, max_voxels, margin):
    """Skeleton voxels of every tile core (raster order, no repeats), the distance transform
    (µm) at each, and the margin finally used."""
    mask = TiledMask(labels, box, label, [])
    found, radii = [], []
    best = (-1.0, None)  # the deepest voxel, kept when the thinning leaves nothing
    for tile in tile_grid(shape, _core_px(shape, max_voxels, margin)):
        while True:
            window = grow_box(tile, (0, margin, margin), shape)
            inside = mask.read(window)
            rad = edt.edt(inside.view(np.uint8), anisotropy=tuple(sp))
            need = int(np.ceil(2 * float(rad.max(initial=0)) / sp[1:].min())) + 2
            if need <= margin:
                break
            margin = need
        low = np.array([w.start for w in window])
        if inside.any() and rad.max() > best[0]:
            best = (float(rad.max()), np.array(np.unravel_index(np.argmax(rad), rad.shape)) + low)
        skel = np.argwhere(skeletonize(inside))
        # The core widened by one voxel: neighbouring tiles' voxels overlap, so they join.
        keep = grow_box(tile, (0, 1, 1), shape)
        inner = np.all((skel >= np.array([k.start for k in keep]) - low)
                       & (skel < np.array([k.stop for k in keep]) - low), axis=1)
        found.append(skel[inner] + low)
        radii.append(rad[tuple(skel[inner].T)])
        del inside, rad, skel
    vox = np.concatenate(found) if found else np.zeros((0, 3), np.int64)
    rad = np.concatenate(radii) if radii else np.zeros(0)
    if not len(vox) and best[1] is not None:
        return best[1][None, :], np.array([best[0]]), margin
    vox, first = np.unique(vox, axis=0, return_index=True)
    return vox, rad[first], margin
