"""OME-Zarr (NGFF 0.4 / 0.5 multiscales) and plain Zarr arrays, read lazily with dask."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from ..errors import InputError
from ..stack import Stack
from . import ngff
from .axes import default_axes, spatial_spacing, to_canonical
from .zarr_chunks import CheckedChunks, check_complete

_NGFF_VERSION = "0.4"


def is_zarr(path: Path) -> bool:
    if path.suffix.lower() == ".zarr":
        return True
    return path.is_dir() and any((path / f).exists() for f in (".zarray", ".zgroup", "zarr.json"))


def open_zarr(path: str | os.PathLike, *, allow_incomplete: bool = False) -> Stack:
    """Open an OME-Zarr image (level 0 of its multiscales) or a plain Zarr array, lazily.

    Metadata are checked when the image is opened (axes against the array, voxel sizes,
    every chunk file the shape implies present); a chunk that cannot be decoded later
    raises :class:`~spinequant.errors.InputError` naming it. Missing chunk files are refused
    unless ``allow_incomplete`` (then a warning is given and they are read as the fill
    value); in a label image they are background and always allowed.
    """
    import zarr   # imported where used: reading and analysing a TIFF needs neither zarr nor dask

    path = Path(path)
    source = f"'{path}'"
    node = _open_node(path, source)
    if isinstance(node, zarr.Array):
        data, notes = _checked_data(node, path, source, prefix="", meta_file=_meta_file(node, path, array=True),
                                    allow_incomplete=allow_incomplete, absent_is_background=False)
        axes = default_axes(data.ndim)
        data, axes, more = to_canonical(data, axes, source=source)
        notes += [*more, f"plain Zarr array without axis metadata: axes assumed to be {axes}"]
        return Stack(data=data, spacing=spatial_spacing(axes, (np.nan,) * 3), axes=axes, source=str(path),
                     spacing_source="metadata", metadata={"format": "Zarr", "notes": notes})
    meta_file = _meta_file(node, path, array=False)
    attrs = ngff.ome_attributes(dict(node.attrs), source, meta_file)
    if attrs.get("multiscales") is None:
        raise _not_an_image(node, path)
    ms = ngff.first_multiscale(attrs["multiscales"], source, meta_file)
    dataset = ms["datasets"][0]["path"].strip("/")
    array = _dataset_array(node, path, dataset, source, meta_file)
    axes_meta = ngff.axes_of(ms, array.ndim, source, meta_file)
    scale, notes = ngff.scale_of(ms, array.ndim, source, meta_file)
    spacing, unit_notes = ngff.spacing_zyx(axes_meta, scale)
    data, chunk_notes = _checked_data(array, path / dataset, source, prefix=f"{dataset}/",
                                      meta_file=_meta_file(array, path / dataset, array=True),
                                      allow_incomplete=allow_incomplete,
                                      absent_is_background="image-label" in attrs)
    data, axes, canon_notes = to_canonical(data, "".join(a.letter for a in axes_meta), source=source)
    channels = ngff.channel_names(attrs, data.shape[axes.index("C")] if "C" in axes else None)
    version = ms.get("version", attrs.get("version", ""))
    return Stack(data=data, spacing=spatial_spacing(axes, spacing), axes=axes, channel_names=channels,
                 source=str(path), spacing_source="metadata",
                 metadata={"format": f"OME-Zarr {version}".strip(),
                           "notes": [*chunk_notes, *canon_notes, *notes, *unit_notes]})


def _open_node(path: Path, source: str):
    import zarr

    ngff.check_metadata_json(path, source)
    try:
        return zarr.open(str(path), mode="r")
    except Exception as exc:
        if not any((path / f).is_file() for f in ("zarr.json", ".zgroup", ".zarray")):
            others = [f for f in ngff.METADATA_FILES if (path / f).is_file()]
            raise InputError(
                f"{source} holds no Zarr metadata file (zarr.json for Zarr v3, .zgroup or .zarray for Zarr v2)"
                + (f"; it has only {', '.join(others)}" if others else "")
                + ". The file is missing, for example after an incomplete copy, or the folder is not a Zarr image: "
                  "copy the image again from the original."
            ) from None
        raise InputError(
            f"{source} cannot be opened as Zarr ({exc}). Its metadata files are damaged or not Zarr metadata: "
            f"copy the image again from the original."
        ) from None


def _meta_file(node, folder: Path, *, array: bool) -> Path:
    """The file a user would open to correct the node's metadata."""
    if node.metadata.zarr_format >= 3:
        return folder / "zarr.json"
    return folder / (".zarray" if array else ".zattrs")


