"""Spine objects and dendrites block by block, stitched into global ids.

Each block builds its objects (:func:`~spinequant.instances.spine_instances`) on its window
of the stored maps and keeps the spines whose *centre* (the voxel nearest the mean of its
voxel coordinates, in volume coordinates) lies in its core. A spine whole within both windows
gets the same voxels, hence the same centre, in both, so exactly one block owns it: none is
counted twice or lost. An owned spine is kept whole, also where it reaches into a neighbour's
core. Dendrites are kept on the core only and stitched across core faces and corners: labels
that touch across a face or only across a corner (26-neighbourhood) are joined by
union-find, so one dendrite has one id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..instances import spine_instances
from .blocks import Block
from .maps import PARTNER, read_maps, read_window


@dataclass
class BlockObjects:
    """What one block found: its owned spines (labels 1..n on its window, ``scores`` per id
    or None), its core's dendrite labels (1..m) and the owned spines that touch the window's
    inner edge (clipped: the halo was too narrow for them)."""

    spines: np.ndarray
    scores: np.ndarray | None
    dendrites: np.ndarray
    clipped: int = 0

    def save(self, path: Path) -> None:
        # Sparse (the labelled voxels' flat indices and ids): spines fill ~1 % of a window, and
        # loading a dense compressed window (0.5 GB for 48 x 1632 x 1632) for every core that
        # a neighbour's window overlaps made the stitching slow.
        extra = {} if self.scores is None else {"scores": self.scores}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **_sparse("spines", self.spines), **_sparse("dendrites", self.dendrites),
                 clipped=self.clipped, **extra)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "BlockObjects":
        with np.load(path) as f:
            if "spines" in f:                                  # format 1: dense, compressed
                return cls(f["spines"], f["scores"] if "scores" in f else None, f["dendrites"], int(f["clipped"]))
            return cls(_dense(f, "spines"), f["scores"] if "scores" in f else None, _dense(f, "dendrites"),
                       int(f["clipped"]))


def _sparse(name: str, labels: np.ndarray) -> dict:
    flat = np.flatnonzero(labels)
    return {f"{name}_shape": np.array(labels.shape), f"{name}_index": flat, f"{name}_id": labels.reshape(-1)[flat]}


def _dense(f, name: str) -> np.ndarray:
    out = np.zeros(tuple(f[f"{name}_shape"]), np.uint32)
    out.reshape(-1)[f[f"{name}_index"]] = f[f"{name}_id"]
    return out


class StoredObjects(Mapping):
    """Per-block objects in their files (``{block name}.npz`` in ``folder``), read on each
    access. Besides whole :class:`BlockObjects` (``stored[name]``, dense windows), it answers
    what stitching needs from the sparse arrays alone, so that the main process never holds
    more than one block's core at a time: the label counts, scores, clipped count, dendrite
    ids and faces, spine voxels and the dense core dendrites."""

    def __init__(self, folder: Path, blocks: list[Block]):
        self.folder, self.names = Path(folder), [b.name for b in blocks]

    def __getitem__(self, name):
        return BlockObjects.load(self.folder / f"{name}.npz")

    def __iter__(self):
        return iter(self.names)

    def __len__(self):
        return len(self.names)

    def _arrays(self, name: str, *keys: str):
        """The arrays ``keys`` of a block's sparse file, or None for a file of format 1."""
        with np.load(self.folder / f"{name}.npz") as f:
            if "spines_index" not in f:
                return None
            return [f[k] if k in f else None for k in keys]

    def label_counts(self, name: str) -> tuple[int, int]:
        got = self._arrays(name, "spines_id", "dendrites_id")
        if got is None:
            return DenseObjects({name: self[name]}).label_counts(name)
        return tuple(int(a.max(initial=0)) for a in got)

    def scores(self, name: str):
        with np.load(self.folder / f"{name}.npz") as f:
            return f["scores"] if "scores" in f else None

    def clipped(self, name: str) -> int:
        with np.load(self.folder / f"{name}.npz") as f:
            return int(f["clipped"])

    def dendrite_ids(self, name: str) -> np.ndarray:
        got = self._arrays(name, "dendrites_id")
        return np.unique(got[0]) if got is not None else DenseObjects({name: self[name]}).dendrite_ids(name)

    def dendrite_faces(self, name: str) -> dict[str, np.ndarray]:
        got = self._arrays(name, "dendrites_shape", "dendrites_index", "dendrites_id")
        if got is None:
            return DenseObjects({name: self[name]}).dendrite_faces(name)
        shape, index, ids = got
        nz, ny, nx = (int(n) for n in shape)
        z, y, x = np.unravel_index(index, (nz, ny, nx))
        faces = {"y0": np.zeros((nz, nx), np.uint32), "y1": np.zeros((nz, nx), np.uint32),
                 "x0": np.zeros((nz, ny), np.uint32), "x1": np.zeros((nz, ny), np.uint32)}
        for key, on, along in (("y0", y == 0, x), ("y1", y == ny - 1, x), ("x0", x == 0, y), ("x1", x == nx - 1, y)):
            faces[key][z[on], along[on]] = ids[on]
        return faces

    def core_dendrites(self, name: str) -> np.ndarray:
        got = self._arrays(name, "dendrites_shape", "dendrites_index", "dendrites_id")
        if got is None:
            return self[name].dendrites
        shape, index, ids = got
        out = np.zeros(tuple(int(n) for n in shape), np.uint32)
        out.reshape(-1)[index] = ids
        return out

    def spine_voxels(self, name: str) -> tuple[np.ndarray, np.ndarray, tuple]:
        """(flat indices, ids, window shape) of a block's spines, without the dense window."""
        got = self._arrays(name, "spines_index", "spines_id", "spines_shape")
        if got is None:
            return DenseObjects({name: self[name]}).spine_voxels(name)
        return got[0], got[1], tuple(int(n) for n in got[2])


