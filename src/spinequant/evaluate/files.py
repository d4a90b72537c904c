"""Evaluate a prediction file against one or several annotation files (what the CLI runs).

The kinds of inputs decide the comparison (see :func:`evaluate_files`); the result is a
set of named tables that :func:`write_report` saves as CSV, with PNG plots.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path, ensure_writable_dir
from ..errors import InputError
from .config import EvaluationConfig, RaterClusterConfig
from .consensus import cluster_annotations
from .detection import match_spine_objects
from .instances import match_instances, matching_curve, overlaps, split_merge_counts
from .points import label_centroids, match_points
from .raters import compare_method, inter_rater_reliability
from .readers import (detect_kind, parse_classes, read_labels, read_points, read_yolo,
                      read_yolo_boxes, read_yolo_polygons)
from .semantic import SEMANTIC_CLASSES, dendrite_band, semantic_scores_vs_raters


@dataclass
class EvaluationReport:
    """Tables (name -> DataFrame), plot data and notes of one evaluation."""

    tables: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    matrix: pd.DataFrame | None = None
    notes: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)


def evaluate_files(pred, truths, *, voxel_size=None, config: EvaluationConfig | None = None,
                   rater_config: RaterClusterConfig | None = None, units: str | None = None,
                   point: str = "auto", dendrite=None, semantic: bool = False, image=None,
                   classes=None) -> EvaluationReport:
    """Compare ``pred`` with each of ``truths`` according to what the files hold.

    * label images on both sides: instance matching against each truth (F1-vs-IoU curve,
      split/merge counts) and foreground voxel scores; ``*semantic*`` label images:
      per-class scores against each truth and, with several, their intersection and union;
    * points on either side (a label image then gives its objects' centroids): one-to-one
      point matching against each truth; with two or more point truths the truths are also
      treated as raters (DeepD3 clustering, reliability matrix, agreement by number of
      raters), as is one CSV with a ``rater`` column.

    * YOLO label files (``.txt``) as truths, for a 2D result: polygons against a label
      image are matched object by object (IoU); otherwise boxes become points at their centre
      (polygons at their centroid) and are matched within a distance in µm. The image shape
      for YOLO's fractions comes from ``image`` (the analysed image), the predicted label
      image, or the ``labels_spines.tif`` beside a predicted ``spines.csv``. With
      ``classes`` (e.g. ``"M,S,B,T,F"``: YOLO class 0 is mushroom ...) and spine types in the
      result's ``spines.csv``, the types are compared too (tables ``type_scores`` and
      ``type_confusion``).

    ``dendrite`` (a mask TIFF or SWC) sets the dendrite for ``config.band_um``; without it
    the truths' dendrite class is used. ``semantic`` reads every label image as semantic
    labels whatever its name. ``voxel_size`` is (z, y, x) µm, or (y, x) for 2D files.
    """
    config = config or EvaluationConfig()
    truths = list(truths)
    if not truths:
        raise InputError("Give at least one annotation file (TRUTH) to compare the prediction with.")
    report = EvaluationReport(settings={"evaluation": asdict(config),
                                        "rater_clustering": asdict(rater_config or RaterClusterConfig())})
    kinds = [detect_kind(p, semantic=semantic) for p in [pred, *truths]]
    names = _names(truths)
    if "yolo" in kinds:
        if kinds[0] == "yolo" or any(k != "yolo" for k in kinds[1:]):
            raise InputError("YOLO label files (.txt) are read as annotations: give the result "
                             "(labels_spines.tif or spines.csv) first and only YOLO files as truths.")
        _yolo(report, pred, kinds[0], truths, names, voxel_size, config, units, point, image,
              parse_classes(classes))
    elif all(k == "semantic" for k in kinds):
        _semantic(report, pred, truths, names, voxel_size, config, dendrite)
    elif all(k == "instances" for k in kinds):
        _instances(report, pred, truths, names, voxel_size, config)
    elif "semantic" in kinds:
        raise InputError("A semantic label image can only be compared with semantic label images "
                         "(files named *semantic*). Give instance labels or points on both sides.")
    else:
        _points(report, pred, truths, names, kinds, voxel_size, config, rater_config, units, point)
    return report


def _names(paths) -> list[str]:
    for names in ([Path(p).stem for p in paths], [Path(p).name for p in paths]):
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def _spacing(spacings, voxel_size):
    if voxel_size is not None:
        return tuple(float(v) for v in voxel_size)
    known = [s for s in spacings if s is not None and not np.any(np.isnan(s))]
    return known[0] if known else None


def _semantic(report, pred, truths, names, voxel_size, config, dendrite):
    p, sp = read_labels(pred, voxel_size=voxel_size)
    ts = [read_labels(t, voxel_size=voxel_size)[0] for t in truths]
    mask = None
    if config.band_um is not None:
        spacing = _spacing([sp], voxel_size)
        if spacing is None:
            raise InputError("The band around the dendrite needs the voxel size; give --voxel-size Z Y X "
                             "(Y X for 2D images).")
        dend = _dendrite_mask(dendrite, p.shape, spacing) if dendrite else np.any([t == 1 for t in ts], axis=0)
        mask = dendrite_band(dend, spacing=spacing, max_distance_um=config.band_um)
        report.notes.append(f"semantic scores count only the {int(mask.sum())} voxels within "
                            f"{config.band_um:g} µm of the annotated dendrite")
    report.tables["semantic_scores"] = semantic_scores_vs_raters(p, ts, names=names,
                                                                 classes=SEMANTIC_CLASSES, mask=mask)


def _dendrite_mask(path, shape, spacing):
    if detect_kind(path) == "swc":
        from ..io.swc import read_swc
        from .swc_mask import swc_to_mask

        return swc_to_mask(read_swc(path), shape=shape, spacing=spacing)
    mask, _ = read_labels(path, voxel_size=spacing)
    if mask.shape != tuple(shape):
        raise InputError(f"The dendrite mask '{path}' has shape {mask.shape}, the labels {tuple(shape)}.")
    return mask > 0


def _instances(report, pred, truths, names, voxel_size, config):
    p, spacing = read_labels(pred, voxel_size=voxel_size)
    p = _as_instances(p, Path(pred).name, report)
    ts = [_as_instances(read_labels(t, voxel_size=voxel_size)[0], n, report) for t, n in zip(truths, names)]
    _score_instances(report, p, ts, names, config)
    _spine_detection(report, p, ts, names, spacing, config)


def _spine_detection(report, p, ts, names, spacing, config) -> None:
    """Spine detection scores (centres within a distance or IoU above a floor), the rule of
    every spine F1 in the README: voxel IoU alone punishes masks that differ only in extent."""
    if not np.all(np.isfinite(spacing)):
        report.notes.append("spine detection (centres within "
                            f"{config.spine_max_distance_um} µm or IoU >= {config.spine_min_iou}) "
                            "needs the voxel size: give --voxel-size")
        return
    rows = []
    for t, name in zip(ts, names):
        result = match_spine_objects(p, t, spacing=spacing, max_distance_um=config.spine_max_distance_um,
                                     min_iou=config.spine_min_iou, method=config.matching)
        result.pop("pairs")
        rows.append({"truth": name, "max_distance_um": config.spine_max_distance_um,
                     "min_iou": config.spine_min_iou, **result})
    report.tables["spine_detection"] = pd.DataFrame(rows)


def _score_instances(report, p, ts, names, config) -> list[pd.DataFrame]:
    """Instance tables of ``p`` against each of ``ts``; returns the matched pairs per truth."""
    summary, curves, all_pairs = [], [], []
    for t, name in zip(ts, names):
        ov = overlaps(p, t)
        result = match_instances(p, t, iou_threshold=config.iou_threshold, method=config.matching, overlap=ov)
        all_pairs.append(result.pop("pairs"))
        split = split_merge_counts(p, t, min_overlap=config.split_merge_overlap, overlap=ov)
        summary.append({"truth": name, "iou_threshold": config.iou_threshold, **result,
                        "n_split": split["n_split"], "n_merge": split["n_merge"]})
        curve = matching_curve(p, t, thresholds=config.iou_thresholds, method=config.matching)
        report.curves[name] = curve
        curves.append(curve.assign(truth=name))
    report.tables["instance_scores"] = pd.DataFrame(summary)
    report.tables["instance_curve"] = pd.concat(curves, ignore_index=True)
    # Voxel scores of the foreground, against each truth and their intersection and union.
    report.tables["foreground_scores"] = semantic_scores_vs_raters(p > 0, [t > 0 for t in ts], names=names)
    return all_pairs


def _as_instances(labels, name, report):
    """Binary masks (0/1) become objects by 26-connected (in 2D 8-connected) components."""
    if labels.size and labels.max() <= 1:
        import cc3d

        labels = cc3d.connected_components(labels > 0, connectivity=26 if labels.ndim == 3 else 8)
        report.notes.append(f"{name} is a binary mask: its objects are its connected components "
                            f"({int(labels.max())})")
    return labels


def _load_points(path, kind, spacing, units, point):
    if kind in ("instances", "semantic"):
        labels, sp = read_labels(path, voxel_size=spacing)
        sp = _spacing([sp], spacing)
        if sp is None:
            raise InputError(f"Turning the labels of '{path}' into spine positions needs the voxel "
                             f"size; give --voxel-size Z Y X (Y X for a 2D image).")
        return label_centroids(labels, spacing=sp)
    return read_points(path, spacing=spacing, units=units, point=point)


def _points(report, pred, truths, names, kinds, voxel_size, config, rater_config, units, point):
    spacing = voxel_size
    if spacing is None:  # pixel coordinates may rely on a label image's voxel size
        for path, kind in zip([pred, *truths], kinds):
            if kind in ("instances", "semantic"):
                spacing = _spacing([read_labels(path)[1]], None)
                if spacing is not None:
                    break
    method = _load_points(pred, kinds[0], spacing, units, point)
    sets = {n: _load_points(t, k, spacing, units, point) for t, n, k in zip(truths, names, kinds[1:])}
    if len(sets) == 1 and "rater" in next(iter(sets.values())).columns:
        table = next(iter(sets.values()))
        sets = {str(r): g for r, g in table.groupby("rater", sort=False)}
    rows = []
    for name, pts in sets.items():
        r = match_points(method, pts, max_distance_um=config.max_distance_um, method=config.matching)
        r.pop("pairs")
        rows.append({"truth": name, **r})
    report.tables["point_scores"] = pd.DataFrame(rows)
    if len(sets) >= 2:
        clusters = cluster_annotations(sets, config=rater_config)
        cmp = compare_method(clusters, method, max_distance_um=config.max_distance_um,
                             matching=config.matching)
        irr, sd = inter_rater_reliability(cmp["matrix"])
        report.tables["rater_clusters"] = clusters.clusters.assign(found_by_method=cmp["found"])
        report.tables["rater_matrix"] = cmp["matrix"].reset_index()
        report.tables["rater_recall"] = cmp["per_rater"]
        report.tables["rater_agreement"] = cmp["agreement"]
        report.matrix = cmp["matrix"]
        report.notes.append(f"{len(clusters.clusters)} spines from {len(sets)} raters; inter-rater "
                            f"reliability {100 * irr:.1f} ± {100 * sd:.1f} %")


def _yolo(report, pred, pred_kind, truths, names, voxel_size, config, units, point, image, classes):
    """A 2D result against YOLO label files: objects (polygons vs labels) or points."""
    shape, spacing = _yolo_frame(pred, pred_kind, voxel_size, image)
    objects = [read_yolo(t) for t in truths]
    types = _predicted_types(pred, pred_kind) if classes else None
    if classes and types is None:
        report.notes.append("--classes given, but the result has no spines.csv with a 'type' column "
                            "beside it: spine types are not compared")
    if pred_kind == "instances" and all(any(not box for _, _, box in obj) for obj in objects):
        pred_labels = _as_instances(read_labels(pred, voxel_size=voxel_size)[0], Path(pred).name, report)
        truth = [read_yolo_polygons(t, shape) for t in truths]
        pairs = _score_instances(report, pred_labels, [labels for labels, _ in truth], names, config)
        report.notes.append("YOLO polygons matched object by object with the predicted labels (IoU)")
        if classes and types is not None:
            matched = [pd.DataFrame({"true_index": pr["true_id"].to_numpy() - 1,
                                     "pred_type": types.reindex(pr["pred_id"]).to_numpy()}) for pr in pairs]
            _type_tables(report, [c for _, c in truth], matched, types, names, classes)
        return
    if spacing is None:
        raise InputError("Matching YOLO points within a distance in µm needs the pixel size, which the "
                         "result does not record; give --voxel-size Y X.")
    method = _load_points(pred, pred_kind, spacing, units, point)
    rows, matched, truth_classes = [], [], []
    for path, name in zip(truths, names):
        yx, cls = read_yolo_boxes(path, shape)
        truth_um = pd.DataFrame({"z_um": 0.0, "y_um": yx[:, 0] * spacing[0], "x_um": yx[:, 1] * spacing[1]})
        result = match_points(method, truth_um, max_distance_um=config.max_distance_um, method=config.matching)
        pr = result.pop("pairs")
        rows.append({"truth": name, **result})
        truth_classes.append(cls)
        if types is not None:
            pred_types = (types.reindex(method["id"].to_numpy()[pr["pred_index"]]).to_numpy() if "id" in method
                          else types.to_numpy()[pr["pred_index"]])
            matched.append(pd.DataFrame({"true_index": pr["true_index"].to_numpy(), "pred_type": pred_types}))
    report.tables["point_scores"] = pd.DataFrame(rows)
    report.notes.append(f"YOLO objects taken as points (box centres, polygon centroids) at the pixel size "
                        f"{spacing[0]:g} x {spacing[1]:g} µm, matched within {config.max_distance_um} µm")
    if classes and types is not None:
        _type_tables(report, truth_classes, matched, types, names, classes)


def _yolo_frame(pred, pred_kind, voxel_size, image):
    """The 2D image shape (height, width) the YOLO fractions refer to, and the pixel size (y, x) or None."""
    from ..io import open_stack

    spacing = None
    if voxel_size is not None:
        from ..validate import check_spacing

        spacing = check_spacing(voxel_size, where="the YOLO-annotated image", ndim=2)
    if image is not None:
        stack = open_stack(image, voxel_size=spacing, require_spacing=False)
        source = f"the image '{image}'"
        shape, found = (stack.size_of("Y"), stack.size_of("X")), stack.spacing
        if not stack.is_2d:
            raise InputError(f"{source} is a stack with a Z axis; YOLO labels annotate 2D images. "
                             f"Give the 2D image that was annotated (or its projection).")
    else:
        labels_path = None
        if pred_kind in ("instances", "semantic"):
            labels_path = Path(pred)
        elif (Path(pred).parent / "labels_spines.tif").exists():
            labels_path = Path(pred).parent / "labels_spines.tif"
        if labels_path is None:
            raise InputError(
                f"YOLO labels are fractions of the image width and height, and '{pred}' does not say "
                f"how large the image is. Give the analysed image with --image IMAGE, or evaluate the "
                f"result's labels_spines.tif (or a spines.csv beside it)."
            )
        labels, found = read_labels(labels_path, voxel_size=spacing)
        source = f"the label image '{labels_path}'"
        if labels.ndim != 2:
            raise InputError(f"{source} is 3D (shape {labels.shape}); YOLO labels annotate 2D images. "
                             f"Evaluate a 2D result (e.g. analysed with --project max).")
        shape = labels.shape
    if spacing is None and found is not None and not np.any(np.isnan(found)):
        spacing = tuple(found)
    return tuple(int(s) for s in shape), spacing


def _predicted_types(pred, pred_kind) -> pd.Series | None:
    """The result's spine types: by label id (label images), or by row (a spines.csv), or None."""
    table_path = Path(pred) if pred_kind == "points" else Path(pred).parent / "spines.csv"
    if table_path.suffix.lower() != ".csv" or not table_path.exists():
        return None
    table = pd.read_csv(table_path, sep=None, engine="python")
    if "type" not in table:
        return None
    types = table["type"].astype(str).str.lower()
    if pred_kind == "points":
        return types.reset_index(drop=True)
    if "id" not in table:
        return None
    return pd.Series(types.to_numpy(), index=table["id"].to_numpy())