def _not_an_image(group, path: Path) -> InputError:
    arrays = sorted(name for name, _ in group.arrays())
    return InputError(
        f"'{path}' is a Zarr group without OME-Zarr 'multiscales' metadata, so spinequant does not "
        f"know which array is the image. Open one of its arrays directly: "
        + (", ".join(f"'{path / a}'" for a in arrays) if arrays else "it holds no arrays")
        + "."
    )


def _dataset_array(group, path: Path, dataset: str, source: str, meta_file: Path):
    """The level-0 array of a multiscale image, or an error naming the dataset path."""
    import zarr

    folder = path / dataset
    if not folder.is_dir():
        raise ngff.fail(source, f"multiscales[0].datasets[0].path is {dataset!r}, but '{folder}' does not exist",
                        meta_file)
    ngff.check_metadata_json(folder, source)
    try:
        array = group[dataset]
    except Exception as exc:
        raise InputError(
            f"{source}: the image array '{folder}' (multiscales[0].datasets[0].path) cannot be opened "
            f"({type(exc).__name__}: {exc}). Its metadata file (.zarray or zarr.json) is missing or damaged: "
            f"copy the image again from the original."
        ) from None
    if not isinstance(array, zarr.Array):
        raise ngff.fail(source, f"multiscales[0].datasets[0].path is {dataset!r}, which is a group, not an array",
                        meta_file)
    return array


def _checked_data(array, folder: Path, source: str, *, prefix: str, meta_file: Path, allow_incomplete: bool,
                  absent_is_background: bool):
    """The array as dask data whose failing chunk reads are InputErrors, after the chunk census."""
    import dask.array as da

    kind = np.dtype(array.dtype).kind
    if kind not in "biufc":
        raise InputError(f"{source} holds values of type {array.dtype}, not intensities; give an image stack.")
    if not 2 <= array.ndim <= 5:
        raise InputError(f"{source}: the image array has {array.ndim} dimensions; an image needs 2 to 5.")
    notes = check_complete(array, folder, source=source, prefix=prefix, meta_file=str(meta_file),
                           allow_incomplete=allow_incomplete, absent_is_background=absent_is_background)
    reader = CheckedChunks(array, folder, source=source, prefix=prefix, meta_file=str(meta_file))
    data = da.from_array(reader, chunks=array.chunks, name=False, asarray=False,
                         meta=np.empty((0,) * array.ndim, dtype=reader.dtype))
    return data, notes


def write_ome_zarr(path: str | os.PathLike, image: np.ndarray | None, spacing, *, labels: dict | None = None,
                   name: str = "image", chunks=(32, 256, 256), progress=None) -> Path:
    """Write a 3D image and label volumes (or 2D images, with ``spacing`` (y, x)) as OME-Zarr.

    NGFF 0.4, with a ``labels`` group; the axes are z, y, x, or y, x for a 2D ``spacing``.

    A 2D image with a (y, x) ``spacing`` is written with axes y, x.

    ``labels`` maps a label name (e.g. ``"spines"``) to an integer volume of the image's shape.
    The image and labels may be Dask arrays: they are then computed chunk by chunk as they
    are written (a volume larger than memory); ``progress(what, done, total)`` (e.g. ``"spines
    level 0"``) is then called as their regions are written. Written to a temporary folder
    and renamed. napari (napari-ome-zarr) and Fiji (MoBIE, n5-viewer) open it with the right
    scale.
    """
    import zarr

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
        _write_multiscale(root, _array(image), spacing, name, chunks, is_label=False, progress=progress)
        if labels:
            group = root.create_group("labels")
            group.attrs["labels"] = list(labels)
            for key, lab in labels.items():
                sub = group.create_group(key)
                lab = _array(lab)
                if lab.dtype == bool:
                    lab = lab.astype(np.uint8)
                _write_multiscale(sub, lab, spacing, key, chunks, is_label=True, progress=progress)
                sub.attrs["image-label"] = {"version": _NGFF_VERSION, "source": {"image": "../../"}}
    return Path(path)


