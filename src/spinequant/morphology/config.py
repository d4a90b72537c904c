"""Settings of the measurement stage, with the published thresholds of both spine type rule sets."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from ..config import check_fields
from ..errors import InputError

#: Spine type rule sets that :func:`~spinequant.morphology.classify_spines` knows.
RULE_SETS = ("auto", "neuronstudio", "risher", "learnt", "network")

#: The spine types of the column ``type`` of spines.csv.
SPINE_TYPES = ("stubby", "thin", "mushroom", "branched", "filopodia")


@dataclass(frozen=True)
class MorphologyConfig:
    """Options of :func:`measure_spines`, :func:`measure_dendrites` and :func:`dendrite_centrelines`.

    All lengths are in µm. The spine type thresholds default to the published values; see
    ``docs/measurements.md`` for the decision trees and their sources.

    Attributes
    ----------
    rule_set : {"auto", "neuronstudio", "risher", "learnt", "network"}
        Spine type rules: NeuronStudio (Rodriguez et al. 2008, PLoS ONE 3:e1997), the
        decision tree of Risher et al. 2014 (PLoS ONE 9:e107591), ``learnt``: a
        classifier of the outline's measurements fitted to expert-typed 2D outlines (2D
        tables only; a 3D table falls back on NeuronStudio's rules, see
        :mod:`spinequant.morphology.learnt`), or ``network``: a small network that looks at
        the image around each spine, fitted to the same experts' types (2D images only,
        :mod:`spinequant.morphology.type_network`). ``auto`` (default): ``network`` for a 2D
        image measured with its image, where it agrees best with experts' types
        (``docs/measurements.md``, "Spine types on real outlines"), ``learnt`` for a 2D table
        without an image, ``neuronstudio`` for a 3D stack (no typed 3D data to measure a
        change against).
    neck_ratio : float
        NeuronStudio "neck ratio": a spine whose head/neck diameter ratio exceeds this has a
        head on a neck (1.1).
    thin_ratio : float
        NeuronStudio "thin ratio": a spine without such a neck is thin when its length/head
        diameter ratio exceeds this, otherwise stubby (2.5).
    mushroom_min_head_um : float
        NeuronStudio "mushroom size": a necked spine with a head at least this wide is a
        mushroom, otherwise thin (0.35 µm).
    filopodia_min_length_um : float or None
        A protrusion without a head (head/neck ratio at most ``neck_ratio``) longer than this
        is a filopodium (Risher et al. 2014: 2 µm). NeuronStudio has no filopodia class; this
        rule runs first in both rule sets. ``None`` turns it off. In a 3D stack the length it
        reads is the in-plane one when the spine points more along z than across (see
        ``docs/measurements.md``: the z smear lengthens such a spine).
    filopodia_max_head_um : float or None
        A protrusion without a measured neck whose head is at least this wide is not a
        filopodium (0.5 µm; see ``docs/measurements.md``). With a measured neck the head/neck
        ratio decides (one estimator for both widths). ``None`` turns the check off.
    branch_min_head_fraction : float
        A spine has a second head (``n_heads`` >= 2, type ``branched``) when a second wide end
        lobe of its inscribed-distance map is at least this fraction of the widest one's
        width (0.6); see ``docs/measurements.md``.
    risher_stubby_max_length_to_width : float
        Risher et al.: length/head width at most this means stubby (1.0).
    risher_mushroom_min_head_um : float
        Risher et al.: a head wider than this means mushroom (0.6 µm).
    risher_long_thin_min_length_um : float
        Risher et al. split thin spines into "long thin" (at least this long, 1 µm) and
        "thin"; both are reported as ``thin`` with the subclass named in ``type_rule``.
    min_neck_length_um : float
        A spine has a neck only if the stretch from its base to the edge of its largest
        inscribed sphere is at least this long (0.2 µm, about two xy pixels at 0.094 µm).
    hidden_neck_ratio : float
        A spine whose neck is shorter than ``min_neck_length_um`` (e.g. one pointing along z,
        its neck between two planes) still has a neck when its head is this many times wider
        than the waist where it meets the dendrite (1.5; a slight waist is a stubby spine's).
    prune_length_um : float
        Skeleton side branches shorter than this (or than the dendrite diameter where they
        join, whichever is larger) are surface bumps or spines left attached to the shaft,
        not branches, and are removed (3.0 µm: longer than nearly all spines).
    smoothing_iterations : int
        Passes of neighbour averaging over skeleton and spine path coordinates before lengths
        are summed; removes the staircase of the voxel grid, which is coarse along z (10).
    """

    rule_set: str = "auto"
    neck_ratio: float = 1.1
    thin_ratio: float = 2.5
    mushroom_min_head_um: float = 0.35
    filopodia_min_length_um: float | None = 2.0
    filopodia_max_head_um: float | None = 0.5
    branch_min_head_fraction: float = 0.6
    risher_stubby_max_length_to_width: float = 1.0
    risher_mushroom_min_head_um: float = 0.6
    risher_long_thin_min_length_um: float = 1.0
    min_neck_length_um: float = 0.2
    hidden_neck_ratio: float = 1.5
    prune_length_um: float = 3.0
    smoothing_iterations: int = 10

    def __post_init__(self):
        if self.rule_set not in RULE_SETS:
            raise InputError(
                f"Unknown spine type rule set {self.rule_set!r}. Choose one of {list(RULE_SETS)}: "
                f"'auto' (network in 2D, neuronstudio in 3D), 'neuronstudio' (Rodriguez et al. "
                f"2008), 'risher' (Risher et al. 2014), 'learnt' (2D images only: a "
                f"classifier of outline measurements fitted to expert-typed spines) or 'network' "
                f"(2D images only: a network on the image around each spine, fitted to the same)."
            )
        check_fields(self, ranges={"smoothing_iterations": (0, None, False, False)})

    def to_dict(self) -> dict:
        """The settings as a plain dict (to save beside results)."""
        return asdict(self)


def resolve_config(config: MorphologyConfig | dict | None) -> MorphologyConfig:
    """Accept a config, a dict of overrides, or None (defaults)."""
    if config is None:
        return MorphologyConfig()
    if isinstance(config, MorphologyConfig):
        return config
    if isinstance(config, dict):
        known = {f.name for f in fields(MorphologyConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(
                f"Unknown morphology settings {unknown}; known settings are {sorted(known)}."
            )
        return MorphologyConfig(**config)
    raise InputError(f"config must be a MorphologyConfig or a dict, not {type(config).__name__}.")
