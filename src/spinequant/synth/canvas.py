"""The volume that solids are drawn into: occupancy and owner of every voxel, and the
fluorophore density that the imaging model turns into an image."""

from __future__ import annotations

import numpy as np

from .raster import Primitives, axis_voxels, rasterise

#: A voxel belongs to a solid when at least this fraction of it lies inside.
LABEL_THRESHOLD = 0.5


class Canvas:
    """Buffers for labelled shafts, labelled spines and the fluorophore density.

    Where solids of one kind overlap, a voxel goes to the one that fills more of it.
    Density takes the brightest solid (fill times relative brightness).
    """

    def __init__(self, shape, spacing, *, supersample_um: float, membrane_um: float | None = None):
        self.shape = tuple(int(s) for s in shape)
        self.spacing = tuple(float(s) for s in spacing)
        self.supersample_um = supersample_um
        self.membrane_um = membrane_um
        self.density = np.zeros(self.shape, np.float32)
        self.shaft_occ = np.zeros(self.shape, np.float32)
        self.shaft_id = np.zeros(self.shape, np.int32)
        self.spine_occ = np.zeros(self.shape, np.float32)
        self.spine_id = np.zeros(self.shape, np.int32)
        self.swelling: np.ndarray | None = None   # voxels of varicosities (allocated by the first)
        self._axes: list[tuple[int, tuple]] = []

    def _draw(self, prims: Primitives, brightness: float):
        r = rasterise(prims, self.shape, self.spacing, supersample_um=self.supersample_um,
                      membrane_um=self.membrane_um)
        if r is None:
            return None
        signal = r.membrane if r.membrane is not None else r.occupancy
        signal = signal * (r.value if r.value is not None else np.float32(brightness))
        np.maximum(self.density[r.slices], signal, out=self.density[r.slices])
        return r.slices, r.occupancy

    def _claim(self, occ_buf, id_buf, out, label: int) -> None:
        if out is None:
            return
        sl, occ = out
        region = occ_buf[sl]
        better = occ > region
        region[better] = occ[better]
        id_buf[sl][better] = label

    def add_shaft(self, prims: Primitives, label: int, brightness: float = 1.0) -> None:
        """A labelled shaft; its brightness is ``brightness`` unless ``prims`` carry values."""
        self._claim(self.shaft_occ, self.shaft_id, self._draw(prims, brightness), label)

    def add_swelling(self, prims: Primitives, label: int) -> None:
        """A varicosity of shaft ``label``: labelled as the shaft, and its voxels remembered
        (:attr:`swelling`) so that the image's brightness can be set by the rest of the shaft."""
        out = self._draw(prims, 1.0)
        self._claim(self.shaft_occ, self.shaft_id, out, label)
        if out is None:
            return
        if self.swelling is None:
            self.swelling = np.zeros(self.shape, bool)
        sl, occ = out
        self.swelling[sl] |= occ >= LABEL_THRESHOLD

    def add_spine(self, prims: Primitives, label: int, brightness: float, axis_um: np.ndarray) -> None:
        self._claim(self.spine_occ, self.spine_id, self._draw(prims, brightness), label)
        self._axes.append((label, axis_voxels(axis_um, self.shape, self.spacing)))

    def add_unlabelled(self, prims: Primitives, brightness: float = 1.0) -> None:
        self._draw(prims, brightness)

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(shaft_labels, spine_labels) as int32. The shaft wins where both claim a voxel;
        a spine keeps the voxels on its axis even where its neck is thinner than a voxel."""
        # the buffers are reused for the result: a canvas is labelled once
        shaft = self.shaft_id
        shaft[self.shaft_occ < LABEL_THRESHOLD] = 0
        occ, ids = self.spine_occ, self.spine_id
        for label, idx in self._axes:
            weak = occ[idx] < LABEL_THRESHOLD
            ids[tuple(i[weak] for i in idx)] = label
            occ[tuple(i[weak] for i in idx)] = LABEL_THRESHOLD
        ids[(occ < LABEL_THRESHOLD) | (shaft > 0)] = 0
        return shaft, ids
