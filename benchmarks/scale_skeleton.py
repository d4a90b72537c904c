"""Peak memory and time of the chunked path's dendrite skeletons, whole box against tiles
(docs/scale.md, "Dendrite skeletons in tiles").

    python benchmarks/scale_skeleton.py make DIR 2048            # DIR/labels.zarr: 48 x 2048 x 2048 dendrite ids
    python benchmarks/scale_skeleton.py measure DIR 1000000000000   # volume_skeleton, every box whole
    python benchmarks/scale_skeleton.py measure DIR 134217728    # ... boxes above 2**27 voxels in tiles
    python benchmarks/scale_skeleton.py compare DIR [N]          # whole-box skeleton against the one of limit N

``make`` puts the truth dendrite masks of the phantom tiles of ``benchmarks/scale_large.py``
(two-photon, 48 x 1024 x 1024, seeds 0-3, mirrored by grid position) together, adds one long
dendrite (a tube of 1 µm radius meandering from corner to corner, with three side branches:
the tiles' own dendrites end at the tile edges, and a whole neuron is one piece), numbers the
26-connected pieces (the long one, joined with the tiles' dendrites it crosses, has the
volume as its box) and writes them as Zarr in (48, 512, 512) chunks, as the stitched labels
are. ``measure`` runs :func:`spinequant.scale.measure.volume_skeleton` on them
in a fresh process (``OMP_NUM_THREADS=1``; the boxes stored by ``make``, as the stitching
gives them) and prints one JSON line: the time, the peak resident memory (``ru_maxrss``)
before (the imports) and after, and per dendrite the box, length and branch
points; the skeleton is saved for ``compare``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from _table import log_run

TILE = (48, 1024, 1024)


def make(folder: Path, edge: int) -> dict:
    import cc3d
    import numpy as np
    import zarr
    from scipy import ndimage

    from spinequant.synth import make_phantom

    n = -(-edge // TILE[1])
    masks = [make_phantom("two_photon", seed=s, shape=TILE).dendrite_labels > 0 for s in range(4)]
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            tile = masks[(i * 3 + j) % 4]
            row.append(tile[:, ::-1] if (i + j) % 2 else tile[:, :, ::-1] if i % 2 else tile)
        rows.append(np.concatenate(row, axis=2))
    mask = np.concatenate(rows, axis=1)[:, :edge, :edge]
    _draw_long_dendrite(mask, (0.5, 0.094, 0.094), radius_um=1.0)
    labels = cc3d.connected_components(mask, connectivity=26).astype(np.uint32)
    out = zarr.open_array(str(folder / "labels.zarr"), mode="w", shape=labels.shape, dtype=np.uint32,
                          chunks=(labels.shape[0], 512, 512), zarr_format=2)
    out[...] = labels
    boxes = {i: [[s.start, s.stop] for s in b] for i, b in enumerate(ndimage.find_objects(labels), start=1)}
    (folder / "boxes.json").write_text(json.dumps(boxes))
    return {"shape": list(labels.shape), "dendrites": int(labels.max())}


def _draw_long_dendrite(mask, spacing, radius_um: float) -> None:
    """A tube from near one corner to the opposite one, meandering in y/x and z, and three
    side branches towards the other corners, drawn into ``mask`` (z, y, x) ball by ball."""
    import numpy as np

    nz, ny, nx = mask.shape
    sp = np.asarray(spacing)
    t = np.linspace(0, 1, 20000)[:, None]
    a, b = np.array([nz / 2, 0.03 * ny, 0.03 * nx]), np.array([nz / 2, 0.97 * ny, 0.97 * nx])
    wobble = np.c_[0.25 * nz * np.sin(6 * np.pi * t[:, 0]), 0.05 * ny * np.sin(10 * np.pi * t[:, 0]),
                   -0.05 * nx * np.sin(10 * np.pi * t[:, 0])]
    paths = [a + t * (b - a) + wobble]
    for k, corner in zip((0.3, 0.5, 0.7), ([nz / 2, 0.1 * ny, 0.9 * nx], [nz / 3, 0.9 * ny, 0.1 * nx],
                                           [nz / 2, 0.95 * ny, 0.6 * nx])):
        start = paths[0][int(k * (len(t) - 1))]
        paths.append(start + t * (np.array(corner) - start))
    reach = np.ceil(radius_um / sp).astype(int)
    offsets = np.argwhere(np.ones(2 * reach + 1, bool)) - reach
    ball = offsets[np.linalg.norm(offsets * sp, axis=1) <= radius_um]
    for path in paths:
        centres = np.unique(np.rint(path).astype(int), axis=0)
        for c in centres:
            v = c + ball
            v = v[np.all((v >= 0) & (v < mask.shape), axis=1)]
            mask[tuple(v.T)] = True


def load_boxes(folder: Path) -> dict:
    """The dendrites' bounding boxes that ``make`` stored (as the stitching records them)."""
    stored = json.loads((folder / "boxes.json").read_text())
    return {int(k): tuple(slice(a, b) for a, b in v) for k, v in stored.items()}


