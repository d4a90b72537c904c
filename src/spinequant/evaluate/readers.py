"""Read the annotations users have into arrays and point tables for evaluation.

Point tables have the columns ``z_um, y_um, x_um`` (µm), plus ``rater`` when a CSV has a
``rater`` column and ``group`` for the marker types of a CellCounter file (when several).
Pixel coordinates are converted with the voxel size; ImageJ slice numbers are 1-based.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validate import VOXEL_HINT, check_spacing

POINT_COLUMNS = ["z_um", "y_um", "x_um"]
LABEL_SUFFIXES = (".tif", ".tiff", ".zarr")


def detect_kind(path: str | os.PathLike, *, semantic: bool = False) -> str:
    """What an annotation file holds: ``"semantic"``, ``"instances"``, ``"points"`` or ``"swc"``.

    TIFF/Zarr files are instance label images unless their name contains ``semantic``
    (spinequant's ``labels_semantic.tif``: 0 background, 1 dendrite, 2 spine) or
    ``semantic`` is True; CSV, ROI (.roi, .zip) and CellCounter XML files are points; .swc
    files are centrelines. A file with another ending is recognised by its first bytes
    (TIFF or XML).
    """
    p = Path(path)
    name, suffix = p.name.lower(), p.suffix.lower()
    if suffix in LABEL_SUFFIXES or name.endswith(".ome.zarr") or _starts_with(p, (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")):
        return "semantic" if semantic or "semantic" in name else "instances"
    if suffix in (".csv", ".tsv", ".txt", ".roi", ".zip", ".xml") or _starts_with(p, (b"<?xml",)):
        return "points"
    if suffix == ".swc":
        return "swc"
    raise InputError(
        f"'{path}' is not an annotation format spinequant evaluates. Use a label image (.tif), "
        f"a point list (.csv, ImageJ ROI set .zip/.roi, CellCounter .xml) or a centreline (.swc)."
    )


def _starts_with(path: Path, magics) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return any(head.startswith(m) for m in magics)


def read_labels(path: str | os.PathLike, *, voxel_size=None) -> tuple[np.ndarray, tuple]:
    """Read a label image; returns (integer array Z Y X, spacing). Unknown spacing is NaN."""
    from ..io import open_stack

    stack = open_stack(path, voxel_size=voxel_size, require_spacing=False).select().compute()
    data = np.asarray(stack.data)
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == bool):
        if not np.all(np.mod(data, 1) == 0):
            raise InputError(f"'{path}' holds non-integer values; a label image needs integer ids "
                             f"(0 = background). Is it a probability map? Threshold it first.")
        data = data.astype(np.int64)
    return data, tuple(stack.spacing)


def read_points(path: str | os.PathLike, *, spacing=None, units: str | None = None,
                point: str = "auto") -> pd.DataFrame:
    """Read spine positions from CSV, ImageJ ROI (.roi/.zip), CellCounter XML or SWC.

    Parameters
    ----------
    path : path
    spacing : 3 floats (z, y, x) µm, optional
        Needed for coordinates in pixels (ROI sets, CellCounter, CSV in pixels).
    units : {"um", "px"}, optional
        Units of a CSV's x, y, z columns when their names do not say (``x_um`` / ``x_px``).
    point : {"auto", "centroid", "head"}
        Which position of spinequant's ``spines.csv`` to use; ``auto`` prefers the
        centroid, then the head.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"The annotation file '{path}' does not exist. Check the path.")
    suffix = path.suffix.lower()
    if suffix in (".roi", ".zip"):
        return read_imagej_rois(path, spacing=spacing)
    if suffix == ".xml" or (suffix not in (".csv", ".tsv", ".txt") and _starts_with(path, (b"<?xml",))):
        return read_cellcounter_xml(path, spacing=spacing)
    if suffix == ".swc":
        from ..io.swc import read_swc

        nodes = read_swc(path)
        return pd.DataFrame({"z_um": nodes["z"].to_numpy(float), "y_um": nodes["y"].to_numpy(float),
                             "x_um": nodes["x"].to_numpy(float)})
    return read_point_csv(path, spacing=spacing, units=units, point=point)


