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

    m = gsub.add_parser("meshes", help="spine and dendrite surface meshes (STL, PLY, OBJ) to labels",
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
