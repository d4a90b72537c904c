"""Training samples from 2D images annotated in YOLO format (how most public spine sets come).

Two kinds of label file, one line per spine, coordinates as fractions of the image width and
height:

* boxes ``class xc yc w h``: each spine is a point at the box centre (the spine head, as in
  the SpineDetector "Dendritic2" set); the masks stay unlabelled;
* polygons ``class x1 y1 x2 y2 ...``: each spine is an outline, neck included (as in the
  Dendritic-Spine-Analyzer set). The outlines become the spine mask; the rest of the
  image's signal, where the set has blanked everything but the annotated dendrite, becomes
  the dendrite mask (``dendrite_from_signal``); each spine's head centre is the point of its
  outline farthest from the dendrite among the outline's widest part.

The pixel size is not stored in such files: it is given per image.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import polygon as draw_polygon

from ...errors import InputError
from .sample import UNLABELLED, TrainingSample

#: Nominal z step given to a single plane (no resampling happens along z for one plane).
PLANE_Z_UM = 0.5


def read_yolo_lines(path: str | os.PathLike) -> list[tuple[int, np.ndarray]]:
    """(class, coordinates) per line of a YOLO label file; coordinates as fractions."""
    rows = []
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:   # e.g. a link to a file that was moved
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"The YOLO label file '{path}' cannot be read ({reason}). Replace it with the "
                         f"label file itself (one line per spine: class x y w h, or a polygon) or "
                         f"remove it.") from None
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise InputError(f"Line {n} of the YOLO label file '{path}' is not numbers: {line[:60]!r}.") from None
        if len(values) < 5 or len(values) % 2 == 0:
            raise InputError(
                f"Line {n} of the YOLO label file '{path}' has {len(values)} numbers; a box has 5 "
                f"(class x y w h) and a polygon an odd number (class, then x y pairs).")
        rows.append((int(values[0]), np.asarray(values[1:])))
    return rows


def _polygon_px(coords: np.ndarray, shape) -> np.ndarray:
    """(K, 2) pixel-centre coordinates (row, col) of a polygon or a box given in fractions."""
    h, w = shape
    if coords.size == 4:
        xc, yc, bw, bh = coords
        xs = np.array([xc - bw / 2, xc + bw / 2, xc + bw / 2, xc - bw / 2])
        ys = np.array([yc - bh / 2, yc - bh / 2, yc + bh / 2, yc + bh / 2])
    else:
        xs, ys = coords[0::2], coords[1::2]
    return np.stack([ys * h - 0.5, xs * w - 0.5], axis=1)


def dendrite_from_signal(image: np.ndarray, spines: np.ndarray) -> np.ndarray:
    """Dendrite mask of an image whose background was blanked to 0: the signal that is not
    spine, without isolated specks (an opening of one pixel)."""
    signal = ndi.binary_opening(image > 0, iterations=1)
    return signal & ~spines


def head_point(outline: np.ndarray, dendrite: np.ndarray) -> np.ndarray:
    """(row, col) of a spine's head centre: among the pixels of its outline at least half as
    deep as its deepest (the head, not the neck), the one farthest from the dendrite."""
    rows, cols = np.nonzero(outline)
    if rows.size == 0:
        return np.array([np.nan, np.nan])
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    pad = 2
    box = (slice(max(r0 - pad, 0), r1 + pad), slice(max(c0 - pad, 0), c1 + pad))
    own = outline[box]
    depth = ndi.distance_transform_edt(own)
    wide = own & (depth >= 0.5 * depth.max())
    far = ndi.distance_transform_edt(~dendrite[box]) if dendrite[box].any() else depth
    score = np.where(wide, far + 1e-3 * depth, -np.inf)
    r, c = np.unravel_index(int(np.argmax(score)), own.shape)
    return np.array([r + box[0].start, c + box[1].start], float)


def yolo_training_sample(image: np.ndarray, label_file: str | os.PathLike, *, pixel_size_um: float,
                         name: str = "", outlines: bool | None = None, weight: float = 1.0
                         ) -> tuple[TrainingSample, np.ndarray]:
    """A :class:`TrainingSample` (one plane) from a 2D image and its YOLO label file.

    ``outlines``: whether the lines are spine outlines (masks known) or boxes standing for
    points (masks unlabelled); default: outlines when any line is a polygon. Returns the
    sample and the class of each spine (in the order of ``sample.heads``).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"'{name}': a YOLO-annotated image must be one 2D plane, not shape {image.shape}.")
    rows = read_yolo_lines(label_file)
    if outlines is None:
        outlines = any(coords.size > 4 for _, coords in rows)
    classes = np.array([c for c, _ in rows], int)
    spacing = (PLANE_Z_UM, float(pixel_size_um), float(pixel_size_um))
    if not outlines:
        centres = np.array([_polygon_px(coords, image.shape).mean(axis=0) for _, coords in rows]).reshape(-1, 2)
        semantic = np.full((1, *image.shape), UNLABELLED, np.uint8)
        heads = np.column_stack([np.zeros(len(centres)), centres])
        return TrainingSample(image[None], semantic, spacing, name, heads=heads, weight=weight), classes
    masks = []
    for _, coords in rows:
        px = _polygon_px(coords, image.shape)
        mask = np.zeros(image.shape, bool)
        rr, cc = draw_polygon(px[:, 0], px[:, 1], shape=image.shape)
        mask[rr, cc] = True
        if not mask.any():   # a sliver thinner than a pixel: its nearest pixel
            r, c = np.clip(np.round(px.mean(axis=0)).astype(int), 0, np.array(image.shape) - 1)
            mask[r, c] = True
        masks.append(mask)
    spine = np.any(masks, axis=0) if masks else np.zeros(image.shape, bool)
    dendrite = dendrite_from_signal(image, spine)
    semantic = np.where(spine, 2, np.where(dendrite, 1, 0)).astype(np.uint8)[None]
    heads = np.array([head_point(m, dendrite) for m in masks]).reshape(-1, 2)
    heads = np.column_stack([np.zeros(len(heads)), heads])
    return TrainingSample(image[None], semantic, spacing, name, heads=heads, weight=weight), classes
