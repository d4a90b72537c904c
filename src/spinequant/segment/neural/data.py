"""Training data: stacks with semantic labels (0 background, 1 dendrite, 2 spine), from folders.

Accepted layouts, in ``DATA_DIR`` or in each of its sub-folders:

* ``image.tif`` with ``labels_semantic.tif`` (what ``spinequant.synth.write_phantom`` and
  ``export_results`` write), or with instance labels ``labels_spines.tif`` and
  ``labels_dendrites.tif`` (any id > 0 is spine or dendrite);
* ``image.tif`` with a dendrite trace ``dendrites.swc`` (µm; drawn as spheres of the traced
  radius along each segment, as DeepD3 made its dendrite masks) and a spine mask
  ``labels_spines.tif`` or ``spines.tif`` (any value > 0 is spine);
* pairs ``NAME.tif`` + ``NAME_labels.tif`` (semantic) side by side.

The voxel size comes from the image file (ImageJ / OME metadata) or ``voxel_size``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from ...errors import InputError


@dataclass
class TrainingSample:
    """One annotated stack."""

    image: np.ndarray          # (Z, Y, X)
    semantic: np.ndarray       # uint8, 0 bg, 1 dendrite, 2 spine
    spacing: tuple[float, float, float]
    name: str = ""

    def __post_init__(self):
        if self.image.shape != self.semantic.shape:
            raise InputError(
                f"Training stack '{self.name}': image shape {self.image.shape} and label shape "
                f"{self.semantic.shape} differ. Labels must be drawn on the same voxel grid."
            )
        if self.image.ndim != 3:
            raise InputError(f"Training stack '{self.name}' must be 3D (Z, Y, X), not {self.image.shape}.")
        bad = np.setdiff1d(np.unique(self.semantic), [0, 1, 2])
        if bad.size:
            raise InputError(
                f"Semantic labels of '{self.name}' contain values {bad.tolist()[:5]}; only 0 "
                f"(background), 1 (dendrite) and 2 (spine) are allowed. For instance labels use "
                f"labels_spines.tif and labels_dendrites.tif."
            )


def semantic_from_instances(spine_labels: np.ndarray, dendrite_labels: np.ndarray) -> np.ndarray:
    """Semantic labels from instance labels; spines win where both are set."""
    sem = np.zeros(spine_labels.shape, np.uint8)
    sem[np.asarray(dendrite_labels) > 0] = 1
    sem[np.asarray(spine_labels) > 0] = 2
    return sem


def load_training_data(folder: str | os.PathLike, *, voxel_size=None) -> list[TrainingSample]:
    """All annotated stacks found in ``folder`` (see the module docstring for layouts)."""
    from ...io import read_stack

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"The training data folder '{folder}' does not exist or is not a folder.")
    found: list[tuple[Path, Path | tuple[Path, Path], str]] = []
    for d in [folder] + sorted(p for p in folder.iterdir() if p.is_dir()):
        img = d / "image.tif"
        if img.exists():
            if (d / "labels_semantic.tif").exists():
                found.append((img, d / "labels_semantic.tif", d.name))
            elif (d / "labels_spines.tif").exists() and (d / "labels_dendrites.tif").exists():
                found.append((img, (d / "labels_spines.tif", d / "labels_dendrites.tif"), d.name))
            elif (d / "dendrites.swc").exists():
                spines = [p for p in (d / "labels_spines.tif", d / "spines.tif") if p.exists()]
                if spines:
                    found.append((img, (spines[0], d / "dendrites.swc"), d.name))
        for lab in sorted(d.glob("*_labels.tif")):
            img = lab.with_name(lab.name[: -len("_labels.tif")] + ".tif")
            if img.exists():
                found.append((img, lab, img.stem))
    if not found:
        raise InputError(
            f"No training pairs found in '{folder}'. Put each annotated stack in a sub-folder as "
            f"image.tif + labels_semantic.tif (0 background, 1 dendrite, 2 spine), or as NAME.tif "
            f"+ NAME_labels.tif side by side."
        )
    samples = []
    for img, lab, name in found:
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
        samples.append(TrainingSample(np.asarray(stack.data), np.squeeze(sem), tuple(stack.spacing), name))
    return samples