def _array(data):
    """``data`` as a numpy array, or left a Dask array (written chunk by chunk)."""
    return data if _is_dask(data) else np.asarray(data)


def _is_dask(data) -> bool:
    """Whether ``data`` is a Dask array, without importing dask (about 40 MiB resident): one
    can exist only once ``dask.array`` is imported."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(data, dask_array.Array)


def _write_multiscale(group, data: np.ndarray, spacing, name: str, chunks, *, is_label: bool, progress=None) -> None:
    """Level 0 and a pyramid of levels halved in y and x (not z: stacks are already coarse
    there) until the plane fits in :data:`PYRAMID_MIN_EDGE`, so viewers open big volumes at
    once. Images are averaged over 2 x 2 pixels (the level's origin moves half a pixel), labels
    take every second pixel (nearest, ids stay ids), as NGFF viewers expect."""
    if data.ndim != len(spacing):
        raise InputError(f"An image of shape {data.shape} needs {data.ndim} voxel sizes; got {tuple(spacing)}.")
    chunks = tuple(chunks)[len(chunks) - data.ndim:] if len(chunks) >= data.ndim else chunks
    datasets = []

    def written(k, level):
        return _write_level(group, str(k), level, chunks, progress, f"{name} level {k}")

    for level, (array, scale, shift) in enumerate(_pyramid(data, spacing, is_label=is_label, written=written)):
        transforms = [{"type": "scale", "scale": scale}]
        if any(shift):
            transforms.append({"type": "translation", "translation": shift})
        datasets.append({"path": str(level), "coordinateTransformations": transforms})
    group.attrs["multiscales"] = [{
        "version": _NGFF_VERSION,
        "name": name,
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"[3 - data.ndim:]],
        "datasets": datasets,
        "type": "nearest (every second pixel)" if is_label else "mean of 2 x 2 pixels in y and x",
    }]


#: The pyramid stops at the first level whose y and x both fit in this many pixels.
PYRAMID_MIN_EDGE = 256


def _pyramid(data: np.ndarray, spacing, *, is_label: bool, written):
    """(array, scale, translation) per level; level 0 is ``data`` itself. ``written(k, array)``
    stores level ``k`` and returns the stored array."""
    scale = [float(s) for s in spacing]
    shift = [0.0] * data.ndim
    level = data
    stored = written(0, level)
    yield level, list(scale), list(shift)
    k = 0
    while max(level.shape[-2:]) > PYRAMID_MIN_EDGE and min(level.shape[-2:]) >= 2:
        if _is_dask(level):
            # Each level of a Dask volume is made from the level just stored, not from the
            # source again: as a chain of lazy halvings every chunk of level k recomputed
            # 4^k chunks of level 0, so the whole source was read once more per level (on a
            # 4.9 GB chunked run the export took longer than the analysis). The stored values
            # are the same (each level is rounded to the type as it is made).
            import dask.array as da

            level = da.from_zarr(stored)
        if is_label:
            level = level[..., ::2, ::2]
        else:
            level = _halved(level, data.dtype)
            shift[-2:] = [t + 0.5 * s for t, s in zip(shift[-2:], scale[-2:])]
        scale[-2:] = [2 * s for s in scale[-2:]]
        k += 1
        stored = written(k, level)
        yield level, list(scale), list(shift)


def _halved(level, dtype):
    """The mean of every 2 x 2 pixels in y and x, as ``dtype`` (rounded for integers); a
    plane at a time for a numpy stack, so no float32 copy of the level is held."""
    h, w = (n // 2 * 2 for n in level.shape[-2:])

    def mean(part):
        blocks = part[..., :h, :w].reshape(*part.shape[:-2], h // 2, 2, w // 2, 2)
        out = blocks.mean(axis=(-3, -1), dtype=np.float32)
        return (np.rint(out) if np.issubdtype(dtype, np.integer) else out).astype(dtype)

    if level.ndim < 3 or _is_dask(level):
        return mean(level)
    out = np.empty(level.shape[:-2] + (h // 2, w // 2), dtype)
    for z in range(level.shape[0]):
        out[z] = mean(level[z])
    return out


def _write_level(group, path: str, data: np.ndarray, chunks, progress=None, what: str = "") -> None:
    # Every chunk is written, even one of pure zeros: the reader takes a missing chunk for damage.
    arr = group.create_array(path, shape=data.shape, dtype=data.dtype,
                             chunks=tuple(min(c, s) for c, s in zip(chunks[-data.ndim:], data.shape)),
                             config={"write_empty_chunks": True})
    if _is_dask(data):
        _store_dask(arr, data, None if progress is None else lambda done, total: progress(what, done, total))
        return arr
    # One chunk per call: zarr writes the chunks of one call from its own thread and goes on
    # with the others after one fails or the main thread is interrupted, which would refill
    # the temporary folder that atomic_path has just removed.
    for box in _chunk_boxes(data.shape, arr.chunks):
        arr[box] = data[box]
    return arr


def _store_dask(arr, data, progress=None) -> None:
    """Compute a Dask level region by region (:func:`_group_shape`) on this process's threads,
    each region's task writing its chunks, one chunk per call.

    All regions are one Dask computation: computed one region per call, each call cost 10-15 ms
    of Dask's own work (a region's read takes 3 ms; 3,364 regions a volume on the 21 GB
    benchmark) and the regions were written one after the other, on one core
    (docs/scale.md, "The export on all cores"). The
    threads are a pool of our own, so that after a failure or an interrupt no task is still
    writing when atomic_path removes the temporary folder. ``progress(done, total)`` is called
    from this thread as regions are written."""
    from concurrent.futures import ThreadPoolExecutor

    import dask
    from dask.callbacks import Callback
    from dask.system import CPU_COUNT

    group = _group_shape(data, arr.chunks)
    regions = data.rechunk(group)

    def write(block, block_info=None):
        origin = [lo for lo, _ in block_info[0]["array-location"]]
        for box in _chunk_boxes(block.shape, arr.chunks):
            arr[tuple(slice(o + b.start, o + min(b.stop, n)) for o, b, n in zip(origin, box, block.shape))] = block[box]
        return np.ones((1,) * block.ndim, dtype=bool)

    done = regions.map_blocks(write, dtype=bool, chunks=tuple((1,) * len(c) for c in regions.chunks))
    # regions of up to GROUP_MAX_BYTES in flight at once, as before with one region at a time
    region_bytes = int(np.prod(group)) * data.dtype.itemsize
    threads = max(1, min(CPU_COUNT, GROUP_MAX_BYTES // max(region_bytes, 1)))
    total, written = done.npartitions, [0]

    def count(key, result, dsk, state, worker_id):
        if isinstance(key, tuple) and key[0] == done.name:
            written[0] += 1
            progress(written[0], total)

    pool = ThreadPoolExecutor(threads)
    try:
        if progress is None:
            dask.compute(done, scheduler="threads", pool=pool, num_workers=threads)
        else:
            progress(0, total)
            with Callback(posttask=count):
                dask.compute(done, scheduler="threads", pool=pool, num_workers=threads)
            if written[0] != total:          # a graph of one task can run under another key
                progress(total, total)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


#: Most bytes of a Dask level computed at once by :func:`_write_level`.
GROUP_MAX_BYTES = 2 ** 29


def _group_shape(data, chunks) -> tuple:
    """The regions a level is computed in: for a Dask array, whole written chunks covering one
    of its own chunks (so each of those is computed once, not once for every written chunk it
    overlaps: the stitched labels' 48 x 1024 x 1024 chunks were decoded 32 times each for the
    results' 32 x 256 x 256 chunks, 14 min a label volume on the 21 GB benchmark), up to
    :data:`GROUP_MAX_BYTES`; else the written chunks."""
    if not _is_dask(data):
        return tuple(chunks)
    group = tuple(min(-(-s // c) * c, -(-n // c) * c) for s, c, n in zip(data.chunksize, chunks, data.shape))
    if int(np.prod(group)) * data.dtype.itemsize > GROUP_MAX_BYTES:
        return tuple(chunks)
    return group


def _chunk_boxes(shape, chunks):
    """The regions of an array of ``shape`` covered by each chunk, in order."""
    starts = itertools.product(*(range(0, n, c) for n, c in zip(shape, chunks)))
    return [tuple(slice(a, a + c) for a, c in zip(start, chunks)) for start in starts]
