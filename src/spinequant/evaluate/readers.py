"""Read the annotations users have into arrays and point tables for evaluation.

Point tables have the columns ``z_um, y_um, x_um`` (µm), plus ``rater`` when a CSV has a
``rater`` column and ``group`` for the marker types of a CellCounter file (when several).
Pixel coordinates are converted with the voxel size; ImageJ slice numbers are 1-based.
Points of a 2D image (a pixel size (y, x), or a table without z) lie on its plane: ``z_um`` is 0.

YOLO label files (one ``.txt`` per image, as 2D training sets come) hold one object per line
in fractions of the image width and height: ``class x_centre y_centre width height`` (a box)
or ``class x1 y1 x2 y2 ...`` (a polygon). :func:`read_yolo_boxes` gives points,
:func:`read_yolo_polygons` a label image.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validate import PIXEL_HINT, VOXEL_HINT, check_spacing

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
    if suffix == ".txt" and is_yolo(p):
        return "yolo"
    if suffix in (".csv", ".tsv", ".txt", ".roi", ".zip", ".xml") or _starts_with(p, (b"<?xml",)):
        return "points"
    if suffix == ".swc":
        return "swc"
    raise InputError(
        f"'{path}' is not an annotation format spinequant evaluates. Use a label image (.tif), "
        f"a point list (.csv, ImageJ ROI set .zip/.roi, CellCounter .xml), YOLO labels (.txt) "
        f"or a centreline (.swc)."
    )


def _starts_with(path: Path, magics) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return False
    return any(head.startswith(m) for m in magics)


def read_labels(path: str | os.PathLike, *, voxel_size=None) -> tuple[np.ndarray, tuple]:
    """Read a label image; returns (integer array Z Y X, or Y X for a 2D image, spacing).

    Unknown spacing is NaN; a 2D image has the spacing (y, x).
    """
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
        for axes in ("zyx", "yx"):   # a 2D result's spines.csv has no z
            cols = [f"{prefix}{a}_um" for a in axes]
            if all(c in lower for c in cols):
                values = table[[lower[c] for c in cols]].to_numpy(float)
                return _points_table(_on_plane(values), group, column="rater")
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
    z = table[lower[zc]] if zc is not None else np.zeros(len(table))
    zyx = np.column_stack([z, table[lower[yc]], table[lower[xc]]]).astype(float)
    if one_based:
        zyx[:, 0] -= 1
    if units == "px":
        zyx = zyx * _need_spacing(spacing, path)
    return _points_table(zyx, group, column="rater")


def _spine_prefixes(point: str) -> list[str]:
    return {"auto": ["centroid_", "head_"], "centroid": ["centroid_"], "head": ["head_"]}.get(point, [])


def _xyz_columns(lower: dict):
    """((x, y, z) column keys, units named by them or None, z is a 1-based slice number).

    A 2D table (x and y only) has the z key ``None``.
    """
    for suffix, units in (("_um", "um"), ("_px", "px"), ("_pixel", "px"), ("", None)):
        keys = tuple(f"{a}{suffix}" for a in "xyz")
        if all(k in lower for k in keys):
            return keys, units, False
    if "x" in lower and "y" in lower and "slice" in lower:
        return ("x", "y", "slice"), None, True
    for suffix, units in (("_um", "um"), ("_px", "px"), ("_pixel", "px"), ("", None)):
        if f"x{suffix}" in lower and f"y{suffix}" in lower:
            return (f"x{suffix}", f"y{suffix}", None), units, False
    return None


def _on_plane(values: np.ndarray) -> np.ndarray:
    """(y, x) columns become (z = 0, y, x): the points of a 2D image lie on its plane."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 2 and values.shape[1] == 2:
        return np.column_stack([np.zeros(len(values)), values])
    return values


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
    """Factors (z, y, x) from pixels to µm. For a 2D pixel size (y, x) z becomes 0: the points
    lie on the image's plane (no z size is made up)."""
    if spacing is None or np.any(np.isnan(np.asarray(spacing, dtype=float))):
        raise InputError(f"The points in '{path}' are in pixels; spinequant needs the voxel size to "
                         f"convert them to µm. {VOXEL_HINT} For a 2D image: {PIXEL_HINT}")
    values = check_spacing(spacing, where=f"'{path}'", ndim=None)
    return np.asarray(values if len(values) == 3 else (0.0, *values))


