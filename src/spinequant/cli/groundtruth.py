"""``spinequant groundtruth ...``: training data from other tools' annotations.

Each subcommand reads one kind of annotation and writes a stack folder of the layout that
``spinequant train`` reads (see :mod:`spinequant.groundtruth.layout`).
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("groundtruth", help="make training data from meshes, traces, points or DeepD3 sets",
                       description="Convert annotations made with other tools into the training-data "
                                   "layout of 'spinequant train' (one folder per stack with image.tif "
                                   "and labels_semantic.tif), and check such folders.")
    gsub = p.add_subparsers(dest="gt_command", metavar="WHAT")
    gsub.required = True

    m = gsub.add_parser("meshes", help="spine and dendrite surface meshes (STL, PLY, OBJ, OFF, VRML 2.0) to labels",
                        description="Rasterise surface meshes in µm (Imaris, Neurolucida 360 or "
                                    "'spinequant analyze --meshes' exports) onto IMAGE's voxel grid "
                                    "and write a training stack folder.")
    _image_arguments(m)
    m.add_argument("--spines", nargs="*", default=[], metavar="MESH", help="one mesh file per spine")
    m.add_argument("--dendrites", nargs="*", default=[], metavar="MESH", help="dendrite mesh file(s)")
    m.add_argument("--origin", nargs=3, type=float, default=(0.0, 0.0, 0.0), metavar=("Z", "Y", "X"),
                   help="where the centre of voxel (0, 0, 0) lies in the meshes' frame, µm (default 0 0 0; "
                        "Imaris: the image's extent minimum plus half a voxel)")
    m.add_argument("--no-mesh-repair", action="store_true",
                   help="do not fill the holes of meshes that are not closed (they are reported either way)")
    _repair_arguments(m)
    m.set_defaults(func=run_meshes)

    t = gsub.add_parser("traces", help="SWC dendrite traces and spine points to labels",
                        description="Draw the dendrite mask from an SWC trace (µm; balls of the traced "
                                    "radius along each segment, or a radius measured in the image where "
                                    "the trace has none) and grow a spine mask in the image from each "
                                    "spine point (CSV, CellCounter XML, ImageJ ROI points), as DeepD3's "
                                    "ground truth was built.")
    _image_arguments(t)
    t.add_argument("--swc", metavar="FILE", help="dendrite trace, µm (NeuTube, SNT, Neurolucida export)")
    t.add_argument("--points", metavar="FILE", help="spine points: CSV, CellCounter .xml, ImageJ .roi/.zip")
    t.add_argument("--units", choices=["um", "px"], help="units of a CSV's x, y, z when the columns do not say")
    t.add_argument("--spine-radius", type=float, default=None, metavar="UM",
                   help="how far a spine grows from its point, µm (default 1.0)")
    t.add_argument("--threshold", type=float, default=None, metavar="F",
                   help="grow through voxels at least this fraction of the way from the background to "
                        "the point's brightness (default 0.7)")
    _repair_arguments(t)
    t.set_defaults(func=run_traces)

    d = gsub.add_parser("d3set", help="DeepD3 training sets (.d3set) to stack folders and back",
                        description="Convert a DeepD3 .d3set into stack folders OUT/x0, OUT/x1, ... of the "
                                    "training layout, or a folder of stack folders into one .d3set "
                                    "(when OUT ends in .d3set), in DeepD3's own format. Needs flammkuchen: "
                                    "pip install 'spinequant[groundtruth]'.")
    d.add_argument("source", help="a .d3set file, or a folder of stack folders")
    d.add_argument("out", help="folder for the stack folders, or a .d3set file to write")
    d.set_defaults(func=run_d3set)

    c = gsub.add_parser("check", help="what each stack of a training folder holds, and its problems",
                        description="Print per stack how it is annotated, its voxel size, voxels per class, "
                                    "spine objects and sizes (µm³), and problems (no voxel size, shape "
                                    "mismatch, empty labels, spines touching no dendrite, values outside "
                                    "0/1/2); the table is also written as CSV.")
    c.add_argument("folder", help="training-data folder (one sub-folder per stack)")
    c.add_argument("--csv", metavar="FILE", help="where to write the table (default FOLDER/groundtruth_check.csv)")
    c.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="voxel size in µm of all stacks, overriding their metadata")
    c.set_defaults(func=run_check)

    r = gsub.add_parser("repair", help="reconnect detached spines, close dendrite holes, resolve overlaps",
                        description="Repair a stack folder's labels as Vidaurre-Gallart et al. (2022) did: "
                                    "spines that do not touch a dendrite are joined to it along the "
                                    "cheapest path through the image, dendrite holes are closed and "
                                    "voxels in both classes become spine. Every repair is counted.")
    r.add_argument("folder", help="stack folder (image.tif with labels_semantic.tif or instance labels)")
    r.add_argument("--out", metavar="FOLDER", help="write the repaired stack here (default: in place)")
    r.add_argument("--max-gap", type=float, default=None, metavar="UM",
                   help="longest path that reconnects a spine, µm (default 3)")
    r.add_argument("--neck-radius", type=float, default=None, metavar="UM",
                   help="how far the fill reaches from the path, µm (default 0.1)")
    r.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="voxel size in µm, overriding the image's metadata")
    r.set_defaults(func=run_repair)


def _image_arguments(p) -> None:
    p.add_argument("image", help="the image the annotations belong to (TIFF, OME-Zarr, ...)")
    p.add_argument("--out", required=True, metavar="FOLDER", help="stack folder to write (replaced if it exists)")
    p.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="voxel size in µm, overriding the image's metadata")
    p.add_argument("--channel", type=int, default=None, metavar="C", help="channel of the image (0-based)")


def _repair_arguments(p) -> None:
    p.add_argument("--repair", action="store_true",
                   help="reconnect detached spines along the image, close dendrite holes and give "
                        "overlaps to the spines (Vidaurre-Gallart et al. 2022); counted in groundtruth.json")


def _read_image(args):
    from ..io import read_stack

    stack = read_stack(args.image, channel=args.channel, voxel_size=args.voxel_size)
    if getattr(stack, "is_2d", False):
        from ..errors import InputError

        raise InputError(f"'{args.image}' is a 2D image; ground truth from meshes and traces needs a "
                         f"stack (Z, Y, X).")
    return stack.data, tuple(stack.spacing)


def _finish(args, image, spacing, spines, dendrites, provenance: dict) -> int:
    from ..groundtruth import write_training_stack

    if getattr(args, "repair", False):
        from ..groundtruth.repair import RepairConfig, repair_labels

        spines, dendrites, report = repair_labels(spines, dendrites, image, spacing,
                                                  getattr(args, "repair_config", None) or RepairConfig())
        provenance["repair"] = report
        print("repair      " + ", ".join(f"{k} {v}" for k, v in report.items() if not isinstance(v, list)))
    folder = write_training_stack(args.out, image, spacing, spines, dendrites, provenance=provenance)
    n_spines = len(set(spines[spines > 0].ravel().tolist()))
    print(f"wrote       {folder}  ({n_spines} spines, {int((spines > 0).sum())} spine voxels, "
          f"{int((dendrites > 0).sum())} dendrite voxels)")
    return 0


def run_meshes(args) -> int:
    from ..groundtruth.meshes import MeshConfig, meshes_ground_truth

    image, spacing = _read_image(args)
    config = MeshConfig(origin=tuple(args.origin), repair=not args.no_mesh_repair)
    spines, dendrites, report = meshes_ground_truth(args.spines, args.dendrites, shape=image.shape,
                                                    spacing=spacing, config=config)
    for kind in ("spines", "dendrites"):
        r = report[kind]
        print(f"{kind:<11} {r['meshes']} meshes, {r['not_watertight']} not closed, {r['repaired']} repaired, "
              f"{r['open_columns']} open rays left empty" + (f"; empty: {r['empty']}" if r["empty"] else ""))
    provenance = {"source": "meshes", "image": str(Path(args.image)), "meshes": report}
    return _finish(args, image, spacing, spines, dendrites, provenance)


def run_repair(args) -> int:
    from dataclasses import replace

    from ..groundtruth.layout import read_training_stack
    from ..groundtruth.repair import RepairConfig

    image, spacing, spines, dendrites = read_training_stack(args.folder, voxel_size=args.voxel_size)
    changes = {k: v for k, v in (("max_gap_um", args.max_gap), ("neck_radius_um", args.neck_radius))
               if v is not None}
    args.repair, args.repair_config = True, replace(RepairConfig(), **changes)
    args.out = args.out or args.folder
    provenance = {"source": "repair", "from": str(Path(args.folder))}
    return _finish(args, image, spacing, spines, dendrites, provenance)


def run_traces(args) -> int:
    from dataclasses import replace

    from ..errors import InputError
    from ..evaluate.readers import read_points
    from ..groundtruth.traces import TraceConfig, traces_ground_truth
    from ..io.swc import read_swc

    if not args.swc and not args.points:
        raise InputError("Give --swc (a dendrite trace) and/or --points (spine points).")
    image, spacing = _read_image(args)
    changes = {k: v for k, v in (("spine_radius_um", args.spine_radius), ("threshold", args.threshold)) if v is not None}
    config = replace(TraceConfig(), **changes)
    swc = read_swc(args.swc) if args.swc else None
    points = None
    if args.points:
        table = read_points(args.points, spacing=spacing, units=args.units)
        points = table[["z_um", "y_um", "x_um"]].to_numpy(float)
    spines, dendrites, report = traces_ground_truth(image, spacing, swc=swc, points_um=points, config=config)
    if "dendrites" in report:
        d = report["dendrites"]
        print(f"dendrites   {d['nodes']} nodes, radius from {d['radius_source']}, median {d['median_radius_um']} µm")
    if "spines" in report:
        s = report["spines"]
        print(f"spines      {s['points']} points, {s['empty']} grew no region (outside the image, in the dendrite or not brighter than "
              f"the background), median {s['median_voxels']:g} voxels")
    provenance = {"source": "traces", "image": str(Path(args.image)), "swc": args.swc, "points": args.points,
                  "traces": report, "config": config.__dict__}
    return _finish(args, image, spacing, spines, dendrites, provenance)


def run_d3set(args) -> int:
    from ..errors import InputError
    from ..groundtruth.d3set import d3set_to_folder, folder_to_d3set

    source, out = Path(args.source), Path(args.out)
    if source.suffix.lower() == ".d3set":
        written = d3set_to_folder(source, out)
        print(f"wrote       {len(written)} stack folder(s) in {out}")
    elif out.suffix.lower() == ".d3set":
        folder_to_d3set(source, out)
        print(f"wrote       {out}")
    else:
        raise InputError(f"One of '{source}' and '{out}' must be a .d3set file: convert a set into a folder "
                         f"(groundtruth d3set SET.d3set FOLDER) or a folder into a set (groundtruth d3set "
                         f"FOLDER SET.d3set).")
    return 0


def run_check(args) -> int:
    from .._atomic import atomic_path
    from ..groundtruth.check import check_folder

    table = check_folder(args.folder, voxel_size=args.voxel_size)
    shown = table.drop(columns=["spine_volume_min_um3", "spine_volume_max_um3"]).astype(object).fillna("")
    print(shown.to_string(index=False))
    path = Path(args.csv) if args.csv else Path(args.folder) / "groundtruth_check.csv"
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    bad = int((table["problems"] != "").sum())
    print(f"\n{len(table)} stack(s), {bad} with problems; table written to {path}")
    return 0
