"""DeepD3 training sets (``.d3set``), both ways, with h5py (``pip install 'spinequant[groundtruth]'``).

The layout, as DeepD3's training stream reads it (Fernholz et al. 2024; its ``d3set`` is an
assembly of ``d3data`` files, saved as HDF5 by flammkuchen):

* ``/data/stacks/x0``, ``x1``, ... — the image stacks (Z, Y, X);
* ``/data/dendrites/xN`` and ``/data/spines/xN`` — the binary masks of the same shape;
* ``/meta`` — a table with one row per stack: ``Resolution_XY`` and ``Resolution_Z`` (µm),
  ``Width``, ``Height``, ``Depth`` (pixels), the crop (``crop``, ``X``, ``Y``, ``Z_begin``,
  ``Z_end``), ``Timestamp`` and ``Generated_from``.

spinequant writes ``/meta`` as one 1-D dataset per column (its ``columns`` attribute keeps their
order) and reads that as well as the pandas table that flammkuchen writes (numeric columns).
DeepD3's own files are compressed with Blosc, an HDF5 filter that h5py reads once the package
``hdf5plugin`` is installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from ..errors import InputError

KINDS = ("stacks", "dendrites", "spines")


@dataclass
class D3Stack:
    """One stack of a set: image, masks (bool, same shape), spacing (z, y, x µm) and its meta row."""

    image: np.ndarray
    dendrites: np.ndarray
    spines: np.ndarray
    spacing: tuple[float, float, float]
    meta: dict = field(default_factory=dict)


def _h5py():
    try:
        import h5py
    except ImportError:
        raise InputError("Reading and writing DeepD3 .d3set files needs h5py: "
                         "pip install 'spinequant[groundtruth]' (or pip install h5py).") from None
    try:  # registers Blosc and other filters that DeepD3's files use, when installed
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    return h5py


def meta_row(stack: D3Stack, source: str = "") -> dict:
    """DeepD3's meta columns for ``stack`` (whole stack, not cropped)."""
    z, y, x = stack.image.shape
    row = {"crop": False, "X": 0, "Y": 0, "Width": x, "Height": y, "Depth": z, "Z_begin": 0, "Z_end": z,
           "Resolution_XY": float(stack.spacing[2]), "Resolution_Z": float(stack.spacing[0]),
           "Timestamp": datetime.now().strftime("%Y%m%d_%H%M%S"), "Generated_from": source}
    row.update({k: v for k, v in stack.meta.items() if k not in ("Resolution_XY", "Resolution_Z",
                                                                  "Width", "Height", "Depth")})
    return row


def write_d3set(path: str | os.PathLike, stacks, *, compression: str | None = "gzip") -> Path:
    """Write ``stacks`` (:class:`D3Stack`) as a ``.d3set`` file, atomically."""
    from .._atomic import atomic_path

    h5py = _h5py()
    stacks = list(stacks)
    if not stacks:
        raise InputError(f"No stacks to write to '{path}'.")
    rows = []
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            groups = {k: f.require_group(f"data/{k}") for k in KINDS}
            for i, s in enumerate(stacks):
                image = np.asarray(s.image)
                if image.ndim != 3 or np.shape(s.dendrites) != image.shape or np.shape(s.spines) != image.shape:
                    raise InputError(f"Stack {i} for '{path}': the image {image.shape} and its masks "
                                     f"{np.shape(s.dendrites)}, {np.shape(s.spines)} must be 3D and of one shape.")
                for kind, arr in zip(KINDS, (image, np.asarray(s.dendrites) > 0, np.asarray(s.spines) > 0)):
                    groups[kind].create_dataset(f"x{i}", data=arr, compression=compression)
                rows.append(meta_row(s, s.meta.get("Generated_from", "")))
            meta = f.create_group("meta")
            columns = list(dict.fromkeys(k for r in rows for k in r))
            meta.attrs["columns"] = columns
            for c in columns:
                values = [r.get(c, "") for r in rows]
                if all(isinstance(v, str) for v in values):
                    meta.create_dataset(c, data=np.array(values, dtype=h5py.string_dtype()))
                else:
                    meta.create_dataset(c, data=np.asarray(values))
    return Path(path)


def read_d3set(path: str | os.PathLike) -> list[D3Stack]:
    """The stacks of a ``.d3set`` file, in the order x0, x1, ..."""
    h5py = _h5py()
    path = Path(path)
    if not path.exists():
        raise InputError(f"The DeepD3 set '{path}' does not exist. Check the path.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"'{path}' is not an HDF5 file ({exc}); a .d3set is DeepD3's HDF5 training set.") from None
    with f:
        if "data" not in f or any(k not in f["data"] for k in KINDS):
            raise InputError(f"'{path}' is HDF5 but not a DeepD3 set: it needs the groups data/stacks, "
                             f"data/dendrites and data/spines (found {sorted(f.keys())}).")
        meta = _read_meta(f["meta"]) if "meta" in f else []
        names = sorted(f["data/stacks"].keys(), key=lambda n: int(n[1:]) if n[1:].isdigit() else n)
        stacks = []
        for i, name in enumerate(names):
            try:
                arrays = [f[f"data/{k}/{name}"][()] for k in KINDS]
            except KeyError:
                raise InputError(f"'{path}': stack {name} has no dendrite or spine mask.") from None
            except OSError as exc:
                raise InputError(f"'{path}': stack {name} cannot be read ({exc}). DeepD3 compresses its "
                                 f"sets with Blosc: pip install hdf5plugin, then try again.") from None
            row = meta[i] if i < len(meta) else {}
            if "Resolution_XY" not in row or "Resolution_Z" not in row:
                raise InputError(f"'{path}': stack {name} has no Resolution_XY / Resolution_Z in its meta "
                                 f"table, so its voxel size is unknown.")
            spacing = (float(row["Resolution_Z"]), float(row["Resolution_XY"]), float(row["Resolution_XY"]))
            image = arrays[0] if arrays[0].ndim == 3 else arrays[0][None]
            masks = [a.astype(bool).reshape(image.shape) for a in arrays[1:]]
            stacks.append(D3Stack(image, masks[0], masks[1], spacing, row))
    return stacks


def _text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _read_meta(group) -> list[dict]:
    """Rows of the meta table: spinequant's columns, or the numeric columns of a pandas table."""
    if "pandas_type" in group.attrs:          # flammkuchen / pandas "fixed" frame
        columns: dict[str, np.ndarray] = {}
        for b in range(int(group.attrs.get("nblocks", 0))):
            items, values = group[f"block{b}_items"][()], group[f"block{b}_values"]
            if values.dtype.kind not in "biuf":
                continue                     # object columns are pickled; not needed here
            values = values[()]
            values = values if values.shape[-1] == len(items) else values.T
            for j, name in enumerate(items):
                columns[_text(name)] = values[:, j]
        n = max((len(v) for v in columns.values()), default=0)
    else:
        order = [_text(c) for c in group.attrs.get("columns", sorted(group.keys()))]
        columns = {c: group[c][()] for c in order if c in group}
        n = max((len(v) for v in columns.values()), default=0)
    rows = []
    for i in range(n):
        row = {}
        for c, v in columns.items():
            x = v[i]
            row[c] = _text(x.item() if isinstance(x, np.generic) else x)
        rows.append(row)
    return rows


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
