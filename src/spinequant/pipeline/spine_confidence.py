"""The confidence of each spine from what was measured about it: a learnt second look at every
candidate of a point-head network.

The head map scores a spine from a few micrometres of image around it. The annotators of real
data sets decide with the whole field in view: they mark the spines of the bright dendrite in
focus, not those of a dim neurite beside it; a bright spot protruding from the shaft's edge,
not one lying on it. So every head-map peak down to a low floor (the model card's
``candidate_floor``) becomes a candidate spine, is measured like any spine, and a
gradient-boosted tree ensemble (:class:`~spinequant.segment.neural.tree_ensemble.TreeEnsemble`)
turns its head-map peak, shape and relative brightness (:data:`FEATURES`) into the probability
that a human would mark it. Candidates below ``min_confidence`` are dropped. The trees are
fitted on candidates of the real annotated training images and of phantoms
(``scripts/train_spine_confidence.py``); their validation figures are in docs/real_data.md.

Every feature is free of the image's units: lengths in µm, intensities relative to the image's
own background and brightest signal, sizes relative to the image's largest dendrite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

#: Columns of the spine table used as they are.
TABLE_FEATURES = ("length_um", "tip_distance_um", "head_diameter_um", "neck_length_um",
                  "neck_min_diameter_um", "neck_mean_diameter_um", "head_neck_ratio", "has_neck",
                  "n_heads", "nn_distance_um", "attached", "at_edge")
#: Intensity columns of the spine table, each taken relative to the image (``_rel_p99``: above
#: the median, as a fraction of the 99.5th percentile's height) and to the dendrites
#: (``_rel_shaft``: as a fraction of the median dendrite voxel's height above the median).
INTENSITY_FEATURES = ("head_mean_intensity", "head_max_intensity", "spine_mean_intensity",
                      "neck_mean_intensity")
FEATURES = (("head_map_peak",) + TABLE_FEATURES
            + tuple(f"{c}_{r}" for c in INTENSITY_FEATURES for r in ("rel_p99", "rel_shaft"))
            + ("dendrite_rel_brightest", "dendrite_rel_largest", "base_rel_p99", "image_p99_over_p50",
               "image_dendrite_fraction", "peak_rank", "peak_rel_max"))


@dataclass(frozen=True)
class ImageStatistics:
    """What the features need of the whole image: its median and 99.5th percentile
    (:func:`image_levels`), each dendrite's id, mean intensity and voxel count, the median
    intensity of all dendrite voxels (``shaft``; None when there are none) and its number of
    voxels. :func:`image_statistics` takes them from arrays in memory;
    :func:`spinequant.scale.confidence.streamed_statistics` from a volume read tile by tile."""

    p50: float
    p99: float
    dendrite_ids: np.ndarray
    dendrite_means: np.ndarray
    dendrite_voxels: np.ndarray
    shaft: float | None
    size: int


def image_statistics(image: np.ndarray, dendrite_labels: np.ndarray) -> ImageStatistics:
    """The :class:`ImageStatistics` of an image and its dendrite labels held in memory."""
    image = np.asarray(image)
    p50, p99 = image_levels(image)
    ids, means, counts, shaft_values = _dendrite_statistics(image, dendrite_labels)
    shaft = float(np.median(shaft_values)) if shaft_values.size else None
    return ImageStatistics(p50, p99, ids, means, counts, shaft, int(image.size))


def confidence_features(spines: pd.DataFrame, scores, image: np.ndarray | None, dendrite_labels: np.ndarray | None,
                        spacing, *, statistics: ImageStatistics | None = None,
                        base_values: np.ndarray | None = None) -> pd.DataFrame:
    """The :data:`FEATURES` of every spine of ``spines`` (a table of
    :func:`~spinequant.morphology.measure_spines` measured with ``image``), one row each, in
    its order. ``scores``: each spine's head-map peak, in the table's order.

    Nothing stack-sized is allocated: percentiles come from at most :data:`PERCENTILE_SAMPLE`
    evenly strided voxels, dendrite statistics from each dendrite's box, and the smoothed
    image only around each spine's base. ``statistics`` and ``base_values`` (the image
    smoothed at each base, :func:`smoothed_at`), when given, are used instead of reading
    ``image`` and ``dendrite_labels`` (a volume too large to hold: :mod:`spinequant.scale`)."""
    spacing = np.asarray(spacing, dtype=float)
    scores = np.asarray(scores, dtype=float)
    if statistics is None:
        statistics = image_statistics(image, dendrite_labels)
    if base_values is None:
        base_values = smoothed_at(np.asarray(image), spines, spacing)
    st = statistics
    f = pd.DataFrame({"head_map_peak": scores}, index=spines.index)
    for c in TABLE_FEATURES:
        f[c] = pd.to_numeric(spines[c], errors="coerce").astype(float)
    p50, p99 = st.p50, st.p99
    height = max(p99 - p50, 1e-6)
    ids, means, counts = st.dendrite_ids, st.dendrite_means, st.dendrite_voxels
    shaft = st.shaft if st.shaft is not None else p99
    for c in INTENSITY_FEATURES:
        v = spines[c].to_numpy(float) if c in spines else np.full(len(spines), np.nan)
        f[f"{c}_rel_p99"] = (v - p50) / height
        f[f"{c}_rel_shaft"] = (v - p50) / max(shaft - p50, 1e-6)
    own = spines["dendrite_id"].to_numpy(np.int64)
    bright = np.full(len(spines), np.nan)
    size = np.full(len(spines), np.nan)
    if ids.size:
        where = np.searchsorted(ids, own)
        found = (where < len(ids)) & (ids[np.minimum(where, len(ids) - 1)] == own)
        bright[found] = (means[where[found]] - p50) / max(float(means.max() - p50), 1e-6)
        size[found] = counts[where[found]] / counts.max()
    f["dendrite_rel_brightest"] = bright
    f["dendrite_rel_largest"] = size
    f["base_rel_p99"] = (np.asarray(base_values, float) - p50) / height
    f["image_p99_over_p50"] = p99 / max(p50, 1e-6)
    f["image_dendrite_fraction"] = float(counts.sum()) / max(st.size, 1)
    f["peak_rank"] = pd.Series(scores).rank(ascending=False).to_numpy() / max(len(scores), 1)
    f["peak_rel_max"] = scores / max(float(scores.max()), 1e-6) if len(scores) else scores
    return f[list(FEATURES)]


#: Percentiles of larger images are taken over this many evenly strided voxels (a 2D image is
#: read whole; on a 101 x 1024 x 1024 stack every 7th voxel).
PERCENTILE_SAMPLE = 2 ** 24


def image_levels(image: np.ndarray) -> tuple[float, float]:
    """The image's median and 99.5th percentile (its background and its brightest signal)."""
    if image.size == 0:
        return 0.0, 1.0
    flat = image.reshape(-1)
    if flat.size > PERCENTILE_SAMPLE:
        flat = flat[:: -(-flat.size // PERCENTILE_SAMPLE)]
    p50, p99 = np.percentile(flat.astype(np.float32), [50, 99.5])
    return float(p50), float(p99)


def _dendrite_statistics(image, dendrite_labels):
    """Each dendrite's id, mean intensity and voxel count, and the intensities of all dendrite
    voxels (a few percent of the stack), read box by box."""
    labels = np.asarray(dendrite_labels)
    ids, means, counts, values = [], [], [], []
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        v = image[box][labels[box] == i].astype(np.float32)
        if v.size:
            ids.append(i)
            means.append(float(v.mean()))
            counts.append(v.size)
            values.append(v)
    return (np.array(ids, np.int64), np.array(means, float), np.array(counts, float),
            np.concatenate(values) if values else np.zeros(0, np.float32))


#: Gaussian smoothing (µm) read at a spine's base: about a shaft's half-width.
BASE_SMOOTHING_UM = 0.5


def base_voxels(spines: pd.DataFrame, spacing, axes: str = "zyx") -> np.ndarray:
    """Each spine's base point as the index of its nearest voxel (NaN rows where it has none).

    A base often lies half-way between voxels (``base_x_um / spacing`` is k + 0.5), where the
    last bit of the µm value would choose the voxel: the same spine measured on a block of a
    volume or on the whole image picked neighbouring voxels. Rounded to 1e-6 voxel first, so
    that such a point always goes to the same one (to even, as ``np.round``)."""
    spacing = np.asarray(spacing, dtype=float)
    return np.column_stack([np.round(np.round(spines[f"base_{a}_um"].to_numpy(float) / s, 6))
                            for a, s in zip(axes, spacing)])


def smoothed_at(image, spines: pd.DataFrame, spacing, read=None) -> np.ndarray:
    """The image smoothed over :data:`BASE_SMOOTHING_UM` at each spine's base point (NaN where
    it has none). Each point is smoothed on a window wider than the filter's reach, which gives
    the whole-image filter's value (both reflect at the image's edges). ``read(image, box)``
    reads a window (default: ``image[box]``; a lazy volume's reader in
    :mod:`spinequant.scale`)."""
    out = np.full(len(spines), np.nan)
    if not len(spines):
        return out
    spacing = np.asarray(spacing, dtype=float)
    read = read or (lambda volume, box: volume[box])
    sigma = BASE_SMOOTHING_UM / spacing
    reach = np.ceil(4.0 * sigma).astype(int) + 1          # scipy's default truncate is 4 sigma
    axes = "zyx"[-len(image.shape):]
    points = base_voxels(spines, spacing, axes)
    for k, p in enumerate(points):
        if not np.isfinite(p).all():
            continue
        p = np.clip(p.astype(int), 0, np.array(image.shape) - 1)
        box = tuple(slice(max(c - r, 0), min(c + r + 1, n)) for c, r, n in zip(p, reach, image.shape))
        window = ndi.gaussian_filter(np.asarray(read(image, box)).astype(np.float32), sigma, mode="reflect")
        out[k] = window[tuple(c - b.start for c, b in zip(p, box))]
    return out


def confidence_model(calibration: dict, card_dir: str | Path):
    """The :class:`~spinequant.segment.neural.tree_ensemble.TreeEnsemble` a model card's
    ``calibration`` names (its ``file``, beside the card), checked against its sha256."""
    from ..errors import InputError
    from ..segment.neural.card import sha256_of
    from ..segment.neural.tree_ensemble import TreeEnsemble

    path = Path(card_dir) / calibration["file"]
    if not path.exists():
        raise InputError(f"The spine-confidence model '{path}' named by the model card is missing; "
                         f"reinstall spinequant or restore the file.")
    digest = sha256_of(path)
    if calibration.get("sha256") and digest != calibration["sha256"]:
        raise InputError(f"The spine-confidence model '{path}' does not match its model card (sha256 "
                         f"{digest[:12]}...); the file is damaged or was replaced. Reinstall spinequant.")
    model = TreeEnsemble.load(path)
    if tuple(model.features) != FEATURES:
        raise InputError(f"The spine-confidence model '{path}' was fitted on other features than this "
                         f"version of spinequant computes; refit it with scripts/train_spine_confidence.py.")
    if calibration.get("recalibration"):
        return Recalibrated(model, calibration["recalibration"])
    return model


class Recalibrated:
    """A learnt confidence whose probabilities pass through a Platt fit made for another
    network than the one it was fitted to (a fine-tuned one: ``pipeline.calibrate``)."""

    def __init__(self, model, params: dict):
        self.model, self.params, self.features = model, params, model.features

    def predict_proba(self, x) -> np.ndarray:
        from ..segment.neural.calibration import confidence

        return confidence(self.model.predict_proba(x), self.params)


def spine_confidence(model, spines: pd.DataFrame, scores, image, dendrite_labels, spacing, *,
                     statistics: ImageStatistics | None = None, base_values=None) -> np.ndarray:
    """The probability that a human would mark each spine of ``spines`` (``statistics``,
    ``base_values``: see :func:`confidence_features`)."""
    if not len(spines):
        return np.zeros(0)
    x = confidence_features(spines, scores, image, dendrite_labels, spacing, statistics=statistics,
                            base_values=base_values).to_numpy(float)
    return model.predict_proba(x)


def keep_confident(spines: pd.DataFrame, spine_labels: np.ndarray, confidence: np.ndarray,
                   min_confidence: float) -> tuple[pd.DataFrame, np.ndarray, int]:
    """The spines at or above ``min_confidence``: their table rows (``confidence`` column set,
    ids renumbered 1..K in table order, nearest-neighbour distances among the kept spines), the
    label image relabelled to match (in place: no second stack-sized array), and how many were
    dropped."""
    from ..morphology.spines import nearest_neighbour_distance

    spines = spines.copy()
    spines["confidence"] = np.asarray(confidence, float)
    keep = spines["confidence"].to_numpy() >= min_confidence
    old = spines["id"].to_numpy(np.int64)
    if keep.all() and np.array_equal(old, np.arange(1, len(old) + 1)):
        return spines, spine_labels, 0
    new = np.zeros(int(max(old.max(initial=0), 0)) + 1, dtype=np.int64)
    new[np.sort(old[keep])] = np.arange(1, int(keep.sum()) + 1)
    boxes = ndi.find_objects(spine_labels)
    # ascending ids: each new id is at most its old one, so no relabelled voxel is read again
    for sid in np.sort(old):
        box = boxes[sid - 1] if sid - 1 < len(boxes) else None
        if box is not None and new[sid] != sid:
            view = spine_labels[box]
            view[view == sid] = new[sid]
    spines = spines[keep].reset_index(drop=True)
    spines["id"] = new[old[keep]]
    spines["nn_distance_um"] = nearest_neighbour_distance(spines)
    return spines, spine_labels, int((~keep).sum())