def _points_table(zyx, group=None, *, column: str = "group") -> pd.DataFrame:
    zyx = np.asarray(zyx, dtype=float).reshape(-1, 3)
    table = pd.DataFrame(zyx, columns=POINT_COLUMNS)
    if group is not None and len(group) == len(table) and len(set(group)) > 1:
        table[column] = group
    return table


# --- YOLO label files -------------------------------------------------------------------------

#: YOLO spine-type class letters as data sets write them, and spinequant's type names.
TYPE_LETTERS = {"M": "mushroom", "S": "stubby", "B": "branched", "T": "thin", "F": "filopodia"}


def is_yolo(path: str | os.PathLike) -> bool:
    """True when the first non-empty line of a text file is a YOLO box or polygon line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    tokens = line.split()
                    numbers = [float(t) for t in tokens]
                    return (float(numbers[0]).is_integer() and (len(numbers) == 5 or
                            (len(numbers) >= 7 and len(numbers) % 2 == 1)))
    except (OSError, ValueError):
        return False
    return False


def read_yolo(path: str | os.PathLike) -> list[tuple[int, np.ndarray, bool]]:
    """The objects of a YOLO label file: ``(class, vertices (K, 2) as x, y fractions, is_box)``.

    A 5-value line ``class xc yc w h`` is a box (returned as its 4 corners); a line
    ``class x1 y1 x2 y2 ...`` with at least 3 vertices is a polygon. An empty file has no objects.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"The annotation file '{path}' does not exist. Check the path.")
    objects = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(t) for t in line.split()]
        except ValueError:
            raise InputError(f"Line {number} of '{path}' is not a YOLO label line (numbers only: "
                             f"class x_centre y_centre width height, or class x1 y1 x2 y2 ...): "
                             f"{line.strip()[:80]!r}.") from None
        cls, coords = values[0], np.asarray(values[1:])
        if not cls.is_integer() or cls < 0:
            raise InputError(f"Line {number} of '{path}' starts with {values[0]:g}; a YOLO line starts "
                             f"with its class number (0, 1, 2 ...).")
        if len(coords) == 4:
            xc, yc, w, h = coords
            if w < 0 or h < 0:
                raise InputError(f"Line {number} of '{path}' has a box of negative width or height.")
            vertices = np.array([[xc - w / 2, yc - h / 2], [xc + w / 2, yc - h / 2],
                                 [xc + w / 2, yc + h / 2], [xc - w / 2, yc + h / 2]])
            is_box = True
        elif len(coords) >= 6 and len(coords) % 2 == 0:
            vertices, is_box = coords.reshape(-1, 2), False
        else:
            raise InputError(
                f"Line {number} of '{path}' has {len(coords)} numbers after the class; a YOLO box has "
                f"4 (x_centre y_centre width height) and a polygon an even number, at least 6 (x y "
                f"per vertex)."
            )
        if not np.isfinite(vertices).all() or vertices.min() < -0.01 or vertices.max() > 1.01:
            raise InputError(
                f"Line {number} of '{path}' has coordinates outside 0-1; YOLO labels are fractions of "
                f"the image width and height. Are they in pixels? Divide x by the width and y by the "
                f"height."
            )
        objects.append((int(cls), vertices, is_box))
    return objects


