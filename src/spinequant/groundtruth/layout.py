"""The training-data layout that ``spinequant train`` reads: one folder per stack.

Each converter of :mod:`spinequant.groundtruth` ends here. A stack folder holds

* ``image.tif`` — the image, with its voxel size (ImageJ metadata, µm);
* ``labels_semantic.tif`` — 0 background, 1 dendrite, 2 spine (what training reads first);
* ``labels_spines.tif``, ``labels_dendrites.tif`` — instance labels (0 = background);
* ``groundtruth.json`` — where the labels came from and what was repaired;
* ``spine_heads.csv`` (optional) — the centre of each spine's head, columns ``id``,
  ``head_z_um``, ``head_y_um``, ``head_x_um`` (µm, the centre of voxel (0, 0, 0) at 0, as in
  ``spines.csv``): point supervision for networks with a point head. A stack without it has
  its head map taken as unknown in training, not as empty.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from .._json import to_json
from ..errors import InputError
from ..export.labels import semantic_labels
from ..io import write_tiff
from ..validate import check_spacing

STACK_FILES = ("image.tif", "labels_semantic.tif", "labels_spines.tif", "labels_dendrites.tif",
               "groundtruth.json")
#: The optional file of spine-head centres in a stack folder, and its columns.
HEADS_FILE = "spine_heads.csv"
HEAD_COLUMNS = ("head_z_um", "head_y_um", "head_x_um")


def write_training_stack(folder: str | os.PathLike, image: np.ndarray, spacing, spine_labels: np.ndarray,
                         dendrite_labels: np.ndarray, *, provenance: dict | None = None,
                         heads=None) -> Path:
    """Write one annotated stack to ``folder`` (created; replaced whole if it exists).

    Where a voxel is both spine and dendrite, the semantic labels say spine. ``heads``, a
    table with ``id`` and :data:`HEAD_COLUMNS` (e.g. the spine table of a result), is written
    as :data:`HEADS_FILE`.
    """
    image = np.asarray(image)
    spacing = tuple(float(s) for s in check_spacing(spacing))
    for name, arr in (("spine labels", spine_labels), ("dendrite labels", dendrite_labels)):
        if np.shape(arr) != image.shape:
            raise InputError(f"The {name} {np.shape(arr)} and the image {image.shape} of '{folder}' "
                             f"differ in shape; labels must be drawn on the image's voxel grid.")
    folder = Path(folder)
    with atomic_path(folder, directory=True) as tmp:
        tmp = Path(tmp)
        tmp.mkdir(parents=True)
        write_tiff(tmp / "image.tif", image, spacing)
        write_tiff(tmp / "labels_semantic.tif", semantic_labels(spine_labels, dendrite_labels), spacing)
        write_tiff(tmp / "labels_spines.tif", np.asarray(spine_labels), spacing)
        write_tiff(tmp / "labels_dendrites.tif", np.asarray(dendrite_labels), spacing)
        if heads is not None:
            table = heads[["id", *HEAD_COLUMNS]].dropna()
            table.to_csv(tmp / HEADS_FILE, index=False)
        info = {"voxel_size_um": list(spacing), "shape": list(image.shape), **(provenance or {})}
        (tmp / "groundtruth.json").write_text(json.dumps(to_json(info), indent=2, sort_keys=True) + "\n",
                                              encoding="utf-8")
    return folder


def read_training_stack(folder: str | os.PathLike, *, voxel_size=None):
    """``(image, spacing, spine_labels, dendrite_labels)`` of a stack folder.

    Instance labels are read when present; from ``labels_semantic.tif`` alone, spines are its
    connected components of value 2 (26-connected) and dendrites those of value 1.
    """
    import tifffile
    from scipy import ndimage as ndi

    from ..io import read_stack

    folder = Path(folder)
    if not (folder / "image.tif").exists():
        raise InputError(f"'{folder}' has no image.tif; a stack folder holds image.tif and its labels "
                         f"(labels_semantic.tif, or labels_spines.tif + labels_dendrites.tif).")
    stack = read_stack(folder / "image.tif", voxel_size=voxel_size)
    image = np.asarray(stack.data)
    if (folder / "labels_spines.tif").exists() and (folder / "labels_dendrites.tif").exists():
        spines = tifffile.imread(folder / "labels_spines.tif").astype(np.int32)
        dendrites = tifffile.imread(folder / "labels_dendrites.tif").astype(np.int32)
    elif (folder / "labels_semantic.tif").exists():
        sem = tifffile.imread(folder / "labels_semantic.tif")
        full = np.ones((3, 3, 3), bool)
        spines = ndi.label(sem == 2, full)[0].astype(np.int32)
        dendrites = ndi.label(sem == 1, full)[0].astype(np.int32)
    else:
        raise InputError(f"'{folder}' has an image.tif but no labels: add labels_semantic.tif (0 background, "
                         f"1 dendrite, 2 spine) or labels_spines.tif + labels_dendrites.tif.")
    for name, arr in (("spine", spines), ("dendrite", dendrites)):
        if arr.shape != image.shape:
            raise InputError(f"The {name} labels of '{folder}' have the shape {arr.shape}, the image "
                             f"{image.shape}; labels must be drawn on the image's voxel grid.")
    return image, tuple(stack.spacing), spines, dendrites


def read_heads(folder: str | os.PathLike, spacing) -> np.ndarray | None:
    """The spine-head centres of a stack folder as (K, 3) voxel coordinates (z, y, x), or None
    when it has no :data:`HEADS_FILE`."""
    import pandas as pd

    path = Path(folder) / HEADS_FILE
    if not path.exists():
        return None
    table = pd.read_csv(path)
    missing = [c for c in HEAD_COLUMNS if c not in table]
    if missing:
        raise InputError(f"'{path}' lacks the column(s) {missing}; it needs {list(HEAD_COLUMNS)} in µm "
                         f"(as spines.csv has them).")
    return table[list(HEAD_COLUMNS)].to_numpy(float) / np.asarray(spacing, float)
