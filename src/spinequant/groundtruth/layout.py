"""The training-data layout that ``spinequant train`` reads: one folder per stack.

Each converter of :mod:`spinequant.groundtruth` ends here. A stack folder holds

* ``image.tif`` — the image, with its voxel size (ImageJ metadata, µm);
* ``labels_semantic.tif`` — 0 background, 1 dendrite, 2 spine (what training reads first);
* ``labels_spines.tif``, ``labels_dendrites.tif`` — instance labels (0 = background);
* ``groundtruth.json`` — where the labels came from and what was repaired.
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


def write_training_stack(folder: str | os.PathLike, image: np.ndarray, spacing, spine_labels: np.ndarray,
                         dendrite_labels: np.ndarray, *, provenance: dict | None = None) -> Path:
    """Write one annotated stack to ``folder`` (created; replaced whole if it exists).

    Where a voxel is both spine and dendrite, the semantic labels say spine.
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
        info = {"voxel_size_um": list(spacing), "shape": list(image.shape), **(provenance or {})}
        (tmp / "groundtruth.json").write_text(json.dumps(to_json(info), indent=2, sort_keys=True) + "\n",
                                              encoding="utf-8")
    return folder
