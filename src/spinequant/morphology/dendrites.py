"""Per-dendrite table and SWC centrelines."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io.swc import SWC_COLUMNS, SWC_DENDRITE
from ._common import checked_spacing, dendrite_label_image
from .classify import SPINE_TYPES
from .config import MorphologyConfig, resolve_config
from .skeleton import DendriteSkeleton, dendrite_skeleton

DENDRITE_COLUMNS = (["dendrite_id", "length_um", "mean_radius_um", "volume_um3",
                     "n_branch_points", "n_spines", "density_per_um"]
                    + [f"fraction_{t}" for t in SPINE_TYPES])
#: The dendrite table of a 2D image: its area (µm²) in place of the volume; ``mean_radius_um``
#: is half the width in the plane.
DENDRITE_COLUMNS_2D = [c if c != "volume_um3" else "area_um2" for c in DENDRITE_COLUMNS]


def measure_dendrites(dendrite_labels, spacing, spines: pd.DataFrame | None = None, *,
                      config: MorphologyConfig | dict | None = None,
                      skeleton: DendriteSkeleton | None = None) -> pd.DataFrame:
    """One row per dendrite: centreline length, radius, branch points, spine density and types.

    Parameters
    ----------
    dendrite_labels : (Z, Y, X) int or bool array
        One id per dendrite (a boolean mask is split into connected pieces).
    spacing : sequence of 3 floats
        Voxel size (z, y, x) in µm.
    spines : DataFrame, optional
        The table of :func:`measure_spines` (uses ``dendrite_id`` and ``type``).
    config : MorphologyConfig or dict, optional
    skeleton : DendriteSkeleton, optional
        Reuse centrelines already computed for the same labels.

    Returns
    -------
    DataFrame
        Columns :data:`DENDRITE_COLUMNS`: ``length_um`` (centreline incl. end caps),
        ``mean_radius_um`` (mean inscribed radius along the centreline), ``volume_um3``
        (``area_um2`` for a 2D image, :data:`DENDRITE_COLUMNS_2D`),
        ``n_branch_points``, ``n_spines``, ``density_per_um`` (spines per µm of centreline) and
        ``fraction_<type>`` (share of the dendrite's spines of each type; NaN without spines).
    """
    labels = dendrite_label_image(dendrite_labels)
    sp = checked_spacing(spacing, labels.ndim)
    if skeleton is None:
        skeleton = dendrite_skeleton(labels, sp, config=resolve_config(config))
    ids, voxels = np.unique(labels[labels > 0], return_counts=True)
    rows = []
    for did, nvox in zip(ids, voxels):
        sel = skeleton.label == did
        length = skeleton.length_um(did)
        on = spines[spines["dendrite_id"] == did] if spines is not None and len(spines) else None
        n = 0 if on is None else len(on)
        fractions = [(on["type"] == t).mean() if n else np.nan for t in SPINE_TYPES]
        rows.append([int(did), length,
                     float(skeleton.radius_um[sel].mean()) if sel.any() else np.nan,
                     float(nvox * np.prod(sp)), skeleton.branch_points(did), n,
                     n / length if length > 0 else np.nan, *fractions])
    columns = DENDRITE_COLUMNS if labels.ndim == 3 else DENDRITE_COLUMNS_2D
    return pd.DataFrame(rows, columns=columns).astype(
        {"dendrite_id": np.int64, "n_branch_points": np.int64, "n_spines": np.int64})


def recount_spines(dendrites: pd.DataFrame, spines: pd.DataFrame) -> pd.DataFrame:
    """``dendrites`` (a table of :func:`measure_dendrites`) with its spine counts, densities and
    type fractions counted again from ``spines`` (after spines were dropped from the table)."""
    dendrites = dendrites.copy()
    by = spines.groupby("dendrite_id")
    n = by.size().reindex(dendrites["dendrite_id"]).fillna(0).astype(np.int64).to_numpy()
    dendrites["n_spines"] = n
    length = dendrites["length_um"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        dendrites["density_per_um"] = np.where(length > 0, n / length, np.nan)
    for t in SPINE_TYPES:
        share = by["type"].apply(lambda x, t=t: float((x == t).mean())).reindex(dendrites["dendrite_id"])
        dendrites[f"fraction_{t}"] = np.where(n > 0, share.to_numpy(float), np.nan)
    return dendrites


def dendrite_centrelines(dendrite_labels, spacing, *, config: MorphologyConfig | dict | None = None,
                         skeleton: DendriteSkeleton | None = None) -> pd.DataFrame:
    """Dendrite centrelines as an SWC table (µm; type 3 = dendrite; one tree per dendrite),
    with a ``dendrite_id`` column after the SWC columns (as in dendrites.csv).

    Node ``id`` counts from 1 (z = 0 for a 2D image); each tree's root (``parent`` = -1) is the dendrite's start, the
    end from which :func:`measure_spines` counts ``position_um``. Write it with
    :func:`spinequant.io.swc.write_swc`.
    """
    if skeleton is None:
        skeleton = dendrite_skeleton(dendrite_labels, spacing, config=resolve_config(config))
    n = len(skeleton.label)
    # Parents first (SWC readers expect it): order nodes by dendrite, then by path position.
    order = np.lexsort((skeleton.position_um, skeleton.label))
    new_id = np.empty(n, dtype=np.int64)
    new_id[order] = np.arange(1, n + 1)
    parent = skeleton.parent[order]
    # A 2D image's centrelines lie in the plane z = 0.
    z, y, x = np.pad(skeleton.coords_um[order], ((0, 0), (3 - skeleton.coords_um.shape[1], 0))).T
    return pd.DataFrame({
        "id": new_id[order], "type": np.full(n, SWC_DENDRITE, dtype=np.int64),
        "x": x, "y": y, "z": z, "radius": skeleton.radius_um[order],
        "parent": np.where(parent >= 0, new_id[np.maximum(parent, 0)], -1),
        "dendrite_id": skeleton.label[order].astype(np.int64),
    })[[*SWC_COLUMNS, "dendrite_id"]]
