"""Write a self-describing result folder: tables, labels, ROI set, meshes, centrelines.

>>> from spinequant.export import export_results
>>> export_results("results/cell1", spacing=(0.5, 0.094, 0.094), spines=table,
...                dendrites=dendrite_table, spine_labels=labels, dendrite_labels=dendrites)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, ensure_writable_dir
from ..errors import InputError
from ..io import write_ome_zarr, write_tiff
from ..io.swc import write_swc
from ..validate import check_spacing
from .labels import semantic_labels
from .meshes import MESH_FORMATS, object_meshes, write_meshes
from .roi import spine_rois, write_roi_set
from .tables import has_parquet, write_table

#: What :func:`export_results` can write; by default all of it.
FORMATS = ("tables", "labels", "zarr", "roi", "meshes", "swc")

__all__ = ["export_results", "FORMATS", "MESH_FORMATS", "write_table", "write_roi_set", "spine_rois",
           "write_meshes", "object_meshes", "semantic_labels", "has_parquet"]


def export_results(out_dir: str | os.PathLike, *, spacing, spines=None, dendrites=None, spine_labels=None,
                   dendrite_labels=None, semantic=None, centrelines=None, image=None, formats=FORMATS,
                   mesh_formats=("stl",), metadata: dict | None = None) -> dict[str, list[Path]]:
    """Write the results of one stack into ``out_dir``; every file is written atomically.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created if needed). Existing files of the same name are replaced.
    spacing : sequence of 3 floats (z, y, x), or 2 (y, x) for a 2D image
        Voxel size in µm; stored in every image file so Fiji and napari show µm. A 2D image
        gets 2D label TIFFs and OME-Zarr (axes y, x), one ROI polygon per spine, and no
        meshes (a 2D object has no surface; ``metadata.json`` says so).
    spines, dendrites : pandas.DataFrame, optional
        Per-spine and per-dendrite tables -> ``spines.csv``, ``dendrites.csv`` (and
        ``.parquet`` when pyarrow is installed).
    spine_labels, dendrite_labels : ndarray of int, shape (Z, Y, X), optional
        Instance labels -> ``labels_spines.tif``, ``labels_dendrites.tif``.
    semantic : ndarray of uint8, optional
        0 background, 1 dendrite, 2 spine -> ``labels_semantic.tif``; made from the two label
        volumes when not given.
    centrelines : pandas.DataFrame, optional
        SWC table (see :mod:`spinequant.io.swc`) -> ``dendrites.swc``.
    image : ndarray, optional
        The analysed stack, stored in ``results.ome.zarr`` beside the label volumes.
    formats : iterable of str
        Any of :data:`FORMATS`: ``"tables"``, ``"labels"`` (TIFFs), ``"zarr"``
        (``results.ome.zarr``), ``"roi"`` (``spines_roi.zip``, ImageJ ROI set), ``"meshes"``
        (``meshes/spine-0001.stl`` ... and ``meshes/dendrite-0001.stl`` ..., in µm), ``"swc"``.
    mesh_formats : iterable of str
        Any of ``"stl"``, ``"ply"``, ``"obj"``; STL by default, which Fiji's 3D Viewer, MeshLab
        and Blender open. OBJ is text and slow to write for long dendrites (about 4 s per
        million faces).
    metadata : dict, optional
        Extra JSON-serialisable facts (e.g. the configs used) for ``metadata.json``.

    Returns
    -------
    dict
        Maps each format name to the list of paths written.
    """
    formats = tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(f"Unknown export formats {unknown}; choose from {list(FORMATS)}.")
    spine_labels = None if spine_labels is None else np.asarray(spine_labels)
    dendrite_labels = None if dendrite_labels is None else np.asarray(dendrite_labels)
    ndim = next((np.ndim(a) for a in (spine_labels, dendrite_labels, semantic, image) if a is not None), 3)
    spacing = check_spacing(spacing, where="the results", ndim=ndim)
    out = ensure_writable_dir(out_dir)
    not_written = {}
    if ndim == 2 and "meshes" in formats:
        formats = tuple(f for f in formats if f != "meshes")
        not_written["meshes"] = "a 2D image: its objects have outlines (spines_roi.zip), not surfaces"
    if semantic is None and spine_labels is not None and dendrite_labels is not None:
        semantic = semantic_labels(spine_labels, dendrite_labels)
    volumes = {"spines": spine_labels, "dendrites": dendrite_labels, "semantic": semantic}
    volumes = {k: v for k, v in volumes.items() if v is not None}
    shapes = {np.shape(v) for v in volumes.values()} | ({np.shape(image)} if image is not None else set())
    if len(shapes) > 1:
        raise InputError(f"The label volumes and the image differ in shape ({sorted(shapes)}); they must "
                         f"all come from the same stack.")
    written: dict[str, list[Path]] = {}
    if "tables" in formats:
        written["tables"] = [p for name, table in (("spines", spines), ("dendrites", dendrites))
                             if table is not None for p in write_table(out / f"{name}.csv", table)]
    if "labels" in formats:
        written["labels"] = [write_tiff(out / f"labels_{name}.tif", data, spacing)
                             for name, data in volumes.items()]
    if "zarr" in formats and (volumes or image is not None):
        written["zarr"] = [write_ome_zarr(out / "results.ome.zarr", image, spacing, labels=volumes)]
    if "roi" in formats and spine_labels is not None:
        written["roi"] = [write_roi_set(out / "spines_roi.zip", spine_labels)]
    if "meshes" in formats:
        # The folder is replaced whole, so no mesh of an earlier run with more objects stays.
        files = []
        with atomic_path(out / "meshes", directory=True) as tmp:
            Path(tmp).mkdir()
            for prefix, data in (("spine", spine_labels), ("dendrite", dendrite_labels)):
                if data is not None:
                    files += write_meshes(tmp, data, spacing, prefix=prefix, formats=mesh_formats)
        written["meshes"] = [out / "meshes" / Path(f).name for f in files]
    if "swc" in formats and centrelines is not None:
        written["swc"] = [write_swc(out / "dendrites.swc", centrelines,
                                    comments=["spinequant dendrite centrelines", *_tree_comments(centrelines)])]
    _write_metadata(out / "metadata.json", spacing, written,
                    {**({"not_written": not_written} if not_written else {}), **(metadata or {})})
    return written


def _tree_comments(centrelines) -> list[str]:
    """One comment line per tree: which dendrite (dendrite_id of dendrites.csv) and its nodes."""
    if "dendrite_id" not in centrelines or not len(centrelines):
        return []
    lines = ["trees: one per dendrite; its root is where position_um of spines.csv counts from"]
    for did, nodes in centrelines.groupby("dendrite_id", sort=True):
        root = nodes.loc[nodes["parent"] == -1, "id"]
        lines.append(f"dendrite {int(did)}: nodes {int(nodes['id'].min())}-{int(nodes['id'].max())}, "
                     f"root {int(root.iloc[0]) if len(root) else int(nodes['id'].min())}")
    return lines


def _write_metadata(path: Path, spacing, written, extra) -> None:
    from .. import __version__

    info = {"spinequant_version": __version__, f"spacing_um_{'zyx'[3 - len(spacing):]}": list(spacing),
            "files": {k: [str(p.relative_to(path.parent)) for p in v] for k, v in written.items()}}
    if extra:
        info.update(extra)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
