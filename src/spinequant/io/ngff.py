"""Validate OME-Zarr (NGFF) image metadata before any data are read.

Each function takes the plain JSON values of the metadata and either returns what the reader
needs or raises :class:`~spinequant.errors.InputError` naming the path, the faulty entry and
what to do. Damaged or hand-edited metadata must never end in a traceback or, worse, in an
image read with the wrong axes or voxel size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .units import scaled, unit_to_um

#: Metadata files of a Zarr folder: v3 keeps everything in zarr.json, v2 splits it.
METADATA_FILES = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")

# The axis type the NGFF specification expects for the axes spinequant reads by name.
_EXPECTED_TYPE = {"Z": "space", "Y": "space", "X": "space", "T": "time", "C": "channel"}


@dataclass(frozen=True)
class Axis:
    """One entry of ``multiscales[0].axes``; ``letter`` is spinequant's name for it."""

    name: str
    letter: str
    type: str | None = None
    unit: str | None = None


def fail(source: str, problem: str, meta_file: str) -> InputError:
    """The error for inconsistent metadata: what is wrong, where, and what to do."""
    return InputError(
        f"{source}: {problem}. The OME-Zarr metadata in '{meta_file}' is damaged or does not follow "
        f"the OME-Zarr (NGFF) specification; export the image again from the software that wrote it, "
        f"or correct that file."
    )


def check_metadata_json(folder: Path, source: str) -> None:
    """Raise if a Zarr metadata file in ``folder`` is not a readable JSON object."""
    for name in METADATA_FILES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            value = json.loads(file.read_bytes())
        except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(
                f"{source}: the Zarr metadata file '{file}' cannot be read ({reason}). It is damaged, "
                f"probably by an interrupted copy or download: copy the image again from the original."
            ) from None
        if not isinstance(value, dict):
            raise InputError(
                f"{source}: the Zarr metadata file '{file}' does not hold a JSON object "
                f"(it holds a {type(value).__name__}). It is damaged: copy the image again from the original."
            )


def ome_attributes(attrs: dict, source: str, meta_file: str) -> dict:
    """The OME attributes of a group: under ``"ome"`` in NGFF 0.5, at the top level before."""
    ome = attrs.get("ome", attrs)
    if not isinstance(ome, dict):
        raise fail(source, f"the 'ome' attribute is a {type(ome).__name__}, not a JSON object", meta_file)
    return ome


def first_multiscale(multiscales, source: str, meta_file: str) -> dict:
    """``multiscales[0]``, checked to hold a non-empty list of datasets."""
    if not isinstance(multiscales, list):
        raise fail(source, f"'multiscales' is a {type(multiscales).__name__}, not a list", meta_file)
    if not multiscales:
        raise fail(source, "'multiscales' is an empty list", meta_file)
    ms = multiscales[0]
    if not isinstance(ms, dict):
        raise fail(source, f"multiscales[0] is a {type(ms).__name__}, not a JSON object", meta_file)
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        what = "missing" if datasets is None else "not a non-empty list"
        raise fail(source, f"multiscales[0].datasets is {what}, so the image array is unknown", meta_file)
    level0 = datasets[0]
    if not isinstance(level0, dict):
        raise fail(source, f"multiscales[0].datasets[0] is a {type(level0).__name__}, not a JSON object", meta_file)
    path = level0.get("path")
    if not isinstance(path, str) or not path.strip("/"):
        what = "missing" if path is None else f"{path!r}, not the name of an array"
        raise fail(source, f"multiscales[0].datasets[0].path is {what}", meta_file)
    if ".." in Path(path).parts or Path(path).is_absolute():
        raise fail(source, f"multiscales[0].datasets[0].path {path!r} points outside the image folder", meta_file)
    return ms


def axes_of(ms: dict, ndim: int, source: str, meta_file: str) -> list[Axis]:
    """The axes of ``ms`` checked against the array's number of dimensions.

    NGFF 0.3 and older list the axes as plain names or not at all (then they are the last
    ``ndim`` of t, c, z, y, x).
    """
    entries = ms.get("axes")
    if entries is None:
        if not 2 <= ndim <= 5:
            raise fail(source, f"the array has {ndim} dimensions and multiscales[0].axes is missing", meta_file)
        return [Axis(a, a.upper()) for a in "tczyx"[5 - ndim:]]
    if not isinstance(entries, list):
        raise fail(source, f"multiscales[0].axes is a {type(entries).__name__}, not a list", meta_file)
    if len(entries) != ndim:
        raise fail(source, f"multiscales[0].axes has {len(entries)} entries but the array has {ndim} dimensions",
                   meta_file)
    axes = [_axis(entry, i, source, meta_file) for i, entry in enumerate(entries)]
    names = [a.name for a in axes]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise fail(source, f"multiscales[0].axes names the axis {repeated[0]!r} twice", meta_file)
    return axes


