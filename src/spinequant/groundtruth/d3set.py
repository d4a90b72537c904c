"""DeepD3 training sets (``.d3set``), both ways, with flammkuchen (``pip install 'spinequant[groundtruth]'``).

A ``.d3set`` is what DeepD3 (Fernholz et al. 2024) saves with ``flammkuchen.save(path, {"data":
..., "meta": DataFrame}, compression="blosc")`` and its training stream opens with
``flammkuchen.load``; spinequant reads and writes it with the same library, so the file is the
same HDF5 layout (PyTables groups, Blosc-compressed arrays, a pandas table):

* ``data["stacks"]["x0"]``, ``"x1"``, ... — the image stacks (Z, Y, X);
* ``data["dendrites"]["xN"]`` and ``data["spines"]["xN"]`` — the binary masks of the same shape;
* ``meta`` — a pandas DataFrame with one row per stack, row ``N`` for ``xN``: ``Resolution_XY``
  and ``Resolution_Z`` (µm), ``Width``, ``Height``, ``Depth`` (pixels), the crop (``crop``,
  ``X``, ``Y``, ``Z_begin``, ``Z_end``), ``Timestamp`` and ``Generated_from``.

Two gaps between flammkuchen 1.0.3 (its latest release) and today's libraries are bridged here:
its writer names ``np.unicode_`` and ``np.string_``, which NumPy 2 removed (:func:`_flammkuchen`
gives its module the two old aliases), and it recognises a table by the ``pandas_version``
attribute, which pandas 3 no longer writes (:func:`write_d3set` adds it as pandas 1 and 2 did;
:func:`read_d3set` reads a table without it through pandas).
"""

from __future__ import annotations

import os
import pickle
import types
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..errors import InputError

KINDS = ("stacks", "dendrites", "spines")

# What pandas 1.x and 2.x write as a table's "pandas_version" (their storage format's version).
_PANDAS_FORMAT_VERSION = "0.15.2"


@dataclass
class D3Stack:
    """One stack of a set: image, masks (bool, same shape), spacing (z, y, x µm) and its meta row."""

    image: np.ndarray
    dendrites: np.ndarray
    spines: np.ndarray
    spacing: tuple[float, float, float]
    meta: dict = field(default_factory=dict)


class _NumpyWithOldAliases(types.ModuleType):
    """NumPy as flammkuchen 1.0.3 expects it: with ``unicode_`` and ``string_`` (gone in NumPy 2)."""

    unicode_ = np.str_
    string_ = np.bytes_

    def __getattr__(self, name):
        return getattr(np, name)


def _flammkuchen():
    """The flammkuchen module, able to save arrays under NumPy 2; an InputError when it is missing."""
    try:
        import flammkuchen
        import flammkuchen.hdf5io as hdf5io
    except ImportError:
        raise InputError("Reading and writing DeepD3 .d3set files needs flammkuchen (the HDF5 library "
                         "DeepD3 saves them with): pip install 'spinequant[groundtruth]'.") from None
    if not hasattr(np, "unicode_") and getattr(hdf5io, "np", None) is np:
        hdf5io.np = _NumpyWithOldAliases("numpy")   # for flammkuchen's module alone, not NumPy's
    return flammkuchen


def meta_row(stack: D3Stack, source: str = "") -> dict:
    """DeepD3's meta columns for ``stack`` (whole stack, not cropped)."""
    z, y, x = (int(n) for n in stack.image.shape)
    row = {"crop": False, "X": 0, "Y": 0, "Width": x, "Height": y, "Depth": z, "Z_begin": 0, "Z_end": z,
           "Resolution_XY": float(stack.spacing[2]), "Resolution_Z": float(stack.spacing[0]),
           "Timestamp": datetime.now().strftime("%Y%m%d_%H%M%S"), "Generated_from": source}
    row.update({k: v for k, v in stack.meta.items() if k not in ("Resolution_XY", "Resolution_Z",
                                                                  "Width", "Height", "Depth")})
    return row


