"""2D phantoms: the maximum projection of a phantom, with truth that holds in the plane.

Most annotated spine data are maximum projections; a projected phantom tests the 2D analysis
against exact truth. The labels are projected like the image (maximum over z), so the area of
every label is exact by construction; lengths and head diameters are truth in the plane only
for spines that lie (nearly) in it and that no other spine covers in the projection, which the
table marks (``in_plane``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from .phantom import Phantom

#: Columns of a projected phantom's spine table.
TRUTH_COLUMNS_2D = ["id", "type", "dendrite_id", "base_y_um", "base_x_um", "head_y_um", "head_x_um",
                    "length_um", "head_diameter_um", "neck_length_um", "neck_diameter_um", "area_um2",
                    "n_pixels", "elevation_deg", "overlapped", "in_plane", "truncated"]


def project_phantom(phantom: Phantom, *, max_elevation_deg: float = 15.0) -> Phantom:
    """The maximum projection along z of ``phantom``, as a 2D phantom with exact 2D truth.

    Parameters
    ----------
    phantom : Phantom
        A 3D phantom from :func:`make_phantom`.
    max_elevation_deg : float
        Spines whose base-to-head direction leaves the plane by at most this angle count as
        lying in the plane.

    Returns
    -------
    Phantom
        ``image`` (Y, X) = maximum projection, ``spacing`` (y, x), label images = maximum of
        the labels over z, ``spines`` with :data:`TRUTH_COLUMNS_2D`: ``area_um2`` = the
        projected label's pixels x pixel area (exact for the labels); ``length_um`` and
        ``neck_length_um`` projected onto the plane (true length x cos(elevation): the
        spines are straight); ``head_diameter_um`` unchanged (a ball projects to a disc of its
        diameter); ``overlapped`` when another spine covers part of this one's footprint
        (its projected label then loses pixels); ``in_plane`` = elevation at most
        ``max_elevation_deg`` and not overlapped. Centrelines lie at z = 0.

    Examples
    --------
    >>> from spinequant.synth import make_phantom
    >>> flat = project_phantom(make_phantom("two_photon", seed=0, shape=(16, 96, 96)))
    >>> flat.image.ndim, len(flat.spacing)
    (2, 2)
    """
    spacing = tuple(float(s) for s in phantom.spacing[1:])
    spine_labels = phantom.spine_labels.max(axis=0)
    dendrite_labels = phantom.dendrite_labels.max(axis=0)
    from ..export.labels import semantic_labels  # here: the export package loads every writer

    semantic = semantic_labels(spine_labels, dendrite_labels)
    truth = phantom.spines
    counts = np.bincount(spine_labels.ravel(), minlength=int(truth["id"].to_numpy().max(initial=0)) + 1)
    overlapped = _overlapped(phantom.spine_labels, len(counts))
    direction = (truth[["head_z_um", "head_y_um", "head_x_um"]].to_numpy()
                 - truth[["base_z_um", "base_y_um", "base_x_um"]].to_numpy())
    norm = np.maximum(np.linalg.norm(direction, axis=1), 1e-12)
    elevation = np.degrees(np.arcsin(np.clip(np.abs(direction[:, 0]) / norm, 0.0, 1.0)))
    in_plane_factor = np.cos(np.radians(elevation))
    ids = truth["id"].to_numpy()
    table = pd.DataFrame({
        "id": ids, "type": truth["type"], "dendrite_id": truth["dendrite_id"],
        "base_y_um": truth["base_y_um"], "base_x_um": truth["base_x_um"],
        "head_y_um": truth["head_y_um"], "head_x_um": truth["head_x_um"],
        "length_um": truth["length_um"] * in_plane_factor,
        "head_diameter_um": truth["head_diameter_um"],
        "neck_length_um": truth["neck_length_um"] * in_plane_factor,
        "neck_diameter_um": truth["neck_diameter_um"],
        "area_um2": counts[ids] * float(np.prod(spacing)), "n_pixels": counts[ids].astype(np.int64),
        "elevation_deg": elevation, "overlapped": overlapped[ids],
        "in_plane": (elevation <= max_elevation_deg) & ~overlapped[ids],
        "truncated": truth["truncated"],
    })[TRUTH_COLUMNS_2D]
    centrelines = phantom.centrelines.assign(z=0.0)
    return replace(phantom, image=phantom.image.max(axis=0), spacing=spacing, semantic=semantic,
                   spine_labels=spine_labels, dendrite_labels=dendrite_labels, spines=table,
                   centrelines=centrelines,
                   params={**phantom.params, "projected": {"max_elevation_deg": max_elevation_deg}})


def _overlapped(labels: np.ndarray, n: int) -> np.ndarray:
    """For each id (index 0 unused), whether another id lies above or below its footprint."""
    out = np.zeros(n, dtype=bool)
    for index, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        column = labels[(slice(None),) + box[1:]]
        footprint = (column == index).any(axis=0)
        others = (column > 0) & (column != index)
        out[index] = bool((others.any(axis=0) & footprint).any())
    return out
