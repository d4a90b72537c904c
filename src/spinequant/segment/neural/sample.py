"""One annotated stack for training, and the label value of what nobody annotated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import InputError

#: Semantic label value of pixels whose class nobody annotated (ignored by the losses).
UNLABELLED = 255


@dataclass
class TrainingSample:
    """One annotated stack.

    ``heads`` holds the spine-head centres as (K, 3) voxel coordinates (z, y, x), for models
    with a point head; ``None`` when the sample has no point annotation (then heads are taken
    as unknown, not absent). ``weight`` sets how often patches come from this sample relative
    to the others.
    """

    image: np.ndarray          # (Z, Y, X)
    semantic: np.ndarray       # uint8, 0 bg, 1 dendrite, 2 spine, 255 unlabelled
    spacing: tuple[float, float, float]
    name: str = ""
    heads: np.ndarray | None = None
    weight: float = 1.0

    def __post_init__(self):
        if self.image.shape != self.semantic.shape:
            raise InputError(
                f"Training stack '{self.name}': image shape {self.image.shape} and label shape "
                f"{self.semantic.shape} differ. Labels must be drawn on the same voxel grid."
            )
        if self.image.ndim != 3:
            raise InputError(f"Training stack '{self.name}' must be 3D (Z, Y, X), not {self.image.shape}.")
        bad = np.setdiff1d(np.unique(self.semantic), [0, 1, 2, UNLABELLED])
        if bad.size:
            raise InputError(
                f"Semantic labels of '{self.name}' contain values {bad.tolist()[:5]}; only 0 "
                f"(background), 1 (dendrite), 2 (spine) and {UNLABELLED} (not annotated) are "
                f"allowed. For instance labels use labels_spines.tif and labels_dendrites.tif."
            )
        if self.heads is not None:
            self.heads = np.asarray(self.heads, dtype=np.float64).reshape(-1, 3)
