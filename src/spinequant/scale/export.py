"""Writing a chunked run's results without holding its volumes in memory.

Up to :attr:`~spinequant.scale.config.ScaleConfig.whole_export_max_voxels` voxels the result
folder is written as in memory (the labels are loaded: label TIFFs, ROI set, meshes, report).
Above, whole-volume files make no sense (a label TIFF of a 20 GB stack is 40 GB of int32 that
Fiji cannot open), so only these are written: the tables, ``dendrites.swc``, and
``results.ome.zarr`` (image and label pyramids, computed chunk by chunk from the stitched
labels in ``chunked.work/labels.zarr``); ``run.json`` lists what was left out and why
(``not_written``).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import dask.array as da
import numpy as np

from .. import __version__
from .._atomic import undo_on_failure, write_error
from ..config import config_to_dict
from ..export import export_results
from ..pipeline.runinfo import RUN_FILE, peak_memory_mb, versions, write_run_json
from .maps import TILE_ALIGN, read_region, read_tiles, tile_edge

NOT_WRITTEN = ("whole-volume files (label TIFFs, ImageJ ROI set, meshes, report) are not written above "
               "{limit} voxels (this volume: {n}); the labels are in results.ome.zarr (napari, Fiji MoBIE)")


def lazy_volume(volume) -> da.Array:
    """``volume`` (numpy, Zarr or Dask) as a Dask array, read in chunks of all planes and
    :data:`~spinequant.scale.maps.TILE_ALIGN` rows and columns."""
    if isinstance(volume, da.Array):
        return volume
    return da.from_array(volume, chunks=(volume.shape[0], TILE_ALIGN, TILE_ALIGN))


#: Edge (pixels in y and x of the level written) of the region one export task writes: level 0
#: in regions of 1024 px (the maps' and labels' blocks), the levels below in 512 px (each
#: reading 1024 px of the level above); both whole 256-px chunks.
EXPORT_REGION_PX = (1024, 512)


def write_results_zarr(path, image, spacing, *, spine_labels, dendrite_labels, runner=None, progress=None,
                       chunks=(32, 256, 256)) -> Path:
    """``results.ome.zarr`` of a chunked run: the image, the ``spines``, ``dendrites`` and
    ``semantic`` (0 background, 1 dendrite, 2 spine) label volumes, each with its pyramid, as
    :func:`~spinequant.io.write_ome_zarr` writes them, but level by level in tasks of
    ``runner`` (a :class:`~spinequant.scale.execute.BlockRunner`; default: this process),
    each task writing whole chunks of one region of one level. Level 0 is read from
    ``image`` (as the tasks read it: a ``VolumeSource`` on a cluster) and the label arrays;
    each level below from the level just written. Written to a temporary folder and renamed."""
    import zarr

    from .._atomic import atomic_path
    from ..io.omezarr import create_level, image_label, level_chunks, level_shapes, multiscales
    from .execute import BlockRunner

    runner = runner or BlockRunner()
    shape = tuple(int(n) for n in image.shape)
    dtype = read_region(image, (0, slice(0, 1), slice(0, 1))).dtype
    chunks = level_chunks(chunks, len(shape))
    volumes = [("", "image", dtype, False, ("image", image)),
               ("labels/spines", "spines", spine_labels.dtype, True, ("array", spine_labels)),
               ("labels/dendrites", "dendrites", dendrite_labels.dtype, True, ("array", dendrite_labels)),
               ("labels/semantic", "semantic", np.dtype(np.uint8), True, ("semantic", spine_labels, dendrite_labels))]
    with atomic_path(path, directory=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        labels = root.create_group("labels")
        labels.attrs["labels"] = [name for where, name, *_ in volumes if where]
        levels = {}
        for where, name, kind, is_label, _ in volumes:
            group = root.require_group(where) if where else root
            shapes = level_shapes(shape, is_label=is_label)
            levels[where] = [create_level(group, str(k), s, kind, chunks) for k, s in enumerate(shapes)]
            group.attrs["multiscales"] = multiscales(name, spacing, len(shapes), is_label=is_label)
            if is_label:
                group.attrs["image-label"] = image_label()
        depth = max(len(v) for v in levels.values())
        for k in range(depth):
            jobs, names = [], []
            edge = EXPORT_REGION_PX[0 if k == 0 else 1]
            for where, name, kind, is_label, source in volumes:
                if k >= len(levels[where]):
                    continue
                out = levels[where][k]
                src = source if k == 0 else ("level above", _reopened(tmp, where, k - 1))
                for region in _regions(out.shape, edge):
                    jobs.append((str(tmp), _reopened(tmp, where, k), src, region, is_label, kind))
                    names.append(f"{name}-{k}-{region[1].start}-{region[2].start}")
            runner.map(_export_job, jobs, names=names, stage=f"export level {k}", progress=progress)
    return Path(path)


def _reopened(tmp: Path, where: str, level: int) -> str:
    """The path of a level's array (what a task opens)."""
    return str(Path(tmp, where, str(level)))


