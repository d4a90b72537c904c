"""TIFF stacks: ImageJ hyperstacks, OME-TIFF and plain multi-page TIFF, with voxel size."""

from __future__ import annotations

import contextlib
import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import tifffile

from .._atomic import atomic_path
from ..errors import InputError
from ..stack import Stack
from .axes import RGB_NAMES, to_canonical
from .units import scaled, tidy, unit_to_um


def open_tiff(path: str | os.PathLike) -> Stack:
    """Read a TIFF into a :class:`Stack`; ``spacing`` entries the file lacks are ``nan``."""
    path = Path(path)
    with _quiet_tifffile():
        return _open_tiff(path)


@contextlib.contextmanager
def _quiet_tifffile():
    # tifffile logs each damaged offset it meets; the InputError below says it once, plainly.
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _open_tiff(path: Path) -> Stack:
    try:
        tf = tifffile.TiffFile(path)
    except tifffile.TiffFileError as exc:
        raise InputError(
            f"'{path}' is not a readable TIFF image ({exc}). Check that the file is a TIFF and "
            f"was copied completely; other formats need their own extension (.zarr, .czi, .lif, .nd2)."
        ) from None
    with tf:
        if not tf.series:
            raise InputError(
                f"'{path}' starts like a TIFF file but holds no readable image: it is damaged or "
                f"incomplete. Copy the file again or re-export it from the acquisition software or Fiji."
            )
        series = tf.series[0]
        _check_complete(tf, series, path)
        try:
            data = series.asarray()
        except Exception as exc:  # tifffile raises many types for damaged files
            raise InputError(
                f"'{path}' is damaged: its image data cannot be decoded ({exc}). Re-export the "
                f"stack from the acquisition software or Fiji."
            ) from None
        axes = series.axes
        if tf.is_ome:
            spacing, channels, fmt = _ome_spacing(tf.ome_metadata, series)
        elif tf.is_imagej:
            spacing, channels, fmt = _imagej_spacing(tf), (), "ImageJ TIFF"
        else:
            spacing, channels, fmt = _plain_spacing(tf), (), "TIFF"
    data, axes, notes = to_canonical(data, axes, source=f"'{path}'")
    rgb = "S" in series.axes and series.shape[series.axes.index("S")] in (3, 4)
    if rgb:
        channels = RGB_NAMES[:series.shape[series.axes.index("S")]]
        notes.append("RGB colour image: its colours are read as channels")
    if "C" in axes and len(channels) != data.shape[axes.index("C")]:
        channels = ()
    return Stack(
        data=data,
        spacing=spacing,
        axes=axes,
        channel_names=tuple(channels),
        source=str(path),
        spacing_source="metadata",
        metadata={"format": fmt, "file_axes": series.axes, "notes": notes, "rgb": rgb},
    )


def _check_complete(tf: tifffile.TiffFile, series, path: Path) -> None:
    size = os.path.getsize(path)
    for page in series.pages:
        if page is None:
            continue
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
        if ends and max(ends) > size:
            raise InputError(
                f"'{path}' is truncated: the file is {size} bytes but its image data should run "
                f"to byte {max(ends)}. The copy or the acquisition was interrupted; copy the file "
                f"again or re-export it."
            )


def _imagej_spacing(tf: tifffile.TiffFile) -> tuple[float, float, float]:
    ij = tf.imagej_metadata or {}
    factor = unit_to_um(ij.get("unit"))
    yx = _resolution_spacing(tf.pages[0], factor)
    z = ij.get("spacing")
    z_um = tidy(float(z) * factor) if (z is not None and factor is not None) else float("nan")
    return (z_um, *yx)


def _plain_spacing(tf: tifffile.TiffFile) -> tuple[float, float, float]:
    page = tf.pages[0]
    unit = page.tags.get("ResolutionUnit")
    factor = {2: 25400.0, 3: 1e4}.get(int(unit.value) if unit is not None else 1)
    return (float("nan"), *_resolution_spacing(page, factor))


def _resolution_spacing(page, factor: float | None) -> tuple[float, float]:
    out = []
    for name in ("YResolution", "XResolution"):
        tag = page.tags.get(name)
        if tag is None or factor is None:
            out.append(float("nan"))
            continue
        num, den = tag.value
        out.append(tidy(den / num * factor) if num else float("nan"))
    return tuple(out)


def _ome_spacing(xml: str, series):
    root = ET.fromstring(xml)
    ns = {"ome": root.tag.split("}")[0].strip("{")} if root.tag.startswith("{") else {}
    q = "ome:" if ns else ""
    pixels = root.find(f".//{q}Image/{q}Pixels", ns)
    if pixels is None:
        return (float("nan"),) * 3, (), "OME-TIFF"
    spacing = []
    for axis in "ZYX":
        value = pixels.get(f"PhysicalSize{axis}")
        factor = unit_to_um(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        spacing.append(scaled(value, factor) if value is not None and factor else float("nan"))
    channels = tuple(c.get("Name") or f"channel {i}" for i, c in enumerate(pixels.findall(f"{q}Channel", ns)))
    return tuple(spacing), channels, "OME-TIFF"


def write_tiff(path: str | os.PathLike, data: np.ndarray, spacing, *, axes: str | None = None) -> Path:
    """Write ``data`` as an ImageJ-compatible TIFF whose scale Fiji shows in µm.

    ``spacing`` is (z, y, x) for a stack, (y, x) for a 2D image (``axes`` defaults to
    ``"ZYX"`` or ``"YX"``; a 2D file records no z step).

    Integer labels are stored as uint8/uint16 when they fit, otherwise as float32 (exact up
    to 2**24 labels), since ImageJ cannot open 32-bit integer TIFFs. Floating-point data is
    stored as float32. The file is written to a temporary name and renamed.
    """
    data = _imagej_dtype(np.asarray(data))
    spacing = tuple(float(s) for s in spacing)
    y, x = spacing[-2:]
    metadata = {"unit": "um", "axes": axes or "ZYX"[3 - data.ndim:]}
    if len(spacing) == 3:
        metadata["spacing"] = spacing[0]
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            imagej=True,
            resolution=(1.0 / x, 1.0 / y),
            metadata=metadata,
            compression="zlib",
        )
    return Path(path)


def _imagej_dtype(data: np.ndarray) -> np.ndarray:
    if data.dtype == bool:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    if data.dtype in (np.uint8, np.uint16):
        return data
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if lo >= 0 and hi < 256:
        return data.astype(np.uint8)
    if lo >= 0 and hi < 65536:
        return data.astype(np.uint16)
    if max(abs(lo), abs(hi)) > 2**24:
        raise InputError(f"Values up to {hi} cannot be stored exactly in an ImageJ TIFF (limit 2**24).")
    return data.astype(np.float32)
