"""``spinequant evaluate PRED TRUTH...``: scores of a result against one or several annotations."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from ..errors import InputError
from ..evaluate.config import EvaluationConfig
from ..evaluate.files import evaluate_files, write_report


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="compare a result with annotations (labels, points, several raters)",
        description="Compare a prediction with one or several annotations and print the scores. "
                    "Label images (.tif) are matched object by object (F1 against IoU threshold, and "
                    "spine detection: centres within 1 µm or IoU >= 0.3, the rule of the README's "
                    "spine F1; files named *semantic* class by class); point lists (spines.csv, CSV with x y z, "
                    "ImageJ ROI sets, Fiji CellCounter XML, SWC) are matched within a distance in µm. "
                    "YOLO label files (.txt) score a 2D result: polygons object by object against "
                    "its label image, boxes as points at their centre. "
                    "With several point annotations the raters are clustered as in DeepD3 and the "
                    "method is judged against each rater. Tables (CSV) and plots (PNG) go to --out.")
    p.add_argument("pred", help="the prediction: label TIFF, spines.csv or a point list")
    p.add_argument("truth", nargs="+", help="one or more annotations (one per rater)")
    p.add_argument("--voxel-size", nargs="+", type=float, metavar="UM",
                   help="voxel size in µm (Z Y X, or Y X for 2D images) for files in pixels or "
                        "without metadata")
    p.add_argument("--image", default=None, metavar="IMAGE",
                   help="YOLO truths: the analysed 2D image, for the shape YOLO's fractions refer to "
                        "(default: the result's label image)")
    p.add_argument("--classes", default=None, metavar="NAMES",
                   help="YOLO truths: the spine type of each class, comma-separated from class 0, "
                        "e.g. M,S,B,T,F (mushroom, stubby, branched, thin, filopodia); compares them "
                        "with the type column of the result's spines.csv")
    p.add_argument("--max-distance-um", nargs="+", type=float, metavar="D",
                   help="point matching tolerance: one radius, or three semi-axes Z Y X "
                        "(default 2.5 0.85 0.85, DeepD3's limits)")
    p.add_argument("--iou-threshold", type=float, default=0.5,
                   help="IoU at which two objects match (default 0.5)")
    p.add_argument("--matching", choices=("hungarian", "greedy"), default="hungarian",
                   help="one-to-one matching method (default hungarian)")
    p.add_argument("--band-um", type=float, default=None,
                   help="semantic scores only within this distance of the annotated dendrite, µm")
    p.add_argument("--dendrite", default=None,
                   help="dendrite mask (.tif) or trace (.swc) for --band-um (default: the truths' dendrite class)")
    p.add_argument("--semantic", action="store_true",
                   help="read label images as semantic (0 background, 1 dendrite, 2 spine) whatever "
                        "their names (by default only files named *semantic* are)")
    p.add_argument("--units", choices=("um", "px"), default=None,
                   help="units of x y z in point CSVs whose column names do not say")
    p.add_argument("--point", choices=("auto", "centroid", "head"), default="auto",
                   help="which spine position of a spines.csv to match (default: centroid)")
    p.add_argument("--objects", choices=("spines", "cells"), default="spines",
                   help="what the labels hold: spines (default) or cells (Dice, instance F1 at IoU "
                        "0.1-0.9, centroids matched within --max-distance-um, default 5 µm; docs/cells.md)")
    p.add_argument("--out", default="evaluation", metavar="DIR",
                   help="folder for the CSV tables and PNG plots (default ./evaluation)")
    p.set_defaults(func=run)


def run(args) -> int:
    config = EvaluationConfig(iou_threshold=args.iou_threshold, matching=args.matching,
                              band_um=args.band_um)
    if args.max_distance_um:
        if len(args.max_distance_um) not in (1, 3):
            raise InputError("--max-distance-um takes one number (a radius in µm) or three (Z Y X).")
        d = args.max_distance_um
        config = replace(config, max_distance_um=d[0] if len(d) == 1 else tuple(d))
    if args.objects == "cells":
        from ..evaluate.cells import evaluate_cell_files

        report = evaluate_cell_files(args.pred, args.truth, voxel_size=args.voxel_size, config=config,
                                     units=args.units)
    else:
        report = evaluate_files(args.pred, args.truth, voxel_size=args.voxel_size, config=config,
                                units=args.units, point=args.point, dendrite=args.dendrite,
                                semantic=args.semantic, image=args.image, classes=args.classes)
    written = write_report(report, args.out)   # first: the files must not depend on who reads stdout
    with pd.option_context("display.width", 140, "display.max_columns", 30,
                           "display.float_format", "{:.3f}".format):
        for name, table in report.tables.items():
            if name == "instance_curve":
                table = table[["truth", "iou_threshold", "precision", "recall", "f1", "mean_matched_iou"]]
            print(f"\n== {name.replace('_', ' ')} ==")
            print(table.to_string(index=False))
    for note in report.notes:
        print(f"\nnote: {note}")
    print(f"\nwrote {len(written)} files to {args.out}/: " + ", ".join(p.name for p in written))
    return 0
