"""Training data: stacks with semantic labels (0 background, 1 dendrite, 2 spine), from folders.

A sample may also carry the centres of its spine heads (point annotations) for models with a
point head, and may leave its masks unlabelled (:data:`UNLABELLED`, e.g. a data set that
marks each spine with a point only): losses then ignore those pixels.

Accepted layouts, in ``DATA_DIR`` or in each of its sub-folders:

* ``image.tif`` with ``labels_semantic.tif`` (what ``spinequant.synth.write_phantom`` and
  ``export_results`` write), or with instance labels ``labels_spines.tif`` and
  ``labels_dendrites.tif`` (any id > 0 is spine or dendrite); an optional ``spine_heads.csv``
  beside them gives the spine-head centres (µm; see :mod:`spinequant.groundtruth.layout`);
* ``image.tif`` with a dendrite trace ``dendrites.swc`` (µm; drawn as spheres of the traced
  radius along each segment, as DeepD3 made its dendrite masks) and a spine mask
  ``labels_spines.tif`` or ``spines.tif`` (any value > 0 is spine);
* pairs ``NAME.tif`` + ``NAME_labels.tif`` (semantic) side by side;
* 2D images annotated in YOLO format, as most public spine sets come: ``images/`` (PNG, JPEG,
  TIFF) beside ``labels/`` with one ``.txt`` of the same name per image (boxes: spine heads as
  points; polygons: spine outlines; see :mod:`.yolo_data`). They need a model with a point
  head (``--from lean2d_real``) and a pixel size (metadata or ``voxel_size=(y, x)``).

The voxel size comes from the image file (ImageJ / OME metadata) or ``voxel_size``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from ...errors import InputError
from .sample import UNLABELLED, TrainingSample
from .yolo_data import yolo_training_sample




def head_heatmap(shape, heads, spacing, *, sigma_um=(0.75, 0.25, 0.25)) -> np.ndarray:
    """Target map of spine-head centres: a Gaussian of ``sigma_um`` (z, y, x) around each
    head (voxel coordinates), the maximum where two overlap; float32 in [0, 1].

    >>> heat = head_heatmap((1, 9, 9), [[0, 4, 4]], (0.5, 0.1, 0.1), sigma_um=(0.5, 0.2, 0.2))
    >>> float(heat[0, 4, 4]), round(float(heat[0, 4, 6]), 3)
    (1.0, 0.607)
    """
    heat = np.zeros(shape, np.float32)
    sigma_px = np.asarray(sigma_um, float) / np.asarray(spacing, float)
    reach = np.ceil(3 * sigma_px).astype(int)
    for centre in np.asarray(heads, float).reshape(-1, 3):
        lo = np.maximum(np.floor(centre).astype(int) - reach, 0)
        hi = np.minimum(np.floor(centre).astype(int) + reach + 2, shape)
        if np.any(hi <= lo):
            continue
        axes = [((np.arange(a, b) - c) / s) ** 2 for a, b, c, s in zip(lo, hi, centre, sigma_px)]
        g = np.exp(-0.5 * (axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]))
        box = heat[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        np.maximum(box, g.astype(np.float32), out=box)
    return heat


def semantic_from_instances(spine_labels: np.ndarray, dendrite_labels: np.ndarray) -> np.ndarray:
    """Semantic labels from instance labels; spines win where both are set."""
    from ...export.labels import semantic_labels

    return semantic_labels(spine_labels, dendrite_labels)


def load_training_data(folder: str | os.PathLike, *, voxel_size=None) -> list[TrainingSample]:
    """All annotated stacks found in ``folder`` (see the module docstring for layouts)."""
    from ...io import read_stack

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"The training data folder '{folder}' does not exist or is not a folder.")
    if (folder / "images").is_dir() and (folder / "labels").is_dir():
        return _yolo_samples(folder, voxel_size)
    found: list[tuple[Path, Path | tuple[Path, Path], str, Path | None]] = []
    for d in [folder] + sorted(p for p in folder.iterdir() if p.is_dir()):
        img = d / "image.tif"
        if img.exists():
            if (d / "labels_semantic.tif").exists():
                found.append((img, d / "labels_semantic.tif", d.name, d))
            elif (d / "labels_spines.tif").exists() and (d / "labels_dendrites.tif").exists():
                found.append((img, (d / "labels_spines.tif", d / "labels_dendrites.tif"), d.name, d))
            elif (d / "dendrites.swc").exists():
                spines = [p for p in (d / "labels_spines.tif", d / "spines.tif") if p.exists()]
                if spines:
                    found.append((img, (spines[0], d / "dendrites.swc"), d.name, d))
        for lab in sorted(d.glob("*_labels.tif")):
            img = lab.with_name(lab.name[: -len("_labels.tif")] + ".tif")
            if img.exists():
                found.append((img, lab, img.stem, None))
    if not found:
        raise InputError(
            f"No training pairs found in '{folder}'. Put each annotated stack in a sub-folder as "
            f"image.tif + labels_semantic.tif (0 background, 1 dendrite, 2 spine), or as NAME.tif "
            f"+ NAME_labels.tif side by side."
        )
    from ...groundtruth.layout import read_heads

    samples = []
    for img, lab, name, stack_dir in found:
        stack = read_stack(img, voxel_size=voxel_size)
        if isinstance(lab, tuple) and lab[1].suffix == ".swc":
            from ...evaluate.swc_mask import swc_to_mask
            from ...io.swc import read_swc

            dend = swc_to_mask(read_swc(lab[1]), shape=np.shape(stack.data), spacing=stack.spacing)
            sem = semantic_from_instances(tifffile.imread(lab[0]), dend)
        elif isinstance(lab, tuple):
            sem = semantic_from_instances(tifffile.imread(lab[0]), tifffile.imread(lab[1]))
        else:
            sem = tifffile.imread(lab).astype(np.uint8)
        heads = read_heads(stack_dir, stack.spacing) if stack_dir is not None else None
        samples.append(TrainingSample(np.asarray(stack.data), np.squeeze(sem), tuple(stack.spacing), name,
                                      heads=heads))
    return samples


def _yolo_samples(folder: Path, voxel_size) -> list[TrainingSample]:
    from ...io import read_stack

    samples = []
    for label in sorted((folder / "labels").glob("*.txt")):
        images = [p for p in (folder / "images").glob(label.stem + ".*") if p.suffix.lower() != ".txt"]
        if not images:
            continue
        stack = read_stack(images[0], voxel_size=voxel_size)
        if not getattr(stack, "is_2d", False):
            raise InputError(f"'{images[0]}' is not a 2D image; YOLO labels annotate single planes.")
        sample, _ = yolo_training_sample(np.asarray(stack.data), label, pixel_size_um=float(stack.spacing[-1]),
                                         name=images[0].stem)
        samples.append(sample)
    if not samples:
        raise InputError(
            f"'{folder}' has images/ and labels/ folders, but no label file has an image of the same "
            f"name; each images/NAME.png needs labels/NAME.txt.")
    return samples