class DenseObjects:
    """The accessors of :class:`StoredObjects` over ``{block name: BlockObjects}`` in memory."""

    def __init__(self, objects: Mapping):
        self.objects = objects

    def label_counts(self, name: str) -> tuple[int, int]:
        o = self.objects[name]
        return int(o.spines.max(initial=0)), int(o.dendrites.max(initial=0))

    def scores(self, name: str):
        return self.objects[name].scores

    def clipped(self, name: str) -> int:
        return int(self.objects[name].clipped)

    def dendrite_ids(self, name: str) -> np.ndarray:
        return np.unique(self.objects[name].dendrites)

    def dendrite_faces(self, name: str) -> dict[str, np.ndarray]:
        d = self.objects[name].dendrites
        return {"y0": d[:, 0, :], "y1": d[:, -1, :], "x0": d[:, :, 0], "x1": d[:, :, -1]}

    def core_dendrites(self, name: str) -> np.ndarray:
        return self.objects[name].dendrites

    def spine_voxels(self, name: str) -> tuple[np.ndarray, np.ndarray, tuple]:
        spines = self.objects[name].spines
        flat = np.flatnonzero(spines)
        return flat, spines.reshape(-1)[flat], spines.shape


def block_objects(maps_group, volume, spacing, block: Block, *, config, shape, bodies=None) -> BlockObjects:
    """Spine objects and dendrites of ``block`` (its window given by ``block.window``); the
    maps are first cleared on the volume's cell ``bodies``
    (:class:`~spinequant.segment.neural.bodies.CellBodies`, or None) as in memory."""
    maps = read_maps(maps_group, block)
    if bodies is not None:
        bodies.clear(maps["dendrite"], (maps["spine"], maps.get("heads"), maps.get(PARTNER)),
                     (0, block.window[0].start, block.window[1].start))
    image = read_window(volume, block) if config.bridge_gap_um > 0 or config.head_flank_prominence > 0 else None
    inst = spine_instances(maps["spine"], maps["dendrite"], spacing=spacing, config=config,
                           head_prob=maps.get("heads"), image=image, partner_head_prob=maps.get(PARTNER))
    spines, keep = owned_objects(inst.spine_labels, block)
    scores = None
    if inst.scores is not None:
        scores = np.zeros(len(keep) + 1, np.float32)
        scores[1:] = np.asarray(inst.scores)[keep]
    return BlockObjects(spines, scores, inst.dendrite_labels[(slice(None), *block.core_in_window)],
                        clipped_objects(spines, block, shape))