def _regions(shape, edge: int) -> list[tuple]:
    """(all planes, rows, columns) regions of ``edge`` pixels covering a level."""
    from ..io.omezarr import chunk_boxes

    return [(slice(None), *box) for box in chunk_boxes(shape[1:], (edge, edge))]


def _export_job(job) -> None:
    """One region of one level (a task): read its source, write its chunks."""
    import zarr

    from ..io.omezarr import next_level, write_chunks

    tmp, out_path, source, region, is_label, dtype = job

    def folder_kept():                  # False once the export failed elsewhere and removed it
        return Path(tmp).is_dir()

    if not folder_kept():
        return
    out = zarr.open_array(out_path, mode="r+")
    box = tuple(slice(r.start or 0, min(r.stop, n) if r.stop is not None else n) for r, n in zip(region, out.shape))
    if source[0] == "level above":
        above = zarr.open_array(source[1], mode="r")
        rows, cols = (slice(2 * b.start, min(2 * b.stop, n)) for b, n in zip(box[1:], above.shape[1:]))
        part = next_level(np.asarray(above[:, rows, cols]), is_label=is_label, dtype=dtype)
    elif source[0] == "semantic":
        spines, dendrites = (read_region(a, box) for a in source[1:])
        part = np.where(spines > 0, np.uint8(2), np.where(dendrites > 0, np.uint8(1), np.uint8(0))).astype(np.uint8)
    else:
        part = read_region(source[1], box).astype(dtype, copy=False)
    write_chunks(out, part, box, until=folder_kept)


def volume_sha256(volume) -> str:
    """SHA-256 of a volume's voxels read tile by tile (all planes of each
    :func:`~spinequant.scale.maps.tiles` tile, the tiles row by row), after its shape, dtype
    and tile edge. Not :func:`~spinequant.pipeline.runinfo.array_sha256` (whole planes in
    order), which would need whole planes, hence whole z-deep chunks, in memory."""
    h = hashlib.sha256(str((tuple(volume.shape), str(np.dtype(volume.dtype)), "tiles",
                            tile_edge(volume.shape))).encode())
    for _, tile in read_tiles(volume):
        h.update(np.ascontiguousarray(tile).data)
    return h.hexdigest()


def clear_run_record(out_dir: Path) -> None:
    """Remove an earlier run's ``run.json`` before a result is written (it is written last, so
    a folder without one is not a complete result)."""
    try:
        (Path(out_dir) / RUN_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise write_error(exc, Path(out_dir) / RUN_FILE) from exc


def save_large_result(out_dir, *, image, spacing, spine_labels, dendrite_labels, spines, dendrites, centrelines,
                      config, diagnostics: dict, timings: dict, source: dict, limit: int, runner=None,
                      task_image=None, progress=None) -> Path:
    """Write tables, SWC, ``results.ome.zarr`` (region by region, in tasks of ``runner``, which
    read the image as ``task_image``, default ``image``; :func:`write_results_zarr`) and
    ``run.json`` (last)."""
    out_dir = Path(out_dir)
    n = int(np.prod(image.shape))
    with undo_on_failure():
        clear_run_record(out_dir)
        t = time.perf_counter()
        export_results(out_dir, spacing=spacing, spines=spines, dendrites=dendrites, centrelines=centrelines,
                       formats=("tables", "swc"))
        if config.export_zarr:
            write_results_zarr(out_dir / "results.ome.zarr", image if task_image is None else task_image, spacing,
                               spine_labels=spine_labels, dendrite_labels=dendrite_labels, runner=runner,
                               progress=progress)
        timings["export"] = time.perf_counter() - t
        dtype = read_region(image, (0, slice(0, 1), slice(0, 1))).dtype
        record = {
            "spinequant": __version__,
            "complete": True,
            "input": {**source, "shape": list(image.shape), "dtype": str(dtype), "spacing_um": list(spacing),
                      "data_sha256_tiles": volume_sha256(image)},
            "config": config_to_dict(config),
            "diagnostics": diagnostics,
            "counts": {"spines": int(len(spines)), "dendrites": int(len(dendrites))},
            "not_written": NOT_WRITTEN.format(limit=limit, n=n),
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "versions": versions(),
        }
        write_run_json(out_dir, record)
    return out_dir
