"""From a stack to spines: segment, build spine objects, measure, and save everything."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from .._atomic import undo_on_failure, write_error
from ..config import check_fields, config_from_dict, config_to_dict
from ..errors import InputError
from ..instances import InstanceConfig, spine_instances
from ..instances.heads import head_map_support
from ..morphology import MorphologyConfig
from ..segment import CLASSICAL, segment_maps
from ..segment.classical import ClassicalConfig
from ..segment.neural._malloc import hand_back_freed_memory
from ..segment.neural.orientations import check_orientations
from ..stack import Stack
from ..validate import check_image_values, check_spacing
from .runinfo import RUN_FILE, array_sha256, peak_memory_mb, versions, write_run_json

if TYPE_CHECKING:
    import pandas as pd

#: Chosen by measurement: lean2d_real (lean2d with a point head, trained on real annotated
#: images and phantoms) finds spines better than lean2d on both real annotated sets (F1
#: dendritic2 0.50 -> 0.6-0.7, spine_types 0.72 -> 0.97; benchmarks/real2d.py), keeps the real
#: sample's shaft in one piece, and matches lean2d on the phantom presets (docs/real_data.md).
DEFAULT_METHOD = "lean2d_real"
STAGES = ("segment", "instances", "measure", "export", "report")


#: Inference engines (as :data:`spinequant.segment.neural.predict.ENGINES`, without importing torch).
ENGINES = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class RatioConfig:
    """How a run with a tagged channel computes the RSDR (``spinequant analyze --ratio-channel``).

    psf_fwhm_um : the microscope's Gaussian PSF FWHM in µm, ``(z, xy)`` for a 3D stack or
        ``(xy,)`` for a 2D image. When given, the spine table also gets ``rsdr_corrected``
        (linear unmixing of the ROI means with PSF-blurred footprints,
        :func:`spinequant.morphology.ratio.rsdr_corrected`). None: only the paper's raw RSDR.
    background : subtracted from (tagged, structure) before both ratios: two numbers in ADU,
        ``"auto"`` (the 5th percentile of each channel outside every spine and dendrite), or
        None: the raw RSDR uses raw values (as the paper) and the corrected one fits a
        constant background from the unlabelled voxels within 1 µm of the labels.
    """

    psf_fwhm_um: tuple[float, ...] | None = None
    background: tuple[float, float] | str | None = None

    def __post_init__(self):
        check_fields(self, choices={"background": ("auto",)}, ranges={"psf_fwhm_um": (0, None, True, False)})
        if self.psf_fwhm_um is not None and len(self.psf_fwhm_um) not in (1, 2):
            raise InputError(f"The PSF FWHM takes two values (Z XY, in µm) for a 3D stack or one (XY) for a "
                             f"2D image, not {len(self.psf_fwhm_um)} ({list(self.psf_fwhm_um)}).")

    def check_image(self, ndim: int) -> None:
        """A clear error when the PSF does not fit an image of ``ndim`` dimensions."""
        if self.psf_fwhm_um is not None and len(self.psf_fwhm_um) != ndim - 1:
            raise InputError(
                f"The PSF FWHM {list(self.psf_fwhm_um)} does not fit a {ndim}D image: give "
                f"{'two values (Z XY)' if ndim == 3 else 'one value (XY; the image is 2D)'} in µm.")


@dataclass(frozen=True)
class AnalyzeConfig:
    """Every setting of an analysis run; saved in ``run.json`` and reloadable from it.

    method : the name/path of a neural model (default: the shipped ``lean2d``) or
        ``"classical"`` (no network; nothing learnt from phantoms).
    engine : neural models only: ``"auto"`` (ONNX Runtime on a CPU when installed, else
        PyTorch), ``"torch"`` or ``"onnx"``; run.json records the engine that ran.
    classical, instances, morphology : the stage configs. ``instances=None`` takes the
        method's own defaults (:func:`default_instance_config`); the run records the
        settings actually used.
    export_meshes, export_roi, export_zarr : optional exports (meshes and ROI sets can be
        large for big stacks).
    report : write ``report.html`` and figures.
    min_confidence : networks with a point head only: keep the spines whose calibrated
        confidence (the probability that a human would mark them, column ``confidence``) is
        at least this. ``None`` takes the model's default, chosen by F1 on real validation
        images (its card); the run records the value used.
    confidence : how a point-head network's spines are scored: ``"auto"`` by the model's learnt
        confidence when its card has one (every candidate measured, then scored from its
        measurements; :mod:`spinequant.pipeline.spine_confidence`), else by the calibrated
        head-map peak; ``"head_map"`` always by the head-map peak.
    orientations : networks only: average the network's maps over 1, 4 (with the mirror
        images) or 8 (with the quarter turns too) orientations of the image; ``None`` takes 8
        for a 2D image (the maps of a turned or mirrored image are then those of the image,
        turned or mirrored, and spines are found a little better; docs/real_data.md) and 1
        for a stack (eight passes of the network over a stack cost more than they gain
        there) or for a network that shares its filters over the orientations (architecture
        symmetry "p4m", whose maps turn with the image by construction). The run records the
        value used.
    """

    method: str = DEFAULT_METHOD
    engine: str = "auto"
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    instances: InstanceConfig | None = None
    morphology: MorphologyConfig = field(default_factory=MorphologyConfig)
    export_meshes: bool = True
    export_roi: bool = True
    export_zarr: bool = True
    report: bool = True
    min_confidence: float | None = None
    ratio: RatioConfig = field(default_factory=RatioConfig)
    confidence: str = "auto"
    orientations: int | None = None

    def __post_init__(self):
        check_fields(self, choices={"engine": ENGINES, "confidence": ("auto", "head_map")},
                     ranges={"min_confidence": (0, 1, True, True)})
        if self.orientations is not None:
            check_orientations(self.orientations)

    @classmethod
    def from_dict(cls, values: dict | None) -> "AnalyzeConfig":
        return config_from_dict(cls, values)


@dataclass
class AnalysisResult:
    """Everything an analysis produced, in memory."""

    image: np.ndarray                 # (Z, Y, X), or (Y, X) for a 2D image
    spacing: tuple[float, ...]        # (z, y, x) µm, or (y, x) for a 2D image
    dendrite_prob: np.ndarray | None  # None from a run that did not keep them (``keep_maps``)
    spine_prob: np.ndarray | None
    spine_labels: np.ndarray
    dendrite_labels: np.ndarray
    spines: pd.DataFrame
    dendrites: pd.DataFrame
    centrelines: pd.DataFrame
    config: AnalyzeConfig
    timings: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    tagged: np.ndarray | None = None  # the second (tagged) channel of a ratio run, as ``image``

    @property
    def semantic(self) -> np.ndarray:
        """0 background, 1 dendrite, 2 spine."""
        from ..export.labels import semantic_labels

        return semantic_labels(self.spine_labels, self.dendrite_labels)


#: ``progress(stage, fraction)``: the stage's name and the fraction of it done, 0.0 when it
#: starts; a callable of one argument gets the stage's name only, when it starts. It may raise
#: :class:`~spinequant.errors.Cancelled` to stop the run (see :func:`analyze`).
Progress = Callable[..., None]


def stage_reporter(progress: Progress | None) -> Callable[[str, float], None]:
    """``progress`` as a callable of ``(stage, fraction)``: one of a single argument (the
    stage's name) is called when a stage starts only; ``None`` reports nothing."""
    if progress is None:
        return lambda stage, fraction=0.0: None
    try:
        inspect.signature(progress).bind("segment", 0.0)
        return progress
    except TypeError:
        pass
    except ValueError:           # no signature to inspect (some builtins): the old form
        pass

    def at_start(stage: str, fraction: float = 0.0) -> None:
        if fraction == 0.0:
            progress(stage)
    return at_start

#: Spine objects from the classical maps: their values are not calibrated probabilities, so
#: objects are connected components of the spine mask, split where the distance transform has
#: separate maxima at least 0.05 µm deep. Chosen on phantoms (detection F1) and the real sample
#: (DeepD3's flood fill found twice the spines one can see there).
CLASSICAL_INSTANCES = InstanceConfig(method="components", split_min_depth_um=0.05)


#: Spine objects from a network's maps: its spine probabilities are under-confident on thin
#: spines (trained with Dice), so DeepD3's 0.8 seeds miss most of them; components of the map
#: above 0.1, split like the classical ones, gave the best detection F1 on held-out phantoms of
#: every preset (benchmarks/accuracy.py; README). Found that low, each spine is outlined by the
#: faint skirt of its map (volumes 3-6x the truth); trimming each object to half its own peak
#: brought the median volume ratio to 1.1-2.0 and doubled spine IoU at the same F1.
NEURAL_INSTANCES = InstanceConfig(method="components", threshold=0.1, split_min_depth_um=0.05,
                                  peak_fraction=0.5)


#: Spine objects from a network with a point head: one per peak of its head map, outlined by
#: the spine map at 0.1 and trimmed like the other networks' objects. The head threshold is
#: where the calibrated confidence of the model reaches ``min_confidence`` (its card's
#: calibration; see :mod:`spinequant.segment.neural.calibration`). A detected head counts as a
#: spine up to 3 µm from the dendrite (the longest spines; Vidaurre-Gallart's noise rule uses
#: the same distance), not 1 µm: the head map, not proximity, tells spines from debris, and a
#: head whose neck is invisible lies away from the shaft. Dendritic2 validation images that are
#: near-copies of training images (61, not the benchmark's): detection F1 0.32 / 0.36 / 0.38 /
#: 0.39 at 1 / 1.5 / 2 / 3 µm (0.40 with no limit, which admits far debris).
HEADS_INSTANCES = InstanceConfig(method="heads", threshold=0.1, peak_fraction=0.5,
                                max_distance_to_dendrite_um=3.0)


def has_point_head(method: str) -> bool:
    """Whether the network ``method`` has a spine-head map (False for the classical method)."""
    if method == CLASSICAL:
        return False
    from ..segment.neural.card import read_card

    return bool(read_card(method).architecture.get("point_head"))


def default_instance_config(method: str) -> InstanceConfig:
    """Instance settings that suit the maps of segmentation ``method``."""
    if method == CLASSICAL:
        return CLASSICAL_INSTANCES
    return HEADS_INSTANCES if has_point_head(method) else NEURAL_INSTANCES


def resolve_config(config: AnalyzeConfig | None, ndim: int = 3) -> AnalyzeConfig:
    """``config`` with every method-dependent default filled in (what a run records) for an
    image of ``ndim`` dimensions (the candidates of a learnt confidence may be made
    differently in 2D: :func:`candidate_instances`)."""
    config = config or AnalyzeConfig()
    config = replace(config, orientations=_orientations(config, ndim))
    instances = config.instances or default_instance_config(config.method)
    calibration = model_calibration(config.method, config.confidence)
    if calibration is not None:
        from ..segment.neural.calibration import score_for

        min_confidence = config.min_confidence
        if min_confidence is None:
            min_confidence = calibration["min_confidence"]
        # A learnt confidence looks at every candidate above the floor it was fitted on, made
        # with the instance settings it was fitted on (unless the run gives its own).
        trees = calibration.get("method") == "trees"
        threshold = calibration["candidate_floor"] if trees else score_for(min_confidence, calibration)
        if trees and config.instances is None:
            instances = replace(instances, **candidate_instances(calibration, ndim))
        instances = replace(instances, head_threshold=round(threshold, 4))
        config = replace(config, min_confidence=min_confidence)
    elif config.min_confidence is not None and has_point_head(config.method) is False:
        raise InputError(
            f"--min-confidence needs a network that scores each spine (a point-head model such "
            f"as lean2d_real); '{config.method}' does not. Leave the option out.")
    return replace(config, instances=instances)


def _orientations(config: AnalyzeConfig, ndim: int) -> int:
    if config.method == CLASSICAL:
        if config.orientations not in (None, 1):
            raise InputError(
                f"--orientations {config.orientations} averages a network's maps over turned and "
                f"mirrored copies of the image; the classical method has no network. Leave the option out.")
        return 1
    if config.orientations is None:
        return 8 if ndim == 2 and not _turns_with_the_image(config.method) else 1
    return config.orientations


def _turns_with_the_image(method: str) -> bool:
    """Whether the network ``method`` shares its filters over the grid's orientations (p4m):
    its maps of a turned image are already its turned maps, and more passes repeat them."""
    from ..segment.neural.card import read_card
    from ..segment.neural.specs import architecture

    return architecture(read_card(method).architecture).get("symmetry") == "p4m"


def candidate_instances(calibration: dict, ndim: int) -> dict:
    """The instance settings a learnt confidence's candidates were made with (its card's
    ``candidate_instances``, and for a 2D image ``candidate_instances_2d`` over them). In a
    projection a spine too small for the 3D minimum size, or whose neck is too faint to join
    it to its dendrite, is still seen whole and the trees judge it; in a stack such a piece
    is mostly a spine's head smeared along z (docs/real_data.md, "Candidates without the
    minimum size and the distance limit")."""
    settings = dict(calibration.get("candidate_instances", {}))
    if ndim == 2:
        settings.update(calibration.get("candidate_instances_2d", {}))
    return settings


def model_calibration(method: str, confidence: str = "auto") -> dict | None:
    """The detection-confidence calibration of a point-head network (None otherwise): its learnt
    confidence model (``method`` "trees") or, with ``confidence="head_map"`` or when it has
    none, the calibration of its head-map peak."""
    if not has_point_head(method):
        return None
    from ..segment.neural.card import read_card

    calibration = read_card(method).calibration or None
    if calibration and calibration.get("method") == "trees" and confidence == "head_map":
        return calibration["head_map"]
    return calibration


def analyze(image, *, spacing=None, config: AnalyzeConfig | None = None,
            progress: Progress | None = None, tagged=None, keep_maps: bool = True) -> AnalysisResult:
    """Segment dendrites and spines in a 3D stack or a 2D image and measure every spine.

    Parameters
    ----------
    image : (Z, Y, X) or (Y, X) array, or :class:`~spinequant.stack.Stack`
        A Stack carries its own spacing (select one channel/time point first). A 2D image (a
        single plane or a maximum projection) is analysed in the plane: its maps, labels and
        measurements are 2D (areas for volumes, see docs/measurements.md).
    spacing : (z, y, x) voxel size in µm, or (y, x) for a 2D image; required for plain arrays
    config : AnalyzeConfig, optional
    progress : callable, optional
        ``progress(stage, fraction)``: called when each stage (``"segment"``, ``"instances"``,
        ``"measure"``) starts, with 0.0, and within it with the fraction done (per batch of
        network tiles, per step of the classical method and of the spine-object stage, per
        ten spines measured). A callable of one argument gets the stage's name when it
        starts. It may raise :class:`~spinequant.errors.Cancelled` to stop the run: the
        exception reaches the caller within a fraction of a second (one batch of tiles);
        ``analyze`` writes nothing, so nothing is left behind.
    tagged : array or Stack, optional
        A second channel of the same field of view (e.g. a tagged protein), the same shape as
        ``image``; ``image`` is the structural channel that is segmented. The spine table then
        gets ``tagged_mean_intensity`` (mean raw intensity of the tagged channel in each spine)
        and ``rsdr``, the ratiometric spine-to-dendrite ratio of the DeepD3 paper
        (:func:`spinequant.morphology.ratio.rsdr`, raw values unless ``config.ratio.background``);
        with ``config.ratio.psf_fwhm_um`` also ``rsdr_corrected``, the blur undone by linear
        unmixing (:func:`spinequant.morphology.ratio.rsdr_corrected`). ``diagnostics["ratio"]``
        holds the dendrite means, the background and the PSF used.
    keep_maps : bool
        Return the network's dendrite and spine maps (``dendrite_prob``, ``spine_prob``).
        False frees them as soon as the spine objects are made, and the result holds None:
        no export or report reads them, and they are two float16 copies of the stack's size
        (``spinequant analyze`` runs this way).

    Returns
    -------
    AnalysisResult
        Maps, labels, the spine table (one row per spine, µm) and the dendrite table.

    Examples
    --------
    >>> from spinequant import analyze
    >>> from spinequant.data import sample_stack
    >>> result = analyze(sample_stack())                     # doctest: +SKIP
    >>> result.spines[["volume_um3", "length_um", "type"]]   # doctest: +SKIP
    """
    requested, config = config, resolve_config(config)      # the settings' own errors before the image's
    if isinstance(image, Stack):
        image, stack_spacing = stack_image(image)
        spacing = stack_spacing if spacing is None else spacing
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise InputError(
            f"analyze needs one 3D (Z, Y, X) volume or one 2D (Y, X) image; got an array with "
            f"{image.ndim} dimensions {image.shape}. Choose a channel and time point first "
            f"(read_stack(..., channel=, time=))."
        )
    config = resolve_config(requested, ndim=image.ndim)
    spacing = check_spacing(spacing, ndim=image.ndim)
    check_image_values(image, where="the image")
    if tagged is not None:
        tagged = _tagged_array(tagged, image)
        config.ratio.check_image(image.ndim)
    _check_resolves_spines(spacing)
    step = stage_reporter(progress)
    timings: dict[str, float] = {}

    step("segment", 0.0)
    t = time.perf_counter()
    # The head map is kept only where the spine objects read it (a few percent of the stack).
    maps = segment_maps(image, spacing=spacing, method=config.method, classical_config=config.classical,
                        engine=config.engine, progress=_within(step, "segment"),
                        head_support=head_map_support(config.instances), orientations=config.orientations)
    dend_prob, spine_prob, seg_diag = maps.dendrite, maps.spine, maps.diagnostics
    timings["segment"] = time.perf_counter() - t

    step("instances", 0.0)
    t = time.perf_counter()
    inst = spine_instances(spine_prob, dend_prob, spacing=spacing, config=config.instances,
                           head_prob=maps.heads, image=image, partner_head_prob=maps.partner_heads,
                           progress=_within(step, "instances"))
    del maps   # the head maps are not part of the result
    if not keep_maps:
        dend_prob = spine_prob = None
    timings["instances"] = time.perf_counter() - t

    hand_back_freed_memory()
    step("measure", 0.0)
    t = time.perf_counter()
    from .plausibility import size_warnings

    spines, spine_labels, dendrites, centrelines, n_unconfident = measure_objects(
        image, inst.spine_labels, inst.dendrite_labels, inst.scores, spacing, config,
        progress=lambda fraction: step("measure", max(float(fraction), 1e-6)))
    timings["measure"] = time.perf_counter() - t
    warnings = size_warnings(dendrites, spacing)
    diagnostics = {"segment": seg_diag, "warnings": warnings}
    if n_unconfident is not None:
        diagnostics["below_min_confidence"] = n_unconfident
    if tagged is not None:
        spines, diagnostics["ratio"] = spine_ratios(spines, tagged, image, inst.spine_labels,
                                                    inst.dendrite_labels, spacing=spacing,
                                                    config=config.ratio)
        if diagnostics["ratio"].get("warning"):
            warnings.append(diagnostics["ratio"]["warning"])
    return AnalysisResult(
        image=image, spacing=spacing, dendrite_prob=dend_prob, spine_prob=spine_prob,
        spine_labels=spine_labels, dendrite_labels=inst.dendrite_labels, spines=spines,
        dendrites=dendrites, centrelines=centrelines, config=config, timings=timings,
        diagnostics=diagnostics, tagged=tagged,
    )


def measure_objects(image, spine_labels, dendrite_labels, scores, spacing, config: AnalyzeConfig, progress=None):
    """The measure stage of :func:`analyze` on whole arrays: the dendrites' skeleton, the spine
    table (with a learnt confidence: every candidate measured, scored, the kept ones measured
    again; ``spine_labels`` relabelled in place), the dendrite table and the centrelines.
    ``progress(fraction)``. Returns ``(spines, spine_labels, dendrites, centrelines,
    below_min_confidence)`` (the last None without a learnt confidence)."""
    # Imported here: the measuring modules import pandas, which need not be resident while
    # the network's maps and the spine objects are built.
    from ..morphology import dendrite_centrelines, dendrite_skeleton, measure_dendrites, measure_spines

    report = progress or (lambda fraction: None)
    skeleton = dendrite_skeleton(dendrite_labels, spacing, config=config.morphology)
    report(0.1)
    # Candidates a learnt confidence will judge are typed by a cheap rule set: their types are
    # no feature, and the kept spines are measured (and typed) again.
    candidates = learnt_confidence(config) and scores is not None
    spines = measure_spines(spine_labels, dendrite_labels, spacing, image=image,
                            config=replace(config.morphology, rule_set="risher") if candidates else config.morphology,
                            skeleton=skeleton, progress=lambda f: report(0.1 + 0.8 * float(f)))
    spines, spine_labels, n_unconfident = confident_spines(spines, spine_labels, scores, image, dendrite_labels,
                                                           spacing, config, skeleton=skeleton)
    dendrites = measure_dendrites(dendrite_labels, spacing, spines=spines, config=config.morphology,
                                  skeleton=skeleton)
    report(0.95)
    centrelines = dendrite_centrelines(dendrite_labels, spacing, config=config.morphology, skeleton=skeleton)
    return spines, spine_labels, dendrites, centrelines, n_unconfident


def _within(step, stage: str, start: float = 0.0, share: float = 1.0):
    """A stage's ``progress(fraction)`` for the part of it from ``start`` that takes ``share``;
    never reports 0.0 (which marks the stage's start)."""
    return lambda fraction: step(stage, max(start + share * float(fraction), 1e-6))


#: Columns a run with a tagged channel adds to the spine table (after the others).
RATIO_COLUMNS = ("tagged_mean_intensity", "rsdr")


def _tagged_array(tagged, image: np.ndarray) -> np.ndarray:
    """The tagged channel as an array of ``image``'s shape, or a clear InputError."""
    if isinstance(tagged, Stack):
        tagged, _ = stack_image(tagged)
    tagged = np.asarray(tagged)
    if tagged.shape != image.shape:
        what = {2: "2D", 3: "3D"}
        raise InputError(
            f"The tagged channel has shape {tagged.shape} ({what.get(tagged.ndim, f'{tagged.ndim}D')}) but "
            f"the structural image {image.shape} ({what[image.ndim]}); the two channels of a ratio must "
            f"cover the same voxels. Read both from the same file and time point (with --project both "
            f"are projected).")
    check_image_values(tagged, where="the tagged channel")
    return tagged


def spine_ratios(spines: pd.DataFrame, tagged, structure, spine_labels, dendrite_labels, *,
                 spacing=None, config: RatioConfig | None = None):
    """``spines`` with :data:`RATIO_COLUMNS` added (and ``rsdr_corrected`` when the config
    gives a PSF), and what the run records about the ratio.

    ``rsdr`` is the DeepD3 paper's: RSDR = (tagged_spine / structure_spine) /
    (tagged_dendrite / structure_dendrite) from mean intensities, the dendrite terms over all
    dendrite voxels that are not spine, raw unless ``config.background`` is given.
    ``rsdr_corrected`` undoes the PSF's blur by linear unmixing (needs ``spacing``). A run
    without dendrite voxels (or a dendrite mean of 0) gets NaN columns and a warning, not an
    error: the morphology is still valid.
    """
    from ..morphology.ratio import auto_background, rsdr, rsdr_corrected

    config = config or RatioConfig()
    spines = spines.copy()
    ids = spines["id"].to_numpy(int)
    background = config.background
    if background == "auto":
        background = auto_background(tagged, structure, spine_labels, dendrite_labels)
    subtracted = "no background subtracted" if background is None else f"background {list(background)} ADU subtracted"
    info = {"definition": "(tagged_spine / structure_spine) / (tagged_dendrite / structure_dendrite), "
                          f"mean raw intensities ({subtracted})",
            "background_adu": None if background is None else [float(b) for b in background]}
    try:
        table = rsdr(tagged, structure, spine_labels, dendrite_labels,
                     background=(0.0, 0.0) if background is None else background).set_index("id")
    except InputError as exc:
        table = None
        info["warning"] = f"No RSDR: {exc}"
    if table is None:
        spines["tagged_mean_intensity"] = _roi_mean(tagged, spine_labels, ids)
        spines["rsdr"] = np.nan
    else:
        spines["tagged_mean_intensity"] = table["tagged_mean"].reindex(ids).to_numpy()
        spines["rsdr"] = table["rsdr"].reindex(ids).to_numpy()
        info.update(tagged_dendrite_mean=float(table.attrs["tagged_dendrite"]),
                    structure_dendrite_mean=float(table.attrs["structure_dendrite"]))
    if config.psf_fwhm_um is not None:
        spines["rsdr_corrected"] = np.nan
        corrected = {"definition": "(t_spine / s_spine) / (t_dendrite / s_dendrite), concentrations from "
                                   "linear unmixing with Gaussian-PSF-blurred label footprints (least "
                                   "squares over the voxels of the labels and a 1 µm shell, non-negative)",
                     "psf_fwhm_um": list(config.psf_fwhm_um)}
        try:
            fixed = rsdr_corrected(tagged, structure, spine_labels, dendrite_labels, spacing=spacing,
                                   psf_fwhm_um=config.psf_fwhm_um, background=background).set_index("id")
            spines["rsdr_corrected"] = fixed["rsdr_corrected"].reindex(ids).to_numpy()
            corrected.update(background_adu=fixed.attrs["background"],
                             background_fitted=background is None,
                             tagged_dendrite_concentration=fixed.attrs["tagged_dendrite"],
                             structure_dendrite_concentration=fixed.attrs["structure_dendrite"])
        except InputError as exc:
            info["warning"] = " ".join(filter(None, [info.get("warning"), f"No corrected RSDR: {exc}"]))
        info["corrected"] = corrected
    return spines, info


def _roi_mean(image, labels, ids) -> np.ndarray:
    if not len(ids):
        return np.zeros(0)
    from scipy import ndimage

    return np.asarray(ndimage.mean(np.asarray(image, float), labels=labels, index=ids), float)


def learnt_confidence(config: AnalyzeConfig) -> bool:
    """Whether a run of ``config`` keeps its spines by the model's learnt confidence."""
    calibration = model_calibration(config.method, config.confidence)
    return bool(calibration) and calibration.get("method") == "trees"


def confident_spines(spines, spine_labels, scores, image, dendrite_labels, spacing, config: AnalyzeConfig,
                     skeleton=None):
    """``spines`` with their ``confidence`` column (second), the spine labels to go with them and
    how many spines fell below ``config.min_confidence`` (None when no learnt confidence model
    chose: the head-map threshold did). A model whose calibration is a learnt confidence
    (:mod:`spinequant.pipeline.spine_confidence`) scores every candidate from its measurements
    and keeps those at or above the minimum; the kept spines are then measured again without
    the dropped ones (a neighbour changes where a spine's tip and neck are found) and with the
    run's own type rules (``spines`` may have been typed by a cheaper rule set), so the table
    is what :func:`~spinequant.morphology.measure_spines` gives for the labels. Otherwise the
    confidence is the calibrated head-map peak (NaN for methods without a point head)."""
    calibration = model_calibration(config.method, config.confidence) if scores is not None else None
    if calibration and calibration.get("method") == "trees":
        from ..segment.neural.card import resolve
        from .spine_confidence import confidence_model, keep_confident, spine_confidence

        model = confidence_model(calibration, resolve(config.method)[0].parent)
        ids = spines["id"].to_numpy(np.int64)
        prob = spine_confidence(model, spines, scores[ids], image, dendrite_labels, spacing)
        kept, spine_labels, dropped = keep_confident(spines.drop(columns="confidence", errors="ignore"),
                                                     spine_labels, prob, config.min_confidence)
        from ..morphology import measure_spines

        spines = measure_spines(spine_labels, dendrite_labels, spacing, image=image, config=config.morphology,
                                skeleton=skeleton)
        spines.insert(1, "confidence", kept.set_index("id")["confidence"].reindex(spines["id"]).to_numpy())
        return spines, spine_labels, dropped
    spines = spines.copy()
    spines.insert(1, "confidence", _spine_confidence(spines["id"], scores, calibration))
    return spines, spine_labels, None


def _spine_confidence(ids, scores, calibration) -> np.ndarray:
    """Calibrated head-map confidence per spine id; NaN for methods that do not score spines."""
    if scores is None:
        return np.full(len(ids), np.nan)
    from ..segment.neural.calibration import confidence

    return confidence(scores[np.asarray(ids, int)], calibration)


#: What the io readers note on a single plane whose z step they filled in (no file records
#: one); such a stack is analysed as the 2D image it is.
SINGLE_PLANE_NOTE = "single plane: z step not applicable"


def stack_image(stack: Stack) -> tuple[np.ndarray, tuple[float, ...]]:
    """The array and spacing :func:`analyze` works on: (Z, Y, X) with (z, y, x), or (Y, X)
    with (y, x) for a 2D stack (no Z axis, or one plane whose z step no file recorded)."""
    planar = getattr(stack, "is_2d", None)
    if planar is None:
        planar = ("Z" not in stack.axes or stack.data.ndim == 2
                  or (stack.size_of("Z") == 1 and SINGLE_PLANE_NOTE in stack.metadata.get("notes", ())))
    if stack.axes not in ("ZYX", "YX"):
        stack = stack.select()
    data = np.asarray(stack.data)
    if planar:
        return data.reshape(data.shape[-2:]), tuple(stack.spacing[-2:])
    return data, tuple(stack.spacing)


#: Coarsest voxel (µm, z and y/x) at which spines (0.5-2 µm long) can still be seen at all.
MAX_SPINE_VOXEL_UM = (5.0, 1.0)


def _check_resolves_spines(spacing) -> None:
    if len(spacing) == 2:
        y, x = spacing
        if max(y, x) > MAX_SPINE_VOXEL_UM[1]:
            raise InputError(
                f"The pixel size {y:g} x {x:g} µm (y, x) is too coarse to see dendritic spines, "
                f"which are 0.5-2 µm long: spine analysis needs pixels of at most "
                f"{MAX_SPINE_VOXEL_UM[1]:g} µm. If the numbers are in nanometres, divide them by "
                f"1000 (e.g. spacing=(0.094, 0.094)).")
        return
    z, y, x = spacing
    if z > MAX_SPINE_VOXEL_UM[0] or max(y, x) > MAX_SPINE_VOXEL_UM[1]:
        raise InputError(
            f"The voxel size {z:g} x {y:g} x {x:g} µm (z, y, x) is too coarse to see dendritic spines, "
            f"which are 0.5-2 µm long: spine analysis needs y/x voxels of at most "
            f"{MAX_SPINE_VOXEL_UM[1]:g} µm and z steps of at most {MAX_SPINE_VOXEL_UM[0]:g} µm. If the "
            f"numbers are in nanometres, divide them by 1000 (e.g. --voxel-size 0.5 0.094 0.094)."
        )


#: What run.json says about a run on a 2D image.
PLANAR_RUN_NOTE = ("2D image (a single plane or a projection): spacing_um is (y, x); spines.csv has "
                   "area_um2, head_area_um2 and perimeter_um in place of volume_um3, head_volume_um3 "
                   "and surface_um2, and no z columns; no meshes are written (a 2D object has no "
                   "surface); dendrites.swc lies in the plane z = 0.")


def save_result(result: AnalysisResult, out_dir, *, source: dict | None = None,
                progress: Progress | None = None) -> Path:
    """Write all exports, the report and ``run.json`` (last, so it marks a complete run).

    When writing fails (a full disk: :class:`OutputError`) or is interrupted, the files this
    call had written are removed again, so the folder never holds a half result.
    """
    out_dir = Path(out_dir)
    with undo_on_failure():
        _save_result(result, out_dir, source, stage_reporter(progress))
    return out_dir


def _save_result(result: AnalysisResult, out_dir: Path, source: dict | None, step) -> None:
    from ..export import export_results

    # A run.json marks a complete result: remove an earlier one until this run has finished.
    try:
        (out_dir / RUN_FILE).unlink(missing_ok=True)
    except OSError as exc:
        raise write_error(exc, out_dir / RUN_FILE) from exc
    hand_back_freed_memory()
    step("export", 0.0)
    t = time.perf_counter()
    cfg = result.config
    planar = result.image.ndim == 2
    formats = ["tables", "labels", "swc"] + [name for name, wanted in (
        ("zarr", cfg.export_zarr), ("roi", cfg.export_roi),
        ("meshes", cfg.export_meshes and not planar)) if wanted]
    export_results(
        out_dir, spacing=result.spacing, spines=result.spines, dendrites=result.dendrites,
        spine_labels=result.spine_labels, dendrite_labels=result.dendrite_labels,
        semantic=result.semantic, centrelines=result.centrelines, image=result.image,
        formats=formats,
    )
    result.timings["export"] = time.perf_counter() - t
    if result.config.report:
        from ..report import write_report

        hand_back_freed_memory()
        step("report", 0.0)
        t = time.perf_counter()
        write_report(out_dir, result, source=source)
        result.timings["report"] = time.perf_counter() - t
    record = {
        "spinequant": __version__,
        "complete": True,
        "input": {**(source or {}), "shape": list(result.image.shape), "dtype": str(result.image.dtype),
                  "spacing_um": list(result.spacing), "data_sha256": array_sha256(result.image),
                  **({"tagged_sha256": array_sha256(result.tagged)} if result.tagged is not None else {})},
        "config": config_to_dict(result.config),
        "diagnostics": result.diagnostics,
        "counts": {"spines": int(len(result.spines)), "dendrites": int(len(result.dendrites))},
        **({"image_2d": PLANAR_RUN_NOTE} if planar else {}),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "peak_memory_mb": round(peak_memory_mb(), 1),
        "versions": versions(),
    }
    write_run_json(out_dir, record)