def read_point_csv(path, *, spacing=None, units: str | None = None, point: str = "auto") -> pd.DataFrame:
    """Points from a CSV: spinequant's spines.csv or a table with x, y, z columns."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep=None, engine="python")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"'{path}' is not a readable CSV table ({exc}).") from None
    lower = {str(c).strip().lower(): c for c in table.columns}
    group = table[lower["rater"]].astype(str).to_numpy() if "rater" in lower else None
    for prefix in _spine_prefixes(point):
        cols = [f"{prefix}{a}_um" for a in "zyx"]
        if all(c in lower for c in cols):
            return _points_table(table[[lower[c] for c in cols]].to_numpy(float), group, column="rater")
    if point not in ("auto", "centroid", "head"):
        raise InputError(f"Unknown spine position {point!r}; use 'centroid' or 'head'.")
    found = _xyz_columns(lower)
    if found is None:
        raise InputError(
            f"'{path}' has no coordinate columns spinequant recognises (columns: "
            f"{list(table.columns)}). A point list needs columns x, y, z (or x_um, y_um, z_um, "
            f"or x_px, y_px, z_px, or Fiji's X, Y, Slice); spinequant's spines.csv has "
            f"centroid_z_um, centroid_y_um, centroid_x_um."
        )
    (xc, yc, zc), named_units, one_based = found
    units = named_units or (units.lower().replace("µm", "um") if units else None)
    if units not in ("um", "px"):
        raise InputError(
            f"'{path}' does not say whether its x, y, z are in µm or pixels. Name the columns "
            f"x_um, y_um, z_um (or x_px, ...), or give the unit (--units um or --units px)."
        )
    zyx = np.column_stack([table[lower[zc]], table[lower[yc]], table[lower[xc]]]).astype(float)
    if one_based:
        zyx[:, 0] -= 1
    if units == "px":
        zyx = zyx * _need_spacing(spacing, path)
    return _points_table(zyx, group, column="rater")


def _spine_prefixes(point: str) -> list[str]:
    return {"auto": ["centroid_", "head_"], "centroid": ["centroid_"], "head": ["head_"]}.get(point, [])


def _xyz_columns(lower: dict):
    """((x, y, z) column keys, units named by them or None, z is a 1-based slice number)."""
    for suffix, units in (("_um", "um"), ("_px", "px"), ("_pixel", "px"), ("", None)):
        keys = tuple(f"{a}{suffix}" for a in "xyz")
        if all(k in lower for k in keys):
            return keys, units, False
    if "x" in lower and "y" in lower and "slice" in lower:
        return ("x", "y", "slice"), None, True
    return None


def read_imagej_rois(path, *, spacing=None) -> pd.DataFrame:
    """Points from an ImageJ ROI file or ROI set (.roi / .zip) in pixels.

    Point ROIs give one row per point, z from each point's stack position (multi-point
    ROIs) or the ROI's position; other ROIs (polygons, ovals, ...) give the centroid of
    their outline. Positions are 1-based slices; 0 (no position)
    is read as slice 1 of a single-plane image.
    """
    import roifile

    path = Path(path)
    try:
        rois = roifile.roiread(path)
    except Exception as exc:  # roifile raises several types for foreign files
        raise InputError(f"'{path}' is not an ImageJ ROI file or ROI set ({exc}).") from None
    rois = rois if isinstance(rois, list) else [rois]
    rows = []
    for roi in rois:
        xy = np.asarray(roi.coordinates(), dtype=float).reshape(-1, 2)
        if xy.size == 0:
            continue
        z_roi = max(int(roi.z_position or roi.position or 1), 1) - 1
        if roi.roitype == roifile.ROI_TYPE.POINT:
            pos = roi.counter_positions
            z = (np.asarray(pos, float) - 1 if pos is not None and len(pos) == len(xy) and np.any(pos)
                 else np.full(len(xy), float(z_roi)))
            rows += [(zz, y, x) for zz, (x, y) in zip(z, xy)]
        else:
            rows.append((float(z_roi), xy[:, 1].mean(), xy[:, 0].mean()))
    zyx = np.array(rows, dtype=float).reshape(-1, 3) * _need_spacing(spacing, path)
    return _points_table(zyx)


def read_cellcounter_xml(path, *, spacing=None) -> pd.DataFrame:
    """Points from a Fiji Cell Counter XML file (MarkerX, MarkerY in pixels, MarkerZ a 1-based slice).

    ``group`` is the marker type number.
    """
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InputError(f"'{path}' is not a readable XML file ({exc}).") from None
    rows, groups = [], []
    for mtype in root.iter("Marker_Type"):
        kind = (mtype.findtext("Type") or "").strip()
        for marker in mtype.iter("Marker"):
            try:
                x, y = float(marker.findtext("MarkerX")), float(marker.findtext("MarkerY"))
                z = float(marker.findtext("MarkerZ") or 1)
            except (TypeError, ValueError):
                raise InputError(f"'{path}' has a marker without numeric MarkerX/MarkerY/MarkerZ.") from None
            rows.append((max(z, 1) - 1, y, x))
            groups.append(kind)
    if not rows and root.find(".//Marker_Data") is None:
        raise InputError(f"'{path}' is not a Cell Counter file: it has no Marker_Data element.")
    zyx = np.array(rows, dtype=float).reshape(-1, 3) * _need_spacing(spacing, path)
    return _points_table(zyx, np.array(groups, dtype=object))


def _need_spacing(spacing, path) -> np.ndarray:
    if spacing is None or np.any(np.isnan(np.asarray(spacing, dtype=float))):
        raise InputError(f"The points in '{path}' are in pixels; spinequant needs the voxel size to "
                         f"convert them to µm. {VOXEL_HINT}")
    return np.asarray(check_spacing(spacing, where=f"'{path}'"))


def _points_table(zyx, group=None, *, column: str = "group") -> pd.DataFrame:
    zyx = np.asarray(zyx, dtype=float).reshape(-1, 3)
    table = pd.DataFrame(zyx, columns=POINT_COLUMNS)
    if group is not None and len(group) == len(table) and len(set(group)) > 1:
        table[column] = group
    return table
