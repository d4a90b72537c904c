"""Write a phantom and its ground truth to a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._atomic import atomic_path
from .._json import to_json
from ..io import write_tiff
from ..io.swc import write_swc

FILES = ("image.tif", "labels_semantic.tif", "labels_spines.tif", "labels_dendrites.tif",
         "truth_spines.csv", "dendrites.swc", "params.json")


def write_phantom(phantom, out_dir: str | os.PathLike) -> Path:
    """Write ``phantom`` to ``out_dir`` (created; replaced atomically if it exists).

    Files: image.tif, labels_semantic.tif, labels_spines.tif, labels_dendrites.tif (ImageJ
    TIFFs with the voxel size), truth_spines.csv, dendrites.swc (µm), params.json.
    """
    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True) as tmp:
        tmp = Path(tmp)
        tmp.mkdir()
        sp = phantom.spacing
        write_tiff(tmp / "image.tif", phantom.image, sp)
        write_tiff(tmp / "labels_semantic.tif", phantom.semantic, sp)
        write_tiff(tmp / "labels_spines.tif", phantom.spine_labels, sp)
        write_tiff(tmp / "labels_dendrites.tif", phantom.dendrite_labels, sp)
        phantom.spines.to_csv(tmp / "truth_spines.csv", index=False, float_format="%.5f")
        write_swc(tmp / "dendrites.swc", phantom.centrelines,
                  comments=["spinequant synthetic phantom: centrelines of the labelled dendrites"])
        (tmp / "params.json").write_text(json.dumps(to_json(phantom.params), indent=2, sort_keys=True) + "\n",
                                         encoding="utf-8")
    return out_dir
