"""Intensity of a spine, its head and its neck, per channel."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..stack import Stack

REGIONS = ("spine", "head", "neck")


def image_channels(image, shape: tuple[int, ...]) -> list[np.ndarray] | None:
    """Split ``image`` (ZYX, CZYX, or a :class:`Stack` with those axes; YX or CYX for 2D
    labels) into channels of the labels' ``shape``."""
    if image is None:
        return None
    if isinstance(image, Stack):
        if "T" in image.axes and image.size_of("T") > 1:
            raise InputError("The image has several time points; choose one with Stack.select(time=...).")
        data = np.asarray(image.data)
        if "T" in image.axes:
            data = data.reshape([n for n, a in zip(data.shape, image.axes) if a != "T"])
    else:
        data = np.asarray(image)
    if data.shape == tuple(shape):
        return [data]
    if data.ndim == len(shape) + 1 and data.shape[1:] == tuple(shape):
        return [data[c] for c in range(data.shape[0])]
    raise InputError(
        f"The image has shape {data.shape}, but the labels have shape {tuple(shape)}. Give the "
        f"image the labels were made from, as (Z, Y, X) or with channels first (C, Z, Y, X)."
    )


def intensity_columns(n_channels: int) -> list[str]:
    """Column names: ``<region>_<stat>_intensity`` with ``_c<k>`` for several channels."""
    suffixes = [""] if n_channels == 1 else [f"_c{c}" for c in range(n_channels)]
    return [f"{r}_{s}_intensity{x}" for x in suffixes for r in REGIONS
            for s in ("mean", "max", "integrated")]


def region_intensities(channels: list[np.ndarray], box, masks: dict[str, np.ndarray],
                       voxel_volume: float) -> list[float]:
    """Mean, max and integrated (sum x voxel volume, like Fiji's IntDen) per region and channel,
    in the order of :func:`intensity_columns`."""
    out = []
    for ch in channels:
        crop = ch[box]
        for region in REGIONS:
            values = crop[masks[region]].astype(np.float64)
            if values.size == 0:
                out += [np.nan, np.nan, np.nan]
            else:
                out += [values.mean(), values.max(), values.sum() * voxel_volume]
    return out


def roi_means(frames, labels) -> np.ndarray:
    """(T, n) mean of every frame inside labels 1..n (``nan`` for a label with no pixel)."""
    frames = np.asarray(frames)
    labels = np.asarray(labels)
    if frames.shape[1:] != labels.shape:
        raise InputError(f"The ROIs have shape {labels.shape} but the frames {frames.shape[1:]}; "
                         f"they must come from the same field of view.")
    n = int(labels.max(initial=0))
    flat = labels.ravel()
    counts = np.bincount(flat, minlength=n + 1)[1:].astype(float)
    out = np.empty((len(frames), n))
    with np.errstate(invalid="ignore", divide="ignore"):
        for t, frame in enumerate(frames):
            out[t] = np.bincount(flat, weights=np.asarray(frame, float).ravel(), minlength=n + 1)[1:] / counts
    return out
