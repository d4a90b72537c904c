"""The reader: a spinequant result folder, or an OME-Zarr image with a ``labels`` group."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..edit.load import is_result_folder, load_result
from ._layers import result_layers


def get_reader(path):
    """A reader function for ``path`` when it is a result folder or an OME-Zarr with labels."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if is_result_folder(path):
        return read_result_folder
    if path.is_dir() and (path / "labels").is_dir() and ((path / ".zattrs").exists() or (path / "zarr.json").exists()):
        return read_ome_zarr_with_labels
    return None


def read_result_folder(path) -> list[tuple]:
    path = Path(path[0] if isinstance(path, list) else path)
    return result_layers(load_result(path))


def read_ome_zarr_with_labels(path) -> list[tuple]:
    """The image (level 0) and every label image of an OME-Zarr, in µm."""
    from ..io.omezarr import open_zarr

    path = Path(path[0] if isinstance(path, list) else path)
    image = open_zarr(path)
    layers = [(image.data, {"name": path.name, "scale": tuple(image.spacing)}, "image")]
    for sub in sorted(p for p in (path / "labels").iterdir() if p.is_dir()):
        labels = open_zarr(sub)
        layers.append((np.asarray(labels.data), {"name": sub.name, "scale": tuple(labels.spacing)}, "labels"))
    return layers