def _pixels(vertices: np.ndarray, shape) -> np.ndarray:
    """x, y fractions -> (row, column) pixel coordinates; pixel i covers [i - 0.5, i + 0.5]."""
    height, width = _image_shape(shape)
    return np.column_stack([vertices[:, 1] * height - 0.5, vertices[:, 0] * width - 0.5])


def _image_shape(shape) -> tuple[int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2 or min(shape) < 1:
        raise InputError(f"YOLO labels need the 2D image shape (height, width); got {shape}.")
    return shape


def _polygon_centre(rc: np.ndarray) -> np.ndarray:
    """Area centroid of a polygon (row, column vertices); the vertex mean when it has no area."""
    r, c = rc[:, 0], rc[:, 1]
    cross = c * np.roll(r, -1) - np.roll(c, -1) * r
    area = cross.sum() / 2
    if abs(area) < 1e-12:
        return rc.mean(axis=0)
    return np.array([((r + np.roll(r, -1)) * cross).sum(), ((c + np.roll(c, -1)) * cross).sum()]) / (6 * area)


def read_yolo_boxes(path: str | os.PathLike, shape) -> tuple[np.ndarray, np.ndarray]:
    """Points of a YOLO label file in pixels: ``(points (N, 2) as (y, x), classes (N,))``.

    ``shape`` is the image's (height, width). A box becomes its centre, a polygon its area
    centroid. Pixel ``i`` has its centre at ``i`` (as in a label image), so a fraction ``f`` of
    the width ``W`` is the pixel coordinate ``f * W - 0.5``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> _ = p.write_text("0 0.5 0.25 0.1 0.1")
    >>> read_yolo_boxes(p, (100, 200))
    (array([[24.5, 99.5]]), array([0]))
    """
    rows, classes = [], []
    for cls, vertices, is_box in read_yolo(path):
        rc = _pixels(vertices, shape)
        rows.append(rc.mean(axis=0) if is_box else _polygon_centre(rc))
        classes.append(cls)
    return np.asarray(rows, dtype=float).reshape(-1, 2), np.asarray(classes, dtype=np.int64)


def read_yolo_polygons(path: str | os.PathLike, shape) -> tuple[np.ndarray, np.ndarray]:
    """A label image of a YOLO label file: ``(labels (height, width), classes (N,))``.

    Object ``i + 1`` is line ``i`` (a polygon, or a box as a rectangle); ``classes[i]`` is its
    class. A pixel belongs to a polygon when its centre lies inside; where objects overlap the
    later line wins. An object too small to contain any pixel centre gets the pixel holding its
    centroid, so every annotation counts.
    """
    from skimage.draw import polygon as fill_polygon

    height, width = _image_shape(shape)
    labels = np.zeros((height, width), dtype=np.int32)
    classes = []
    for index, (cls, vertices, _) in enumerate(read_yolo(path), 1):
        rc = _pixels(vertices, (height, width))
        rr, cc = fill_polygon(rc[:, 0], rc[:, 1], shape=(height, width))
        if rr.size == 0:
            centre = np.clip(np.rint(_polygon_centre(rc)).astype(int), 0, [height - 1, width - 1])
            rr, cc = centre[:1], centre[1:]
        labels[rr, cc] = index
        classes.append(cls)
    return labels, np.asarray(classes, dtype=np.int64)


def parse_classes(text: str | None) -> dict[int, str] | None:
    """``"M,S,B,T,F"`` -> {0: "mushroom", 1: "stubby", ...}: the spine type of each YOLO class.

    Letters M S B T F and full type names (``mushroom``, ``thin`` ...) are understood; other
    names are kept as they are.
    """
    if text is None:
        return None
    names = [t.strip() for t in str(text).split(",")]
    if not all(names):
        raise InputError(f"--classes {text!r} has an empty name; give one name per YOLO class, "
                         f"separated by commas, e.g. --classes M,S,B,T,F.")
    return {i: TYPE_LETTERS.get(n.upper(), n.lower()) for i, n in enumerate(names)}
