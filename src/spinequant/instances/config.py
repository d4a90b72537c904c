"""Settings and result of the spine-object stage."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..config import check_fields
from ..errors import InputError

METHODS = ("auto", "floodfill", "components", "heads")
#: The size settings (µm³) that a 2D image compares as areas (µm², :func:`planar_area_um2`).
SIZE_SETTINGS = ("min_volume_um3", "max_volume_um3", "min_dendrite_volume_um3",
                 "noise_dendrite_volume_um3", "noise_volume_um3")


def planar_area_um2(volume_um3: float) -> float:
    """The area that stands for a volume in a 2D image: the mid-plane section of a ball of
    that volume, pi (3 V / 4 pi)^(2/3) (0.02 µm³ -> 0.089 µm², 4.4 µm³ -> 3.24 µm²).

    >>> round(planar_area_um2(4 / 3 * np.pi), 6)    # the unit ball's section is the unit disc
    3.141593
    """
    return float(np.pi * (3.0 * volume_um3 / (4.0 * np.pi)) ** (2.0 / 3.0))
SPLIT_BY = ("distance", "probability", "none")


@dataclass(frozen=True)
class InstanceConfig:
    """Parameters that turn spine and dendrite maps into spine objects.

    Every size is physical (µm, µm³), so one setting works at any voxel size. In a 2D image
    (a plane or a projection) objects have areas: each volume setting is compared as the
    area of the mid-plane section of a ball of that volume (:func:`planar_area_um2`), and
    ``min_planes`` does not apply. The DeepD3 paper
    (Fernholz et al.) names the flood-fill and filter rules but gives no numbers; its software's
    defaults are in pixels, and those converted at the DeepD3 benchmark voxel size
    (0.094 × 0.094 × 0.5 µm) are used where they suit measurement, changed where they do not.
    The noise rule and its defaults are Vidaurre-Gallart et al. (2022), eq. 12. The table in
    ``docs/instances.md`` gives the source of each number.

    Attributes
    ----------
    method : {"auto", "floodfill", "components", "heads"}
        ``"floodfill"``: DeepD3's seeded 3D flood fill; ``"components"``: threshold then 3D
        connected components; ``"heads"``: one object per peak of a spine-head map (networks
        with a point head; see :mod:`spinequant.instances.heads`), outlined by the spine map
        at ``threshold``; ``"auto"``: heads when a head map is given, else components for
        boolean masks and flood fill for probability maps.
    head_threshold : float
        Heads: a local maximum of the head map at or above this value is a spine.
    head_min_distance_um : float
        Heads: maxima closer than this in y/x (along z: 1.6 z steps, kept between once and
        twice this) count as one head.
    head_close_distance_um : float
        Heads: maxima at least this far apart in y/x (below ``head_min_distance_um``; along z
        1.6 z steps kept between once and twice this) are heads too where the spine map is at least
        ``head_close_spine_min``: two heads side by side make two peaks, a bump on the shaft
        does not count. ``head_min_distance_um`` or more switches this off.
    head_close_spine_min : float
        See ``head_close_distance_um``.
    head_flank_prominence : float
        Heads: a maximum of the head map on the flank of a stronger head's blob (two heads
        that touch) is a head too when it rises at least this much above the saddle to any
        higher maximum, the head map there is at least ``head_flank_min``, the spine map at
        least ``head_close_spine_min``, it lies ``head_close_distance_um`` from every other
        head (along z as there) and the image dips between it and the nearest head by at least
        ``head_flank_dip`` of the dimmer of the two; 0 switches this off. Needs the image
        (``spine_instances(..., image=)``); see :func:`spinequant.instances.heads.flank_heads`.
    head_flank_min, head_flank_dip : float
        See ``head_flank_prominence``.
    head_partner_threshold : float
        Heads on stacks whose head map joins a 3D partner's (``spine_instances(...,
        partner_head_prob=)``): a peak of the partner's own map at or above this value is a
        head too where it lies ``head_min_distance_um`` from every other head (along z as
        there), the joined map is at least ``head_threshold`` and the dendrite mask is off;
        0 switches this off. See :func:`spinequant.instances.heads.partner_heads`.
    seed_threshold : float
        Flood fill: a voxel at or above this spine probability may start a new object.
    growth_threshold : float
        Flood fill: neighbours join an object only at or above this probability.
    max_distance_to_seed_um : float
        Flood fill: no voxel of an object is farther than this from its seed (µm, Euclidean).
    max_drop : float
        Flood fill: a voxel joins only if its probability is at least seed value minus this.
    threshold : float
        Components: spine probability at or above which a voxel is spine.
    connectivity : {6, 18, 26}
        Voxel neighbourhood for flood fill and connected components.
    split_by : {"distance", "probability", "none"}
        Split touching spines by seeded watershed on the anisotropic distance transform of
        each object, on the spine probability, or not at all.
    split_min_distance_um : float
        Watershed seeds (local maxima) closer than this are merged into one.
    split_min_depth_um : float
        Distance split: a maximum of the distance transform counts as a seed only if it rises
        this much (µm) above the saddle to any higher maximum (an h-maximum).
    split_min_depth_prob : float
        Probability split: the same depth in probability units.
    min_volume_um3, max_volume_um3 : float
        Keep spines whose volume lies in this range. With ``method="heads"`` the largest volume
        is compared once each spine is trimmed to its head (``peak_fraction``): before the trim
        its region may hold a wide faint stretch of the spine map.
    min_planes : int
        Keep spines that span at least this many z planes.
    max_distance_to_dendrite_um : float or None
        Keep spines whose nearest voxel lies within this distance of the dendrite; ``None``
        switches the test off.
    dendrite_threshold : float
        Dendrite probability at or above which a voxel is dendrite.
    min_dendrite_volume_um3 : float
        Dendrite fragments smaller than this are removed (DeepD3's cleaning step).
    peak_fraction : float
        Trim every spine object to its voxels at or above this fraction of the object's own
        peak probability (0.5: its half-maximum outline), keeping the largest piece; 0 keeps
        objects as found. For probability maps only (ignored for masks). Analysing with a
        network sets 0.5: its spines are found at a low threshold, which outlines them 3-6x
        too large.
    bridge_gap_um : float
        Dendrite pieces whose nearest points are at most this far apart, with the image
        staying at least ``bridge_min_fraction`` of the way from the background up to the
        dimmer piece's median brightness along the straight line between them, are joined
        and the line drawn into the dendrite (a shaft map broken at a bright swelling); 0
        switches this off. Needs the image (``spine_instances(..., image=)``); see
        :mod:`spinequant.instances.bridges`.
    bridge_min_fraction : float
        See ``bridge_gap_um``.
    join_dendrites_through_spines : bool
        Dendrite pieces joined by a spine object become one dendrite: a bright swelling or a
        spine pointing along z that a network calls spine can cut the shaft map in two.
    noise_rule : bool
        Apply Vidaurre-Gallart eq. 12 to spines and dendrite components: remove a component
        that is farther than ``noise_distance_um`` from every dendrite component larger than
        ``noise_dendrite_volume_um3`` *and* smaller than ``noise_volume_um3``.
    noise_distance_um, noise_dendrite_volume_um3, noise_volume_um3 : float
        D, V_d and V_s of eq. 12 (paper defaults 3 µm, 0.16 µm³, 0.024 µm³).
    """

    method: str = "auto"
    seed_threshold: float = 0.8
    growth_threshold: float = 0.5
    max_distance_to_seed_um: float = 2.0
    max_drop: float = 0.5
    threshold: float = 0.5
    head_threshold: float = 0.3
    head_min_distance_um: float = 0.4
    head_close_distance_um: float = 0.2
    head_close_spine_min: float = 0.3
    head_flank_prominence: float = 0.003
    head_flank_min: float = 0.3
    head_flank_dip: float = 0.03
    head_partner_threshold: float = 0.5
    connectivity: int = 26
    split_by: str = "distance"
    split_min_distance_um: float = 0.5
    split_min_depth_um: float = 0.03
    split_min_depth_prob: float = 0.1
    min_volume_um3: float = 0.02
    max_volume_um3: float = 4.4
    min_planes: int = 1
    max_distance_to_dendrite_um: float | None = 1.0
    dendrite_threshold: float = 0.5
    min_dendrite_volume_um3: float = 0.44
    peak_fraction: float = 0.0
    bridge_gap_um: float = 2.5
    bridge_min_fraction: float = 0.4
    join_dendrites_through_spines: bool = True
    noise_rule: bool = True
    noise_distance_um: float = 3.0
    noise_dendrite_volume_um3: float = 0.16
    noise_volume_um3: float = 0.024

    def __post_init__(self):
        probability = (0, 1, True, False)
        positive = (0, None, True, False)
        check_fields(self, choices={"method": METHODS, "split_by": SPLIT_BY, "connectivity": (6, 18, 26)},
                     ranges={**dict.fromkeys(("seed_threshold", "growth_threshold", "threshold",
                                              "dendrite_threshold", "head_threshold",
                                              "head_close_spine_min", "head_flank_min"), probability),
                             **dict.fromkeys(("max_distance_to_seed_um", "split_min_distance_um",
                                              "noise_distance_um", "head_min_distance_um", "head_close_distance_um"),
                                           positive),
                             "peak_fraction": (0, 1, False, True), "head_flank_prominence": (0, 1, False, False),
                             "head_flank_dip": (0, 1, False, False),
                             "head_partner_threshold": (0, 1, False, False), "bridge_min_fraction": (0, 1, False, False),
                             "max_drop": (0, 1, False, False), "split_min_depth_prob": (0, 1, False, False),
                             "min_planes": (1, None, False, False)})
        if self.min_volume_um3 > self.max_volume_um3:
            raise InputError(
                f"InstanceConfig.min_volume_um3 ({self.min_volume_um3}) is larger than max_volume_um3 "
                f"({self.max_volume_um3}); no spine could be kept."
            )

    def to_dict(self) -> dict:
        return asdict(self)

    def sizes(self, ndim: int) -> dict[str, float]:
        """The size settings in the units of an ``ndim`` image: µm³ in 3D, µm² in 2D."""
        return {name: getattr(self, name) if ndim == 3 else planar_area_um2(getattr(self, name))
                for name in SIZE_SETTINGS}


@dataclass
class InstanceResult:
    """Spine objects and cleaned dendrites, in the input's voxel grid.

    Attributes
    ----------
    spine_labels : ndarray of int32
        0 = background, 1..N = one id per spine.
    dendrite_labels : ndarray of int32
        0 = background, 1..M = one id per connected dendrite after cleaning.
    config : InstanceConfig
        The settings that made this result.
    removed : dict
        How many candidate objects each rule removed: ``dendrite_fragments``,
        ``dendrite_noise``, ``volume``, ``min_planes``, ``dendrite_distance``, ``spine_noise``.
    scores : ndarray or None
        Method ``heads``: each spine's detection score (its head-map peak), indexed by spine
        id (index 0 unused); ``None`` for the other methods.
    """

    spine_labels: np.ndarray
    dendrite_labels: np.ndarray
    config: InstanceConfig
    removed: dict
    scores: np.ndarray | None = None

    @property
    def n_spines(self) -> int:
        return int(self.spine_labels.max()) if self.spine_labels.size else 0

    @property
    def n_dendrites(self) -> int:
        return int(self.dendrite_labels.max()) if self.dendrite_labels.size else 0