def write_d3set(path: str | os.PathLike, stacks, *, compression: str | None = "blosc") -> Path:
    """Write ``stacks`` (:class:`D3Stack`) as a ``.d3set`` file as DeepD3 saves one, atomically."""
    fl = _flammkuchen()
    import pandas as pd
    import tables

    from .._atomic import atomic_path

    stacks = list(stacks)
    if not stacks:
        raise InputError(f"No stacks to write to '{path}'.")
    data: dict[str, dict[str, np.ndarray]] = {k: {} for k in KINDS}
    rows = []
    for i, s in enumerate(stacks):
        image = np.asarray(s.image)
        if image.ndim != 3 or np.shape(s.dendrites) != image.shape or np.shape(s.spines) != image.shape:
            raise InputError(f"Stack {i} for '{path}': the image {image.shape} and its masks "
                             f"{np.shape(s.dendrites)}, {np.shape(s.spines)} must be 3D and of one shape.")
        for kind, arr in zip(KINDS, (image, np.asarray(s.dendrites) > 0, np.asarray(s.spines) > 0)):
            data[kind][f"x{i}"] = np.ascontiguousarray(arr)
        rows.append(meta_row(s, s.meta.get("Generated_from", "")))
    meta = pd.DataFrame.from_records(rows, columns=list(dict.fromkeys(k for r in rows for k in r)))
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():   # pandas 3 on HDFStore.put's future track_times default
            warnings.filterwarnings("ignore", message=".*track_times.*")
            fl.save(tmp, {"data": data, "meta": meta}, compression=compression)
        with tables.open_file(tmp, "a") as f:
            attrs = f.root.meta._v_attrs
            if "pandas_version" not in attrs:
                attrs.pandas_version = _PANDAS_FORMAT_VERSION
    return Path(path)


def read_d3set(path: str | os.PathLike) -> list[D3Stack]:
    """The stacks of a ``.d3set`` file, in the order x0, x1, ..."""
    fl = _flammkuchen()
    import tables

    path = Path(path)
    if not path.exists():
        raise InputError(f"The DeepD3 set '{path}' does not exist. Check the path.")
    if not path.is_file() or not tables.is_hdf5_file(str(path)):
        raise InputError(f"'{path}' is not an HDF5 file; a .d3set is DeepD3's HDF5 training set "
                         f"(saved by flammkuchen).")
    try:
        with warnings.catch_warnings():   # text columns of spinequant's earlier files (skipped)
            warnings.filterwarnings("ignore", message=".*variable length strings are not supported.*")
            d = fl.load(path)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as exc:
        raise InputError(f"'{path}' is an HDF5 file that flammkuchen cannot read ({type(exc).__name__}: "
                         f"{exc}); is it a DeepD3 .d3set, and whole?") from None
    groups = d.get("data") if isinstance(d, dict) else None
    if not isinstance(groups, dict) or any(not isinstance(groups.get(k), dict) for k in KINDS):
        found = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise InputError(f"'{path}' is HDF5 but not a DeepD3 set: it needs data/stacks, data/dendrites "
                         f"and data/spines, each with the stacks x0, x1, ... (found {found}).")
    meta = _meta_rows(d.get("meta"), path)
    names = sorted(groups["stacks"], key=_stack_number(path))
    stacks = []
    for name in names:
        if name not in groups["dendrites"] or name not in groups["spines"]:
            raise InputError(f"'{path}': stack {name} has no dendrite or spine mask.")
        n = _stack_number(path)(name)
        row = meta[n] if n < len(meta) else {}
        if "Resolution_XY" not in row or "Resolution_Z" not in row:
            raise InputError(f"'{path}': stack {name} has no Resolution_XY / Resolution_Z in row {n} of its "
                             f"meta table, so its voxel size is unknown.")
        spacing = (float(row["Resolution_Z"]), float(row["Resolution_XY"]), float(row["Resolution_XY"]))
        image = np.asarray(groups["stacks"][name])
        image = image if image.ndim == 3 else image.reshape((1,) * (3 - image.ndim) + image.shape)
        masks = []
        for kind in KINDS[1:]:
            mask = np.asarray(groups[kind][name])
            if mask.size != image.size:
                raise InputError(f"'{path}': the {kind} mask of stack {name} has the shape {mask.shape}, "
                                 f"the stack {image.shape}; they must agree.")
            masks.append(mask.astype(bool).reshape(image.shape))
        stacks.append(D3Stack(image, masks[0], masks[1], spacing, row))
    return stacks


