"""What each stack of a training folder holds, and its problems (``spinequant groundtruth check``).

One row per stack: how it is annotated, its shape and voxel size, voxels per class, spine
objects and their sizes in µm³, and the problems that would spoil training: no voxel size,
labels of another shape than the image, no labels of a class, spines that touch no dendrite,
values other than 0, 1, 2 (and 255, unlabelled) in semantic labels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import InputError, SpinequantError

COLUMNS = ["stack", "annotation", "shape", "voxel_size_um", "background_voxels", "dendrite_voxels",
           "spine_voxels", "spines", "spine_volume_median_um3", "spine_volume_min_um3",
           "spine_volume_max_um3", "spines_not_touching", "problems"]
FULL = np.ones((3, 3, 3), bool)


def _stack_dirs(folder: Path) -> list[tuple[str, Path, dict]]:
    """(name, image path, label files by kind) of every stack found."""
    found = []
    for d in [folder] + sorted(p for p in folder.iterdir() if p.is_dir()):
        if (d / "image.tif").exists():
            files = {k: d / n for k, n in (("semantic", "labels_semantic.tif"), ("spines", "labels_spines.tif"),
                                           ("dendrites", "labels_dendrites.tif"), ("swc", "dendrites.swc"),
                                           ("spine_mask", "spines.tif")) if (d / n).exists()}
            found.append((d.name if d != folder else ".", d / "image.tif", files))
        for lab in sorted(d.glob("*_labels.tif")):
            img = lab.with_name(lab.name[: -len("_labels.tif")] + ".tif")
            if img.exists():
                found.append((img.stem, img, {"semantic": lab}))
    return found


def _annotation(files: dict) -> str:
    if "spines" in files and "dendrites" in files:
        return "semantic+instances" if "semantic" in files else "instances"
    if "semantic" in files:
        return "semantic"
    if "swc" in files and ("spines" in files or "spine_mask" in files):
        return "swc+spine mask"
    return "none"


def check_stack(name: str, image_path: Path, files: dict, *, voxel_size=None) -> dict:
    """One row of :data:`COLUMNS` for a stack."""
    import tifffile

    from ..io import open_stack

    row = dict.fromkeys(COLUMNS)
    row.update(stack=name, annotation=_annotation(files), problems=[])
    problems = row["problems"]
    try:
        stack = open_stack(image_path, voxel_size=voxel_size, require_spacing=False)
        shape = tuple(int(stack.shape[stack.axes.index(a)]) for a in stack.spatial_axes)
        spacing = tuple(float(s) for s in stack.spacing)
    except SpinequantError as exc:
        problems.append(f"image unreadable: {exc}")
        return _finish(row)
    row["shape"] = "x".join(map(str, shape))
    if len(spacing) != 3 or not np.all(np.isfinite(spacing)):
        problems.append("no voxel size (give --voxel-size, or write it into image.tif)")
        row["voxel_size_um"] = ""
    else:
        row["voxel_size_um"] = " ".join(f"{s:g}" for s in spacing)
    kind = row["annotation"]
    if kind == "none":
        problems.append("no labels (labels_semantic.tif or labels_spines.tif + labels_dendrites.tif)")
        return _finish(row)
    if kind == "semantic":
        sem = tifffile.imread(files["semantic"])
        bad = np.setdiff1d(np.unique(sem), [0, 1, 2, 255])
        if bad.size:
            problems.append(f"semantic values {bad.tolist()[:5]} outside 0/1/2")
        spines = ndi.label(sem == 2, FULL)[0]
        dend = sem == 1
    elif kind.endswith("instances"):
        spines = tifffile.imread(files["spines"])
        dend = tifffile.imread(files["dendrites"]) > 0
        if spines.shape == dend.shape:
            dend &= spines == 0
    else:
        spines = ndi.label(tifffile.imread(files.get("spines", files.get("spine_mask"))) > 0, FULL)[0]
        dend = None
    if spines.shape != shape or (dend is not None and dend.shape != shape):
        problems.append(f"labels {spines.shape} and image {shape} differ in shape")
        return _finish(row)
    if dend is None:                          # dendrites from the trace
        from ..evaluate.swc_mask import swc_to_mask
        from ..io.swc import read_swc

        if row["voxel_size_um"]:
            dend = swc_to_mask(read_swc(files["swc"]), shape=shape, spacing=spacing) & (spines == 0)
        else:
            dend = np.zeros(shape, bool)
    spine_mask = spines > 0
    row["background_voxels"] = int((~spine_mask & ~dend).sum())
    row["dendrite_voxels"] = int(dend.sum())
    row["spine_voxels"] = int(spine_mask.sum())
    ids, counts = np.unique(spines[spine_mask], return_counts=True)
    row["spines"] = int(ids.size)
    if row["dendrite_voxels"] == 0:
        problems.append("no dendrite voxels")
    if ids.size == 0:
        problems.append("no spine voxels")
    if ids.size and row["voxel_size_um"]:
        volumes = counts * float(np.prod(spacing))
        row["spine_volume_median_um3"] = round(float(np.median(volumes)), 4)
        row["spine_volume_min_um3"] = round(float(volumes.min()), 4)
        row["spine_volume_max_um3"] = round(float(volumes.max()), 4)
    if ids.size and dend.any():
        touching = np.unique(spines[ndi.binary_dilation(dend, FULL) & spine_mask])
        row["spines_not_touching"] = int(np.setdiff1d(ids, touching).size)
        if row["spines_not_touching"]:
            problems.append(f"{row['spines_not_touching']} spines touch no dendrite (groundtruth repair)")
    return _finish(row)


def _finish(row: dict) -> dict:
    row["problems"] = "; ".join(row["problems"])
    return row


def check_folder(folder: str | os.PathLike, *, voxel_size=None) -> pd.DataFrame:
    """A table (:data:`COLUMNS`) with one row per stack found in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"'{folder}' is not a folder; give the training-data folder (one sub-folder per stack).")
    stacks = _stack_dirs(folder)
    if not stacks:
        raise InputError(f"No stacks in '{folder}': a stack is a folder with image.tif and its labels, or "
                         f"NAME.tif with NAME_labels.tif.")
    table = pd.DataFrame([check_stack(n, i, f, voxel_size=voxel_size) for n, i, f in stacks], columns=COLUMNS)
    counts = ["background_voxels", "dendrite_voxels", "spine_voxels", "spines", "spines_not_touching"]
    return table.astype({c: "Int64" for c in counts})
