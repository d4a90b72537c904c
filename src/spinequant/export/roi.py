"""ImageJ / Fiji ROI sets: one polygon per spine per z plane (per spine in a 2D image),
opened by the ROI Manager."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import roifile
from scipy import ndimage as ndi
from skimage.measure import find_contours

from .._atomic import atomic_path


def spine_rois(spine_labels: np.ndarray, *, prefix: str = "spine") -> list[roifile.ImagejRoi]:
    """Outline every spine in every z plane it occupies as an ImageJ polygon ROI.

    The outline is the 0.5 iso-line of the spine's mask in that plane
    (:func:`skimage.measure.find_contours`), in ImageJ pixel coordinates (a pixel's centre is
    at +0.5). Each ROI carries its slice as its stack position, so the ROI Manager shows it on
    the right plane of a single-channel stack such as ``labels_spines.tif`` or one channel of the
    original, and a name ``spine-0007-z012``: spine id, then
    the slice number as Fiji counts it (from 1). A spine that falls into several pieces in
    one plane gets one ROI per piece, the extra ones named ``...-z012-2``, ``-3``.

    In a 2D image (a plane or a projection) each spine is one polygon named ``spine-0007``,
    without a stack position.

    Parameters
    ----------
    spine_labels : ndarray of int, shape (Z, Y, X) or (Y, X)
        0 = background, one id per spine.

    Returns
    -------
    list of roifile.ImagejRoi
        Ordered by spine id, then plane.
    """
    labels = np.asarray(spine_labels)
    planar = labels.ndim == 2
    if planar:
        labels = labels[None]
    if labels.ndim != 3:
        from ..errors import InputError

        raise InputError(f"ROI export needs a 3D label volume (Z, Y, X) or a 2D label image (Y, X), "
                         f"not shape {labels.shape}.")
    rois = []
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        z0, y0, x0 = (s.start for s in box)
        own = labels[box] == index
        for dz in range(own.shape[0]):
            plane = np.pad(own[dz], 1)
            if not plane.any():
                continue
            contours = sorted(find_contours(plane.astype(np.uint8), 0.5), key=len, reverse=True)
            z = z0 + dz
            for piece, contour in enumerate(contours, start=1):
                if len(contour) < 3:
                    continue
                # (row, col) in the padded crop -> ImageJ (x, y), pixel centres at +0.5.
                xy = np.column_stack([contour[:-1, 1] - 1 + x0 + 0.5, contour[:-1, 0] - 1 + y0 + 0.5])
                name = (f"{prefix}-{index:04d}" + ("" if planar else f"-z{z + 1:03d}")
                        + (f"-{piece}" if piece > 1 else ""))
                # Stack position only, as ImageJ itself stores ROIs of a plain Z stack: a hyperstack
                # z position makes ImageJ clear the stack position (Roi.setPosition(c, z, t)).
                roi = roifile.ImagejRoi.frompoints(xy, name=name, position=z)
                roi.roitype = roifile.ROI_TYPE.POLYGON
                rois.append(roi)
    return rois


def write_roi_set(path: str | os.PathLike, spine_labels: np.ndarray) -> Path:
    """Write :func:`spine_rois` as an ImageJ ROI set (``.zip``) atomically; returns the path.

    Open it in Fiji with the stack (File > Open, then drag the zip onto Fiji or use
    ROI Manager > More > Open); read it in Python with ``roifile.roiread(path)``.
    """
    rois = spine_rois(spine_labels)
    with atomic_path(path) as tmp:
        if rois:
            roifile.roiwrite(tmp, rois, mode="w")
        else:
            import zipfile

            zipfile.ZipFile(tmp, "w").close()
    return Path(path)
