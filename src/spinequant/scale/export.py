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
from ..io import write_ome_zarr
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
                      config, diagnostics: dict, timings: dict, source: dict, limit: int, progress=None) -> Path:
    """Write tables, SWC, ``results.ome.zarr`` (chunk by chunk) and ``run.json`` (last);
    ``progress(stage, done, total)`` as each level's regions are written (stage ``"export
    spines level 0"`` ...)."""
    out_dir = Path(out_dir)
    n = int(np.prod(image.shape))
    with undo_on_failure():
        clear_run_record(out_dir)
        t = time.perf_counter()
        export_results(out_dir, spacing=spacing, spines=spines, dendrites=dendrites, centrelines=centrelines,
                       formats=("tables", "swc"))
        sl, dl = da.from_zarr(spine_labels), da.from_zarr(dendrite_labels)
        semantic = da.where(sl > 0, np.uint8(2), da.where(dl > 0, np.uint8(1), np.uint8(0))).astype(np.uint8)
        if config.export_zarr:
            step = None if progress is None else (lambda what, done, total: progress(f"export {what}", done, total))
            write_ome_zarr(out_dir / "results.ome.zarr", lazy_volume(image), spacing,
                           labels={"spines": sl, "dendrites": dl, "semantic": semantic}, progress=step)
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
