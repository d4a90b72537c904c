"""OME-Zarr (NGFF 0.4 / 0.5 multiscales) and plain Zarr arrays, read lazily with dask."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import dask.array as da
import numpy as np
import zarr

from .._atomic import atomic_path
from ..errors import InputError
from ..stack import Stack
from .axes import default_axes, spatial_spacing, to_canonical
from .units import scaled, unit_to_um

_NGFF_VERSION = "0.4"


def is_zarr(path: Path) -> bool:
    if path.suffix.lower() == ".zarr":
        return True
    return path.is_dir() and any((path / f).exists() for f in (".zarray", ".zgroup", "zarr.json"))


def open_zarr(path: str | os.PathLike, *, allow_incomplete: bool = False) -> Stack:
    """Open an OME-Zarr image (level 0 of its multiscales) or a plain Zarr array, lazily.

    ``allow_incomplete``: read an array with missing chunks (as zeros) instead of refusing it.
    """
    path = Path(path)
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise InputError(
            f"'{path}' cannot be opened as Zarr ({exc}). Check that it is a Zarr folder (it should "
            f"contain .zgroup/.zarray or zarr.json files)."
        ) from None
    if isinstance(node, zarr.Array):
        data = da.from_zarr(node)
        axes = default_axes(data.ndim)
        data, axes, notes = to_canonical(data, axes, source=f"'{path}'")
        notes.append(f"plain Zarr array without axis metadata: axes assumed to be {axes}")
        return Stack(data=data, spacing=spatial_spacing(axes, (np.nan,) * 3), axes=axes, source=str(path),
                     spacing_source="metadata", metadata={"format": "Zarr", "notes": notes})
    attrs = dict(node.attrs)
    attrs = attrs.get("ome", attrs)
    multiscales = attrs.get("multiscales")
    if not multiscales:
        arrays = sorted(name for name, _ in node.arrays())
        raise InputError(
            f"'{path}' is a Zarr group without OME-Zarr 'multiscales' metadata, so spinequant does not "
            f"know which array is the image. Open one of its arrays directly: "
            + (", ".join(f"'{path / a}'" for a in arrays) if arrays else "it holds no arrays")
            + "."
        )
    ms = multiscales[0]
    level0 = ms["datasets"][0]
    array = node[level0["path"]]
    # NGFF 0.3 and older list axes as plain names, or not at all (then they are the last of tczyx).
    axes_meta = ms.get("axes") or list("tczyx"[5 - array.ndim:])
    names = "".join(str(a["name"] if isinstance(a, dict) else a).upper()[0] for a in axes_meta)
    scale = np.ones(len(names))
    for transforms in (level0.get("coordinateTransformations", []), ms.get("coordinateTransformations", [])):
        for t in transforms:
            if t.get("type") == "scale":
                scale = scale * np.asarray(t["scale"], dtype=float)
    units = [a.get("unit") if isinstance(a, dict) else None for a in axes_meta]
    spacing = []
    for axis in "ZYX":
        if axis not in names:
            spacing.append(np.nan)
            continue
        i = names.index(axis)
        factor = unit_to_um(units[i]) if units[i] else None
        spacing.append(scaled(scale[i], factor) if factor else np.nan)
    data = da.from_zarr(array)
    data, axes, notes = to_canonical(data, names, source=f"'{path}'")
    channels = tuple(c.get("label", f"channel {i}") for i, c in enumerate(attrs.get("omero", {}).get("channels", [])))
    if "C" in axes and len(channels) != data.shape[axes.index("C")]:
        channels = ()
    unitless = [n for n, u in zip(names, units) if n in "ZYX" and not u]
    if unitless:
        notes.append(f"axes {'/'.join(unitless)} have no unit; their scale is not taken as µm")
    return Stack(data=data, spacing=spatial_spacing(axes, spacing), axes=axes, channel_names=channels, source=str(path),
                 spacing_source="metadata",
                 metadata={"format": f"OME-Zarr {ms.get('version', attrs.get('version', ''))}".strip(), "notes": notes})


def write_ome_zarr(path: str | os.PathLike, image: np.ndarray | None, spacing, *, labels: dict | None = None,
                   name: str = "image", chunks=(32, 256, 256)) -> Path:
    """Write a 3D image and label volumes (or 2D images, with ``spacing`` (y, x)) as OME-Zarr.

    NGFF 0.4, with a ``labels`` group; the axes are z, y, x, or y, x for a 2D ``spacing``.

    A 2D image with a (y, x) ``spacing`` is written with axes y, x.

    ``labels`` maps a label name (e.g. ``"spines"``) to an integer volume of the image's shape.
    Written to a temporary folder and renamed. napari (napari-ome-zarr) and Fiji (MoBIE,
    n5-viewer) open it with the right scale.
    """
    labels = labels or {}
    if image is None and not labels:
        raise InputError("Nothing to write: give an image or at least one label volume.")
    shape = np.shape(image) if image is not None else np.shape(next(iter(labels.values())))
    for key, lab in labels.items():
        if np.shape(lab) != shape:
            raise InputError(f"Label volume '{key}' has shape {np.shape(lab)} but the image has {shape}; they must match.")
    with atomic_path(path, directory=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        if image is None:
            image = np.zeros(shape, dtype=np.uint8)
        _write_multiscale(root, np.asarray(image), spacing, name, chunks)
        if labels:
            group = root.create_group("labels")
            group.attrs["labels"] = list(labels)
            for key, lab in labels.items():
                sub = group.create_group(key)
                lab = np.asarray(lab)
                if lab.dtype == bool:
                    lab = lab.astype(np.uint8)
                _write_multiscale(sub, lab, spacing, key, chunks)
                sub.attrs["image-label"] = {"version": _NGFF_VERSION, "source": {"image": "../../"}}
    return Path(path)


def _write_multiscale(group, data: np.ndarray, spacing, name: str, chunks) -> None:
    if data.ndim != len(spacing):
        raise InputError(f"An image of shape {data.shape} needs {data.ndim} voxel sizes; got {tuple(spacing)}.")
    chunks = tuple(chunks)[len(chunks) - data.ndim:] if len(chunks) >= data.ndim else chunks
    arr = group.create_array("0", shape=data.shape, dtype=data.dtype,
                             chunks=tuple(min(c, s) for c, s in zip(chunks[-data.ndim:], data.shape)))
    # One chunk per call: zarr writes the chunks of one call from its own thread and goes on
    # with the others after one fails or the main thread is interrupted, which would refill
    # the temporary folder that atomic_path has just removed.
    for box in _chunk_boxes(data.shape, arr.chunks):
        arr[box] = data[box]
    group.attrs["multiscales"] = [{
        "version": _NGFF_VERSION,
        "name": name,
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"[3 - data.ndim:]],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [float(s) for s in spacing]}]}],
    }]


def _chunk_boxes(shape, chunks):
    """The regions of an array of ``shape`` covered by each chunk, in order."""
    starts = itertools.product(*(range(0, n, c) for n, c in zip(shape, chunks)))
    return [tuple(slice(a, a + c) for a, c in zip(start, chunks)) for start in starts]
