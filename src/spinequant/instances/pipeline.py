"""From spine and dendrite maps (probabilities or masks) to spine objects and dendrites."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..validate import check_spacing
from ._objects import Objects
from .bridges import bridge_bright_gaps
from .config import InstanceConfig, InstanceResult
from .filters import (filter_objects, join_through_spines, noise_objects, remove_small_objects,
                      trim_to_peak_fraction)
from .floodfill import flood_fill_objects
from .heads import (_SUPPORT_MARGIN, flank_heads, head_map_support, head_peaks, object_scores,
                    objects_from_heads, partner_heads, trim_heads)
from .split import split_objects


def spine_instances(spine_prob, dendrite_prob=None, *, spacing, config: InstanceConfig | None = None,
                    head_prob=None, image=None, partner_head_prob=None, progress=None) -> InstanceResult:
    """Turn a spine map and a dendrite map into labelled spines and cleaned dendrites.

    Steps: dendrite = ``dendrite_prob >= dendrite_threshold``, split into 3D connected
    components, fragments under ``min_dendrite_volume_um3`` and eq. 12 noise removed; spines
    by DeepD3 flood fill or threshold + connected components; touching spines split by
    watershed; then the volume, z-plane and distance-to-dendrite rules and eq. 12 noise.

    Parameters
    ----------
    spine_prob : ndarray, shape (Z, Y, X) or (Y, X)
        Spine probability in [0, 1], or a boolean spine mask. A 2D map (a plane or a
        projection) gives 2D objects; its sizes are areas (see :class:`InstanceConfig`).
    dendrite_prob : ndarray, shape (Z, Y, X), optional
        Dendrite probability in [0, 1], or a boolean mask. Without it the dendrite rules are
        skipped and ``dendrite_labels`` is empty.
    spacing : sequence of 3 floats (z, y, x), or 2 (y, x) for a 2D map
        Voxel size in µm.
    config : InstanceConfig, optional
        Settings; the defaults are described in :class:`InstanceConfig`.
    head_prob : ndarray, shape (Z, Y, X), optional
        Map of spine-head centres (networks with a point head): spines are its peaks
        (method ``"heads"``).
    partner_head_prob : ndarray, shape (Z, Y, X), optional
        On stacks whose ``head_prob`` joins a 2D network's head map with a 3D partner's
        (:mod:`spinequant.segment.neural.stack_heads`), the partner's map alone: its own
        peaks are heads too where the joined map does not part them
        (``head_partner_threshold``; :func:`~spinequant.instances.heads.partner_heads`).
    image : ndarray, optional
        The analysed image: heads on a stronger head's flank are kept where it dips between
        them (``head_flank_prominence``), and dendrite pieces are bridged where it stays bright between them
        (``bridge_gap_um``).
    progress : callable, optional
        Called with the fraction of the work done after each step (dendrites, spine objects,
        splitting, rules, trimming); it may raise :class:`~spinequant.errors.Cancelled` to stop.

    Returns
    -------
    InstanceResult
        ``spine_labels`` and ``dendrite_labels`` (int32) and the config used.

    Examples
    --------
    >>> spines = np.zeros((6, 40, 40), bool); spines[2:4, 5:12, 5:12] = True
    >>> dendrite = np.zeros_like(spines); dendrite[1:5, 12:20, :] = True
    >>> result = spine_instances(spines, dendrite, spacing=(0.5, 0.1, 0.1))
    >>> result.n_spines, result.n_dendrites
    (1, 1)
    """
    cfg = config or InstanceConfig()
    report = progress or (lambda fraction: None)
    spine, spine_is_mask = _as_map(spine_prob, "spine map")
    spacing = check_spacing(spacing, where="the spine map", ndim=spine.ndim)
    size = cfg.sizes(spine.ndim)
    removed: dict[str, int] = {}
    has_dendrite = dendrite_prob is not None
    if has_dendrite:
        dendrite, _ = _as_map(dendrite_prob, "dendrite map")
        if dendrite.shape != spine.shape:
            raise InputError(
                f"The spine map has shape {spine.shape} but the dendrite map has {dendrite.shape}; "
                f"both must come from the same stack."
            )
        dendrites = Objects.from_mask(dendrite, cfg.connectivity, cfg.dendrite_threshold)
        dendrites, removed["dendrite_fragments"] = remove_small_objects(
            dendrites, spacing=spacing, min_volume_um3=size["min_dendrite_volume_um3"])
        if cfg.noise_rule:
            dendrites, removed["dendrite_noise"] = _noise(dendrites, dendrites, spacing, cfg, size)
        dendrite_labels = dendrites.labels.astype(np.int32, copy=False)
        if image is not None and cfg.bridge_gap_um > 0:
            dendrite_labels = bridge_bright_gaps(dendrite_labels, image, spacing, max_gap_um=cfg.bridge_gap_um,
                                                 min_fraction=cfg.bridge_min_fraction)
            dendrites = Objects.of(dendrite_labels)
    else:
        dendrite_labels = np.zeros(spine.shape, dtype=np.int32)
    report(0.2)

    method = cfg.method
    if method == "auto":
        method = "heads" if head_prob is not None else "components" if spine_is_mask else "floodfill"
    if method == "heads":
        if head_prob is None:
            raise InputError(
                "Spine objects by the 'heads' method need a spine-head map (from a network with a "
                "point head); this model gives none. Use method 'components' instead.")
        head, _ = _as_map(head_prob, "spine-head map")
        peaks, values = head_peaks(head, spacing, threshold=cfg.head_threshold,
                                   min_distance_um=cfg.head_min_distance_um,
                                   close_distance_um=cfg.head_close_distance_um, spine_prob=spine,
                                   close_spine_min=cfg.head_close_spine_min)
        if partner_head_prob is not None and cfg.head_partner_threshold > 0:
            partner, _ = _as_map(partner_head_prob, "partner's head map")
            if partner.shape != head.shape:
                raise InputError(f"The partner's head map has shape {partner.shape} but the head map "
                                 f"has {head.shape}; both must come from the same stack.")
            peaks, values = partner_heads(peaks, values, head, partner, spine, spacing,
                                          threshold=cfg.head_partner_threshold,
                                          head_threshold=cfg.head_threshold,
                                          min_distance_um=cfg.head_min_distance_um,
                                          support=head_map_support(cfg),
                                          dendrite_mask=dendrite_labels if has_dendrite else None)
        if cfg.head_flank_prominence > 0 and image is not None:
            peaks, values = flank_heads(peaks, values, head, spine, image, spacing,
                                        distance_um=cfg.head_close_distance_um,
                                        prominence=cfg.head_flank_prominence, head_min=cfg.head_flank_min,
                                        spine_min=cfg.head_close_spine_min, dip=cfg.head_flank_dip)
        spines = objects_from_heads(peaks, spine, head, threshold=cfg.threshold,
                                    connectivity=cfg.connectivity)
    elif method == "floodfill":
        spines = flood_fill_objects(
            spine, spacing=spacing, seed_threshold=cfg.seed_threshold,
            growth_threshold=cfg.growth_threshold, max_distance_to_seed_um=cfg.max_distance_to_seed_um,
            max_drop=cfg.max_drop, connectivity=cfg.connectivity, min_volume_um3=size["min_volume_um3"])
    else:
        spines = Objects.from_mask(spine, cfg.connectivity, cfg.threshold)
    report(0.4)
    # Specks below the minimum volume go before the per-object work (splitting, distances).
    small = spines.volumes(spacing) < size["min_volume_um3"]
    removed["volume"] = int(small.sum())
    if small.any():
        spines = spines.keep(spines.ids[~small])
    if cfg.split_by != "none" and method != "heads":   # heads are split by their seeds
        depth = cfg.split_min_depth_um if cfg.split_by == "distance" else cfg.split_min_depth_prob
        spines = split_objects(spines, spacing=spacing, by=cfg.split_by, spine_prob=spine,
                               min_distance_um=cfg.split_min_distance_um, min_depth=depth,
                               connectivity=cfg.connectivity)
    report(0.6)
    # A head's region of the spine map is judged by its size once trimmed to the head's own
    # peak: before the trim it may hold a wide faint stretch of the map around a real head.
    max_volume = np.inf if method == "heads" else size["max_volume_um3"]
    spines, counts = filter_objects(
        spines, spacing=spacing, dendrite_mask=dendrite_labels if has_dendrite else None,
        min_volume_um3=size["min_volume_um3"], max_volume_um3=max_volume, min_planes=cfg.min_planes,
        max_distance_to_dendrite_um=cfg.max_distance_to_dendrite_um if has_dendrite else None)
    removed.update(counts, volume=removed["volume"] + counts["volume"])
    # Eq. 12 last: the cheap rules have already dropped the specks, so few distances remain to test.
    if cfg.noise_rule and has_dendrite:
        spines, removed["spine_noise"] = _noise(spines, dendrites, spacing, cfg, size)
    if has_dendrite and cfg.join_dendrites_through_spines:
        dendrite_labels = join_through_spines(dendrite_labels, spines, cfg.connectivity)
    report(0.8)
    # After the join, which needs the whole faint bridge a spine object may make.
    scores = None
    if method == "heads":
        if cfg.peak_fraction > 0:
            spines = trim_heads(spines, spine, head, cfg.peak_fraction, cfg.threshold)
        large = spines.volumes(spacing) > size["max_volume_um3"]
        if large.any():
            spines = spines.keep(spines.ids[~large])
            removed["volume"] += int(large.sum())
        scores = object_scores(spines, head)
    elif cfg.peak_fraction > 0 and not spine_is_mask:
        spines = trim_to_peak_fraction(spines, spine, cfg.peak_fraction, cfg.connectivity)
    report(1.0)
    return InstanceResult(spine_labels=spines.labels, dendrite_labels=dendrite_labels, config=cfg,
                          removed=removed, scores=scores)


def map_support(config: InstanceConfig, *, heads: bool) -> dict:
    """Where :func:`spine_instances` with ``config`` reads its maps, as lowest values: maps
    set to 0 below them give the same objects, dendrites and scores. ``{"dendrite": level}``
    (the dendrite map is only thresholded) and, with a head map (``heads``) and the
    ``"heads"`` method, ``"spine_or_head": (spine_min, head_min)``: the spine and head maps
    are read only where the spine map is at least ``spine_min`` or the head map at least
    ``head_min`` (:func:`~spinequant.instances.heads.head_map_support`); a 3D partner's head
    map is read only there too (:func:`~spinequant.instances.heads.partner_heads`). The levels
    lie 1 % below the thresholds, so rounding to float16 drops no voxel that is read."""
    support = {"dendrite": _SUPPORT_MARGIN * config.dendrite_threshold}
    both = head_map_support(config) if heads else None
    if both is not None:
        support["spine_or_head"] = both
    return support


def _noise(objects, dendrites, spacing, cfg, size):
    return noise_objects(objects, dendrites, spacing=spacing, distance_um=cfg.noise_distance_um,
                         dendrite_volume_um3=size["noise_dendrite_volume_um3"],
                         volume_um3=size["noise_volume_um3"])
#: The bits of float16 1.0: a float16 array whose bit patterns (as uint16) are all at most this
#: holds only numbers in [0, 1] (no sign bit, no NaN or infinity, whose exponent bits are all set).
_FLOAT16_ONE = 0x3C00


def _as_map(data, what: str) -> tuple[np.ndarray, bool]:
    """The map as float16 or float32 (other types converted to float32) in [0, 1], and whether
    it was a mask (bool or only 0/1 integers)."""
    arr = np.asarray(data)
    if arr.ndim not in (2, 3):
        raise InputError(
            f"The {what} has {arr.ndim} dimensions (shape {arr.shape}); spinequant needs one 3D "
            f"volume (Z, Y, X) or one 2D image (Y, X). Select one channel and time point first."
        )
    if arr.dtype == bool:
        return arr.astype(np.float32), True
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(
            f"The {what} has data type {arr.dtype}; give probabilities (float) or a boolean mask.")
    if arr.dtype not in (np.float16, np.float32):   # a network's float16 maps stay as they are
        arr = arr.astype(np.float32)
    if arr.dtype == np.float16 and arr.size and int(arr.view(np.uint16).max()) <= _FLOAT16_ONE:
        return arr, False        # (the bit patterns' max; float16 arithmetic is slow)
    # min and max are NaN when any value is (and infinite when one is): no stack-sized mask.
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(
            f"The {what} contains NaN or infinite values; probabilities must be finite numbers in "
            f"[0, 1]. Replace them (e.g. with 0) before building spine objects.")
    if lo < 0 or hi > 1:
        raise InputError(
            f"The {what} holds values from {lo:g} to {hi:g}, but probabilities must lie in [0, 1]. "
            f"If it is an 8-bit image (0-255), divide it by 255; if it is a mask, pass it as booleans."
        )
    is_mask = np.issubdtype(np.asarray(data).dtype, np.integer)
    return arr, bool(is_mask)