def owned_objects(labels: np.ndarray, block: Block) -> tuple[np.ndarray, np.ndarray]:
    """The objects of a block's window ``labels`` whose centre lies in the block's core,
    renumbered 1..n (uint32, the others 0), and their ids in ``labels``. Used for spines here
    and for cells (:mod:`spinequant.cells.chunked`)."""
    ids, centres = _centres(labels)
    y0, x0 = block.window[0].start, block.window[1].start
    owned = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.uint32)
    keep = ids[_inside(centres[:, 1] + y0, block.core[0]) & _inside(centres[:, 2] + x0, block.core[1])]
    owned[keep] = np.arange(1, len(keep) + 1, dtype=np.uint32)
    return owned[labels], keep


def _centres(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids and centres (voxel indices nearest the mean coordinates) of the objects."""
    flat = labels.reshape(-1)
    ids = np.unique(flat[flat > 0])
    if not len(ids):
        return ids, np.zeros((0, 3), int)
    coords = np.nonzero(labels)
    lab = labels[coords]
    counts = np.bincount(lab, minlength=int(ids.max()) + 1)[ids]
    centres = np.stack([np.bincount(lab, weights=c, minlength=int(ids.max()) + 1)[ids] / counts
                        for c in coords], axis=1)
    return ids, np.floor(centres + 0.5).astype(int)


def _inside(values: np.ndarray, span: slice) -> np.ndarray:
    return (values >= span.start) & (values < span.stop)


def clipped_objects(spines: np.ndarray, block: Block, shape) -> int:
    """Owned objects touching a window edge that is not the volume's border (the halo was
    too narrow for them)."""
    edges = []
    if block.window[0].start > 0:
        edges.append(spines[:, 0, :])
    if block.window[0].stop < shape[1]:
        edges.append(spines[:, -1, :])
    if block.window[1].start > 0:
        edges.append(spines[:, :, 0])
    if block.window[1].stop < shape[2]:
        edges.append(spines[:, :, -1])
    touching = set()
    for e in edges:
        touching.update(np.unique(e[e > 0]).tolist())
    return len(touching)


class UnionFind:
    """Disjoint sets over 0..n-1."""

    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def touching_pairs(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
    """Label pairs across a face: ``a`` and ``b`` are the (Z, L) planes on either side;
    voxels touch when their z and in-face positions differ by at most 1 (26-neighbourhood)."""
    pairs = set()
    nz, n = a.shape
    for dz in (-1, 0, 1):
        for dl in (-1, 0, 1):
            sa = a[max(0, -dz):nz - max(0, dz), max(0, -dl):n - max(0, dl)]
            sb = b[max(0, dz):nz - max(0, -dz), max(0, dl):n - max(0, -dl)]
            both = (sa > 0) & (sb > 0)
            if both.any():
                pairs.update(zip(sa[both].tolist(), sb[both].tolist()))
    return pairs


def stitch(blocks: list[Block], objects: Mapping, spines_out, dendrites_out) -> dict:
    """Write global spine and dendrite labels (Zarr or numpy arrays, the volume's shape;
    ``dendrites_out`` may be None).

    Spine ids are numbered block by block (in grid order); every core is assembled from the
    spines owned by any block whose window covers it, so each owned spine is written whole.
    Dendrite ids are joined across core faces and corners by union-find and numbered 1..D.

    Returns ``{"scores": per global spine id or None, "n_spines", "n_dendrites", "clipped",
    "spine_offsets": {block name: its first global spine id - 1}, "dendrite_boxes": {global
    dendrite id: its bounding box (slices of the volume)}, "dendrite_voxels": {global dendrite
    id: its number of voxels}}``.
    """
    access = objects if isinstance(objects, StoredObjects) else DenseObjects(objects)
    spine_offset, dend_offset, label_counts, s, d = {}, {}, {}, 0, 0
    for b in blocks:
        spine_offset[b.name], dend_offset[b.name] = s, d
        n_spines, label_counts[b.name] = access.label_counts(b.name)
        s, d = s + n_spines, d + label_counts[b.name]
    scores = None
    block_scores = {b.name: access.scores(b.name) for b in blocks}
    if any(sc is not None for sc in block_scores.values()):
        scores = np.zeros(s + 1, np.float32)
        for b in blocks:
            sc = block_scores[b.name]
            if sc is not None and len(sc) > 1:
                scores[spine_offset[b.name] + 1:spine_offset[b.name] + len(sc)] = sc[1:]
    uf = UnionFind(d + 1)
    by_index = {b.index: b for b in blocks}
    faces = {b.name: access.dendrite_faces(b.name) for b in blocks}   # 4 planes a block
    for b in blocks:
        for step, face, other_face in (((0, 1), "x1", "x0"), ((1, 0), "y1", "y0")):
            other = by_index.get((b.index[0] + step[0], b.index[1] + step[1]))
            if other is None:
                continue
            for la, lb in touching_pairs(faces[b.name][face], faces[other.name][other_face]):
                uf.union(dend_offset[b.name] + la, dend_offset[other.name] + lb)
        # across a corner only (diagonal neighbours): the corner columns, z within 1
        for dx, here, there in ((1, -1, 0), (-1, 0, -1)):
            other = by_index.get((b.index[0] + 1, b.index[1] + dx))
            if other is None:
                continue
            last = faces[b.name]["y1"][:, here][:, None]
            first = faces[other.name]["y0"][:, there][:, None]
            for la, lb in touching_pairs(last, first):
                uf.union(dend_offset[b.name] + la, dend_offset[other.name] + lb)
    del faces
    roots = np.array([uf.find(i) for i in range(d + 1)])
    dendrite_boxes: dict[int, tuple] = {}
    dendrite_voxels: dict[int, int] = {}
    # Ids 1..D in order over the dendrites with voxels in some core (a block's label seen only
    # in its halo has none and gets no id).
    present = np.zeros(d + 1, bool)
    present[0] = True
    for b in blocks:
        ids = access.dendrite_ids(b.name)
        present[ids[ids > 0].astype(np.int64) + dend_offset[b.name]] = True
    kept = np.unique(roots[present])                          # 0 first
    final = np.where(present, np.searchsorted(kept, roots), 0)
    for b in blocks:
        core = (slice(None), *b.core)
        out = np.zeros((spines_out.shape[0], *(c.stop - c.start for c in b.core)), np.uint32)
        for other in blocks:
            if any(max(c.start, w.start) >= min(c.stop, w.stop) for c, w in zip(b.core, other.window)):
                continue
            flat, ids, shape = access.spine_voxels(other.name)
            z, y, x = np.unravel_index(flat, shape)
            y, x = y + other.window[0].start - b.core[0].start, x + other.window[1].start - b.core[1].start
            inside = (y >= 0) & (y < out.shape[1]) & (x >= 0) & (x < out.shape[2])
            at = (z[inside], y[inside], x[inside])
            free = out[at] == 0                    # a spine already written here keeps its voxels
            out[tuple(a[free] for a in at)] = ids[inside][free] + spine_offset[other.name]
        spines_out[core] = out
        # the block's labels 1..n -> global ids through a lookup of its own (no int64 copies of the core)
        own = final[dend_offset[b.name]:dend_offset[b.name] + label_counts[b.name] + 1].astype(np.uint32)
        own[0] = 0
        core_dendrites = own[access.core_dendrites(b.name)]
        if dendrites_out is not None:                   # None: objects without dendrites (cells)
            dendrites_out[core] = core_dendrites
        counts = np.bincount(core_dendrites[core_dendrites > 0], minlength=1)   # (dendrites: a few % of a core)
        for did in np.nonzero(counts[1:])[0] + 1:
            dendrite_voxels[int(did)] = dendrite_voxels.get(int(did), 0) + int(counts[did])
        for did, box in enumerate(ndimage.find_objects(core_dendrites), start=1):
            if box is not None:
                box = (box[0], *(slice(s.start + c.start, s.stop + c.start) for s, c in zip(box[1:], b.core)))
                dendrite_boxes[did] = union_box(dendrite_boxes.get(did), box)
    return {"scores": scores, "n_spines": s, "n_dendrites": int(final.max(initial=0)),
            "clipped": sum(access.clipped(b.name) for b in blocks), "spine_offsets": spine_offset,
            "dendrite_boxes": dendrite_boxes, "dendrite_voxels": dendrite_voxels}


def union_box(a: tuple | None, b: tuple) -> tuple:
    """The smallest box holding boxes ``a`` (or None) and ``b`` (tuples of slices)."""
    if a is None:
        return b
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))