def _stack_number(path):
    def number(name: str) -> int:
        if not (name.startswith("x") and name[1:].isdigit()):
            raise InputError(f"'{path}': a stack is named '{name}'; DeepD3's stacks are x0, x1, ... "
                             f"(the number is the stack's row in the meta table).")
        return int(name[1:])
    return number


def _native(v):
    """A plain Python value for a table cell (numbers, text, bool)."""
    v = v.item() if isinstance(v, np.generic) else v
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _meta_rows(meta, path: Path) -> list[dict]:
    """The rows of the meta table, read by flammkuchen (a DataFrame) or, without it, by pandas."""
    import pandas as pd

    if isinstance(meta, dict) and "pandas_type" in meta:    # a table without "pandas_version"
        meta = pd.read_hdf(path, "meta")
    if meta is None:
        return []
    if isinstance(meta, dict):      # spinequant's earlier layout: one array per column (text unreadable)
        columns = {str(k): v for k, v in meta.items() if isinstance(v, np.ndarray) and v.ndim == 1
                   and v.dtype.kind in "biuf" and k != "columns"}
        n = max((len(v) for v in columns.values()), default=0)
        return [{k: _native(v[i]) for k, v in columns.items() if i < len(v)} for i in range(n)]
    if not isinstance(meta, pd.DataFrame):
        raise InputError(f"'{path}': its meta is a {type(meta).__name__}, not a table (DeepD3 saves a "
                         f"pandas DataFrame with a row per stack).")
    return [{str(k): _native(v) for k, v in row.items()} for row in meta.to_dict("records")]


def d3set_to_folder(path: str | os.PathLike, out: str | os.PathLike) -> list[Path]:
    """Write each stack of a ``.d3set`` as a stack folder ``out/x{i}`` of the training layout.

    Spine instances are the 26-connected parts of the spine mask, dendrites those of the
    dendrite mask; where both masks are set the voxel is spine.
    """
    from scipy import ndimage as ndi

    from .layout import write_training_stack

    full = np.ones((3, 3, 3), bool)
    written = []
    for i, s in enumerate(read_d3set(path)):
        spines = ndi.label(s.spines, full)[0].astype(np.int32)
        dendrites = ndi.label(s.dendrites, full)[0].astype(np.int32)
        written.append(write_training_stack(Path(out) / f"x{i}", s.image, s.spacing, spines, dendrites,
                                            provenance={"source": "d3set", "d3set": str(path), "meta": s.meta}))
    return written


def folder_to_d3set(folder: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write every stack folder in ``folder`` (or ``folder`` itself) as one ``.d3set``."""
    from .layout import read_training_stack

    folder = Path(folder)
    dirs = [folder] if (folder / "image.tif").exists() else sorted(
        d for d in folder.iterdir() if d.is_dir() and (d / "image.tif").exists())
    if not dirs:
        raise InputError(f"No stack folders (with image.tif) in '{folder}'.")
    stacks = []
    for d in dirs:
        image, spacing, spines, dendrites = read_training_stack(d)
        stacks.append(D3Stack(image, dendrites > 0, spines > 0, spacing, {"Generated_from": str(d)}))
    return write_d3set(path, stacks)