def _type_tables(report, truth_classes, matched, types, names, classes) -> None:
    """Per spine type: counts in truth and result, recall, and type agreement of matched spines."""
    rows, confusion = [], []
    for name, cls, pairs in zip(names, truth_classes, matched):
        truth_type = pd.Series([classes.get(int(c), f"class {int(c)}") for c in cls], dtype=object)
        pairs = pairs.assign(true_type=truth_type.to_numpy()[pairs["true_index"].to_numpy()])
        for kind in sorted(set(truth_type) | set(types.dropna())):
            of_kind = pairs[pairs["true_type"] == kind]
            n_truth = int((truth_type == kind).sum())
            same = int((of_kind["pred_type"] == kind).sum())
            rows.append({"truth": name, "type": kind, "n_truth": n_truth, "n_pred": int((types == kind).sum()),
                         "n_truth_found": len(of_kind),
                         "recall": len(of_kind) / n_truth if n_truth else float("nan"),
                         "n_same_type": same,
                         "type_agreement": same / len(of_kind) if len(of_kind) else float("nan")})
        table = pd.crosstab(pairs["true_type"], pairs["pred_type"]).reset_index()
        confusion.append(table.rename(columns={"true_type": "truth_type"}).assign(truth=name))
    report.tables["type_scores"] = pd.DataFrame(rows)
    report.tables["type_confusion"] = pd.concat(confusion, ignore_index=True)
    report.notes.append("type_scores: per type, truth spines found (recall) and, of those, the share "
                        "whose predicted type agrees; type_confusion: truth type (rows) against predicted "
                        "type of matched spines")


def write_report(report: EvaluationReport, out_dir: str | os.PathLike) -> list[Path]:
    """Write every table as CSV, the plots as PNG and the settings as JSON, each atomically."""
    from .plots import plot_matching_curve, plot_rater_matrix

    out = ensure_writable_dir(out_dir)
    written = []
    for name, table in report.tables.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
        written.append(out / f"{name}.csv")
    for i, (name, curve) in enumerate(report.curves.items()):
        suffix = "" if len(report.curves) == 1 else f"_{i + 1}"
        written.append(plot_matching_curve(curve, out / f"f1_vs_iou{suffix}.png", title=f"vs {name}"))
    if report.matrix is not None:
        written.append(plot_rater_matrix(report.matrix, out / "rater_matrix.png"))
    with atomic_path(out / "evaluation_settings.json") as tmp:
        Path(tmp).write_text(json.dumps(report.settings, indent=2) + "\n", encoding="utf-8")
    written.append(out / "evaluation_settings.json")
    return written