def measure(folder: Path, max_voxels: int) -> dict:
    import numpy as np
    import zarr

    from spinequant.pipeline.runinfo import peak_memory_mb
    from spinequant.scale.measure import volume_skeleton

    labels = zarr.open_array(str(folder / "labels.zarr"), mode="r")
    spacing = (0.5, 0.094, 0.094)
    boxes = load_boxes(folder)
    base = peak_memory_mb()
    t = time.perf_counter()
    skel = volume_skeleton(labels, spacing, boxes, config=None, skeleton_max_voxels=max_voxels)
    seconds = time.perf_counter() - t
    np.savez(folder / f"skeleton_{max_voxels}.npz", coords_um=skel.coords_um, label=skel.label,
             position_um=skel.position_um, parent=skel.parent)
    largest = max(boxes, key=lambda i: np.prod([s.stop - s.start for s in boxes[i]]))
    return {"max_voxels": max_voxels, "seconds": round(seconds, 1), "peak_mb_before": round(base, 1),
            "peak_mb": round(peak_memory_mb(), 1), "dendrites": len(boxes),
            "largest_box": [s.stop - s.start for s in boxes[largest]],
            "boxes_tiled": sum(int(np.prod([s.stop - s.start + 2 for s in b])) > max_voxels for b in boxes.values()),
            "length_um": {int(i): round(skel.length_um(i), 2) for i in boxes},
            "branch_points": {int(i): skel.branch_points(i) for i in boxes}, "nodes": len(skel.label)}


def compare(folder: Path, tiled: int | None = None) -> dict:
    """The skeletons of the whole-box run (the largest limit) and of the run with limit
    ``tiled`` (default: the smallest), from the last ``measure`` runs: nodes, lengths, branch points."""
    import numpy as np

    runs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    runs = {r["max_voxels"]: r for r in runs if r.get("mode") == "measure"}
    whole, tiled = max(runs), (min(runs) if tiled is None else tiled)
    a, b = (np.load(folder / f"skeleton_{k}.npz") for k in (whole, tiled))
    same = a["coords_um"].shape == b["coords_um"].shape and bool(np.array_equal(a["coords_um"], b["coords_um"]))
    la, lb = runs[whole]["length_um"], runs[tiled]["length_um"]
    return {"whole": whole, "tiled": tiled, "nodes": [len(a["label"]), len(b["label"])], "identical_nodes": same,
            "max_position_difference_um": float(np.abs(a["position_um"] - b["position_um"]).max()) if same else None,
            "largest_length_difference": max(abs(lb[k] - la[k]) / max(la[k], 1e-9) for k in la),
            "branch_points_equal": runs[whole]["branch_points"] == runs[tiled]["branch_points"]}


def main(mode: str, folder: str, *args: str) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {"make": lambda: make(folder, int(args[0])), "measure": lambda: measure(folder, int(args[0])),
           "compare": lambda: compare(folder, int(args[0]) if args else None)}[mode]()
    log_run(folder, mode, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