def _axis(entry, i: int, source: str, meta_file: str) -> Axis:
    where = f"multiscales[0].axes[{i}]"
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        raise fail(source, f"{where} is a {type(entry).__name__}, not a JSON object with a name", meta_file)
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail(source, f"{where} has no name" if name is None else f"{where} has the name {name!r}, not a text",
                   meta_file)
    for key in ("type", "unit"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise fail(source, f"{where} (axis {name!r}) has the {key} {entry[key]!r}, not a text", meta_file)
    letter = name.strip()[0].upper()
    kind = entry.get("type")
    expected = _EXPECTED_TYPE.get(letter)
    if kind in _EXPECTED_TYPE.values() and expected and kind != expected:
        raise fail(source, f"{where} is the axis {name!r} but has the type {kind!r} (expected {expected!r})",
                   meta_file)
    return Axis(name, letter, kind, entry.get("unit"))


def scale_of(ms: dict, ndim: int, source: str, meta_file: str) -> tuple[np.ndarray, list[str]]:
    """The scale of level 0: its dataset's ``scale`` times the multiscale-wide one.

    Every ``scale`` and ``translation`` is checked (one finite number per axis; scales
    positive). Returns the scale (ones where none is given) and notes for ``info``.
    """
    scale = np.ones(ndim)
    notes: list[str] = []
    for where, owner in (("multiscales[0].datasets[0]", ms["datasets"][0]), ("multiscales[0]", ms)):
        transforms = owner.get("coordinateTransformations", [])
        if not isinstance(transforms, list):
            raise fail(source, f"{where}.coordinateTransformations is a {type(transforms).__name__}, not a list",
                       meta_file)
        for k, t in enumerate(transforms):
            here = f"{where}.coordinateTransformations[{k}]"
            if not isinstance(t, dict):
                raise fail(source, f"{here} is a {type(t).__name__}, not a JSON object", meta_file)
            kind = t.get("type")
            if kind not in ("scale", "translation"):
                continue
            if kind in t:
                values = _numbers(t[kind], ndim, f"{here}.{kind}", source, meta_file)
                if kind == "scale":
                    bad = [v for v in values if v <= 0]
                    if bad:
                        raise fail(source, f"{here}.scale has the value {bad[0]:g}; a scale must be positive",
                                   meta_file)
                    scale = scale * values
            elif "path" in t:
                notes.append(f"the {kind} is stored in a separate file ({t['path']!r}), which spinequant does not "
                             f"read; give the voxel size with --voxel-size")
                if kind == "scale":
                    scale = scale * np.nan
            else:
                raise fail(source, f"{here} has the type {kind!r} but no {kind!r} values", meta_file)
    return scale, notes


def _numbers(values, ndim: int, where: str, source: str, meta_file: str) -> np.ndarray:
    if not isinstance(values, list):
        raise fail(source, f"{where} is a {type(values).__name__}, not a list of numbers", meta_file)
    if len(values) != ndim:
        raise fail(source, f"{where} has {len(values)} values but the array has {ndim} dimensions", meta_file)
    for v in values:
        # JSON true/false are ints to Python; a scale of True is damage, not 1.
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise fail(source, f"{where} holds {v!r}, which is not a finite number", meta_file)
    return np.asarray(values, dtype=float)


def spacing_zyx(axes: list[Axis], scale: np.ndarray) -> tuple[tuple[float, ...], list[str]]:
    """The (z, y, x) voxel size in µm (NaN where unknown) and notes about units."""
    by_letter: dict[str, tuple[Axis, float]] = {}
    for axis, value in zip(axes, scale):
        by_letter.setdefault(axis.letter, (axis, float(value)))
    spacing, notes, unitless = [], [], []
    for letter in "ZYX":
        if letter not in by_letter:
            spacing.append(np.nan)
            continue
        axis, value = by_letter[letter]
        factor = unit_to_um(axis.unit)
        if not axis.unit:
            unitless.append(letter)
        elif factor is None:
            notes.append(f"axis {axis.name} has the unit {axis.unit!r}, which is not a length; its scale is not "
                         f"taken as µm")
        spacing.append(scaled(value, factor) if factor and np.isfinite(value) else np.nan)
    if unitless:
        notes.append(f"axes {'/'.join(unitless)} have no unit; their scale is not taken as µm")
    return tuple(spacing), notes


def channel_names(ome: dict, n_channels: int | None) -> tuple[str, ...]:
    """The ``omero`` channel labels, or ``()`` when they are missing, malformed or do not match.

    ``n_channels`` is the length of the image's channel axis (``None`` when it has none).
    """
    omero = ome.get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list) or (n_channels is not None and len(channels) != n_channels):
        return ()
    labels = tuple(c.get("label", f"channel {i}") if isinstance(c, dict) else f"channel {i}"
                   for i, c in enumerate(channels))
    return tuple(str(label) for label in labels)
