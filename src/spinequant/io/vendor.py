"""Vendor formats through optional readers: Zeiss CZI (czifile), Leica LIF (liffile), Nikon ND2 (nd2).

Each reader is an optional extra (``pip install 'spinequant[czi]'`` ...). The functions that
turn a reader's metadata into a voxel size in µm are plain functions of that metadata so
they can be checked without vendor files.
"""

from __future__ import annotations

import importlib
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..stack import Stack
from .axes import RGB_NAMES, grey_from_rgb, spatial_spacing, to_canonical
from .units import tidy, unit_to_um

#: suffix -> (module to import, name of the spinequant extra, format name)
READERS = {
    ".czi": ("czifile", "czi", "Zeiss CZI"),
    ".lif": ("liffile", "lif", "Leica LIF"),
    ".nd2": ("nd2", "nd2", "Nikon ND2"),
}

_NAN = float("nan")


def open_vendor(path: str | os.PathLike, *, image: int | str | None = None) -> Stack:
    """Read a CZI, LIF or ND2 file into a :class:`Stack` (axes a subset of ``TCZYX``).

    Parameters
    ----------
    path : str or Path
        A ``.czi``, ``.lif`` or ``.nd2`` file.
    image : int or str, optional
        Which image to read when the file holds several: a CZI scene index, a LIF image
        index or name, an ND2 stage position index. Not needed when there is one.

    Voxel-size entries the file does not record are ``nan``; the data are read into memory.
    Raises :class:`~spinequant.errors.InputError` naming the ``pip`` command when the
    optional reader is not installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise InputError(f"'{path}' is not a CZI, LIF or ND2 file (by its extension).")
    module = import_reader(suffix)
    opener = {".czi": _open_czi, ".lif": _open_lif, ".nd2": _open_nd2}[suffix]
    try:
        return opener(module, path, image)
    except InputError:
        raise
    except Exception as exc:  # the readers raise many types for damaged files
        name = READERS[suffix][2]
        raise InputError(
            f"'{path}' cannot be read as a {name} file ({type(exc).__name__}: {exc}). Check that the "
            f"file was copied completely, or export the stack as OME-TIFF from the acquisition "
            f"software or Fiji (Bio-Formats) and use that."
        ) from None


def import_reader(suffix: str):
    """Import the optional reader for ``suffix``; raise :class:`InputError` with the fix if missing."""
    module, extra, name = READERS[suffix]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(
            f"Reading {name} files needs the optional package '{module}', which is not installed. "
            f"Install it with:  pip install 'spinequant[{extra}]'  (or: pip install {module}), "
            f"then run the command again. Alternatively export the stack as OME-TIFF."
        ) from None


# --- CZI -------------------------------------------------------------------------------------

def czi_spacing(xml: str | None) -> tuple[float, float, float]:
    """Voxel size (z, y, x) in µm from CZI metadata XML (``Scaling/Items/Distance``, metres)."""
    out = {"Z": _NAN, "Y": _NAN, "X": _NAN}
    if not xml:
        return (_NAN,) * 3
    root = ET.fromstring(xml)
    for dist in root.iter("Distance"):
        axis = dist.get("Id", "").upper()
        value = dist.findtext("Value")
        if axis in out and value:
            metres = float(value)
            if metres > 0:
                out[axis] = tidy(metres * 1e6)
    return out["Z"], out["Y"], out["X"]


def czi_channel_names(xml: str | None) -> tuple[str, ...]:
    """Channel names from CZI metadata XML (``Information/Image/Dimensions/Channels``)."""
    if not xml:
        return ()
    root = ET.fromstring(xml)
    for path in (".//Information/Image/Dimensions/Channels/Channel", ".//DisplaySetting/Channels/Channel"):
        channels = root.findall(path)
        if channels:
            return tuple(c.get("Name") or c.findtext("Fluor") or f"channel {i}" for i, c in enumerate(channels))
    return ()


# czifile's dimension letters: S = scene, 0 = colour samples (RGB); the rest must be single.
_CZI_AXES = {"T": "T", "C": "C", "Z": "Z", "Y": "Y", "X": "X", "0": "S", "S": "scene"}
_CZI_NAMES = {"B": "blocks", "V": "views", "I": "illuminations", "R": "rotations", "H": "phases",
              "M": "mosaic tiles"}


def _open_czi(czifile, path: Path, image) -> Stack:
    with czifile.CziFile(str(path)) as czi:
        return czi_to_stack(czi, path, image=image)


def czi_to_stack(czi, path, *, image=None) -> Stack:
    """Build a :class:`Stack` from an open czifile ``CziFile`` (``axes``, ``asarray``, ``metadata``)."""
    xml = czi.metadata() if callable(czi.metadata) else czi.metadata
    data = np.asarray(czi.asarray())
    axes = [_CZI_AXES.get(a, a) for a in czi.axes]
    data, axes = _pick_image(data, axes, "scene", image, path, names=None)
    letters = _name_axes(data.shape, axes, _CZI_NAMES, path)
    return _finish(data, letters, czi_spacing(xml), czi_channel_names(xml), path, "CZI", czi.axes)


# --- LIF -------------------------------------------------------------------------------------

#: Leica DimID -> axis letter (1 X, 2 Y, 3 Z, 4 T; others are not spatial).
_LIF_DIMID = {1: "X", 2: "Y", 3: "Z", 4: "T"}
_LIF_NAMES = {"λ": "emission wavelengths", "Λ": "excitation wavelengths", "A": "rotations",
              "N": "XT slices", "Q": "T slices", "M": "mosaic tiles", "L": "loops", "H": "TCSPC bins"}


def lif_spacing(dimensions: Iterable[Mapping]) -> tuple[float, float, float]:
    """Voxel size (z, y, x) in µm from LIF ``DimensionDescription`` attributes.

    Each mapping has ``DimID``, ``NumberOfElements``, ``Length`` and ``Unit`` (as in the XML);
    Leica's ``Length`` spans first to last element, so the step is ``Length / (N - 1)``.
    """
    out = {"Z": _NAN, "Y": _NAN, "X": _NAN}
    for dim in dimensions:
        axis = _LIF_DIMID.get(int(dim["DimID"]))
        n = int(dim["NumberOfElements"])
        factor = unit_to_um(dim.get("Unit"))
        if axis not in out or n < 2 or factor is None:
            continue
        step = abs(float(dim["Length"])) / (n - 1) * factor
        if step > 0:
            out[axis] = tidy(step)
    return out["Z"], out["Y"], out["X"]


def _open_lif(liffile, path: Path, image) -> Stack:
    with liffile.LifFile(str(path)) as lif:
        return lif_to_stack(lif, path, image=image)


def lif_to_stack(lif, path, *, image=None) -> Stack:
    """Build a :class:`Stack` from an open liffile ``LifFile`` (its ``images`` sequence)."""
    images = list(lif.images)
    names = [getattr(im, "name", f"image {i}") for i, im in enumerate(images)]
    if not images:
        raise InputError(f"'{path}' holds no images.")
    index = _choose(image, names, "image", path)
    img = images[index]
    dims_xml = img.xml_element.findall("./Data/Image/ImageDescription/Dimensions/DimensionDescription")
    chans_xml = img.xml_element.findall("./Data/Image/ImageDescription/Channels/ChannelDescription")
    spacing = lif_spacing(d.attrib for d in dims_xml)
    data = np.asarray(img.asarray())
    letters = _name_axes(data.shape, list(img.dims), _LIF_NAMES, path)
    channels = tuple(c.get("LUTName") or f"channel {i}" for i, c in enumerate(chans_xml))
    stack = _finish(data, letters, spacing, channels, path, "LIF", "".join(img.dims))
    stack.metadata["image"] = names[index]
    return stack


# --- ND2 -------------------------------------------------------------------------------------

def nd2_spacing(volume) -> tuple[float, float, float]:
    """Voxel size (z, y, x) in µm from nd2's ``metadata.channels[0].volume``.

    Uses ``axesCalibration`` (x, y, z in µm) only where ``axesCalibrated`` is true: nd2 reports
    1 µm for uncalibrated axes, which must not be taken as a measurement.
    """
    if volume is None:
        return (_NAN,) * 3
    calibrated = getattr(volume, "axesCalibrated", None) or (False, False, False)
    values = getattr(volume, "axesCalibration", None) or (_NAN, _NAN, _NAN)
    x, y, z = (tidy(float(v)) if ok and v and float(v) > 0 else _NAN for v, ok in zip(values, calibrated))
    return z, y, x


def _open_nd2(nd2, path: Path, image) -> Stack:
    with nd2.ND2File(str(path)) as f:
        return nd2_to_stack(f, path, image=image)


def nd2_to_stack(f, path, *, image=None) -> Stack:
    """Build a :class:`Stack` from an open ``nd2.ND2File`` (``sizes``, ``asarray``, ``metadata``)."""
    sizes = dict(f.sizes)
    axes = list(sizes)
    position = None
    if "P" in sizes:
        position = _choose(image, [f"position {i}" for i in range(sizes["P"])], "stage position", path)
        data = np.asarray(f.asarray(position=position))
        data = data.reshape([1 if a == "P" else n for a, n in sizes.items()])
    else:
        _choose(image, ["the only image"], "image", path)
        data = np.asarray(f.asarray())
    meta = getattr(f, "metadata", None)
    channels_meta = list(getattr(meta, "channels", None) or [])
    volume = getattr(channels_meta[0], "volume", None) if channels_meta else None
    channels = tuple(c.channel.name for c in channels_meta)
    letters = _name_axes(data.shape, ["P" if a == "P" else a for a in axes], {"U": "unknown loops"}, path)
    stack = _finish(data, letters, nd2_spacing(volume), channels, path, "ND2", "".join(axes))
    if position is not None:
        stack.metadata["image"] = f"position {position}"
    return stack


# --- shared ----------------------------------------------------------------------------------

def _choose(image, names: Sequence[str], what: str, path) -> int:
    """Index of the image the user picked among ``names`` (0 when there is just one)."""
    n = len(names)
    if image is None:
        if n == 1:
            return 0
        listing = ", ".join(f"{i}: {name}" for i, name in enumerate(names[:20])) + (" ..." if n > 20 else "")
        raise InputError(
            f"'{path}' holds {n} {what}s ({listing}); spinequant reads one at a time. Choose one "
            f"with --image N on the command line or image=N in Python (read_stack(path, image=N))."
        )
    if isinstance(image, str) and not image.lstrip("-").isdigit():
        if image in names:
            return list(names).index(image)
        raise InputError(f"'{path}' has no {what} named {image!r}; it has: {', '.join(names)}.")
    index = int(image)
    if not -n <= index < n:
        raise InputError(
            f"{what.capitalize()} {index} does not exist: '{path}' has {n} {what}"
            f"{'s' if n != 1 else ''}, numbered 0 to {n - 1}."
        )
    return index % n


def _pick_image(data, axes: list[str], what: str, image, path, names):
    """Select one entry along the pseudo-axis ``what`` (e.g. CZI scenes) and drop it."""
    if what not in axes:
        _choose(image, ["the only image"], "image", path)
        return data, axes
    i = axes.index(what)
    n = data.shape[i]
    index = _choose(image, names or [f"{what} {k}" for k in range(n)], what, path)
    return np.take(data, index, axis=i), axes[:i] + axes[i + 1:]


_KNOWN = frozenset("TCZYXS")


def _name_axes(shape, axes: Sequence[str], meanings: Mapping[str, str], path) -> str:
    """Axis letters for ``to_canonical``: extra vendor axes must have length 1."""
    letters = []
    for a, n in zip(axes, shape):
        if a in _KNOWN:
            letters.append(a)
            continue
        if n > 1:
            what = meanings.get(a, f"'{a}' entries")
            raise InputError(
                f"'{path}' has {n} {what} (axis {a}), which spinequant cannot analyse as one "
                f"stack. Export a single Z-stack (one tile/view) as OME-TIFF from the acquisition "
                f"software or Fiji (Bio-Formats), or merge the tiles first."
            )
        letters.append("Q")  # a length-1 sequence axis, dropped by to_canonical
    return "".join(letters)


def _finish(data, letters: str, spacing, channels, path, fmt: str, file_axes: str) -> Stack:
    rgb = "S" in letters and data.shape[letters.index("S")] in (3, 4)
    data, axes, notes = to_canonical(data, letters, source=f"'{path}'")
    stored_as_rgb = False
    if rgb:
        data, axes, stored_as_rgb = grey_from_rgb(data, axes, notes)
        rgb = not stored_as_rgb
    if rgb:
        channels = RGB_NAMES[:data.shape[axes.index("C")]]
        notes.append("RGB colour image: its colours are read as channels")
    if "C" in axes and len(channels) != data.shape[axes.index("C")]:
        channels = ()
    elif "C" not in axes:
        channels = ()
    spacing = spatial_spacing(axes, spacing)
    if any(math.isnan(s) for s in spacing):
        notes.append(f"the {fmt} metadata lack part of the voxel size")
    metadata = {"format": fmt, "file_axes": file_axes, "notes": notes, "rgb": rgb}
    if stored_as_rgb:
        metadata["stored_as_rgb"] = True
    return Stack(data=data, spacing=spacing, axes=axes, channel_names=tuple(channels),
                 source=str(path), spacing_source="metadata", metadata=metadata)
