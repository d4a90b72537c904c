"""``spinequant info FILE``: what a stack holds and at which voxel size."""

from __future__ import annotations

import dask
import numpy as np

from ..errors import VoxelSizeError
from ..io import open_stack
from ..validate import check_spacing
from ._common import add_stack_arguments, image_choice, stack_path


def register(sub) -> None:
    p = sub.add_parser("info", help="show shape, axes, channels and voxel size of a stack",
                       description="Print what a stack holds: shape, dtype, axes, channels, voxel "
                                   "size and where it came from, and the intensity range. "
                                   "Use 'sample' for the bundled sample stack.")
    p.add_argument("file", help="stack file or folder (TIFF, OME-TIFF, OME-Zarr, Zarr, CZI, LIF, ND2, PNG, JPEG)")
    add_stack_arguments(p)
    p.set_defaults(func=run)


def _implausible(spacing) -> str:
    """A warning for a voxel size that analysis would refuse (e.g. recorded in nm as µm)."""
    try:
        check_spacing(spacing, where="the file", ndim=len(spacing))
    except VoxelSizeError as exc:
        return f"  -- WARNING: implausible; analysis will refuse it: {exc}"
    return ""


def run(args) -> int:
    path = stack_path(args.file)
    stack = open_stack(path, voxel_size=args.voxel_size, require_spacing=False, image=image_choice(args.image),
                       allow_incomplete=args.allow_incomplete)
    print(f"file        {path}")
    print(f"format      {stack.metadata.get('format', '?')}")
    print(f"shape       {stack.shape}  axes {stack.axes}"
          + (f"  (file axes {stack.metadata['file_axes']})" if stack.metadata.get("file_axes") else ""))
    print(f"dtype       {stack.dtype}")
    if "C" in stack.axes:
        names = stack.channel_names or tuple(f"channel {i}" for i in range(stack.size_of("C")))
        print("channels    " + ", ".join(f"{i}: {n}" for i, n in enumerate(names)))
    if "T" in stack.axes:
        print(f"time points {stack.size_of('T')}")
    axes = stack.spatial_axes.lower()
    what, order = ("pixel size", "Y X") if stack.is_2d else ("voxel size", "Z Y X")
    if stack.is_2d:
        print("image       2D (one plane: no z)")
    if np.isnan(stack.spacing).any():
        known = "  ".join(f"{a} {v:g}" for a, v in zip(axes, stack.spacing) if not np.isnan(v))
        print(f"{what:<11} UNKNOWN{' (file has ' + known + ' µm)' if known else ''} -- "
              f"give it with --voxel-size {order} (µm)")
    else:
        sizes = "  ".join(f"{a} {v:g}" for a, v in zip(axes, stack.spacing))
        print(f"{what:<11} {sizes} µm  (from {stack.spacing_source}){_implausible(stack.spacing)}")
        extent = "  ".join(f"{a} {v:.4g}" for a, v in zip(axes, stack.extent_um))
        print(f"extent      {extent} µm")
    data = stack.data
    lo, hi = data.min(), data.max()
    bad = ~np.isfinite(data).all() if np.issubdtype(stack.dtype, np.floating) else False
    if stack.is_lazy:
        lo, hi, bad = dask.compute(lo, hi, bad)
    lo, hi = float(lo), float(hi)
    warning = ""
    if bad:
        lo, hi = (float(np.nanmin(np.where(np.isfinite(data), data, np.nan))),
                  float(np.nanmax(np.where(np.isfinite(data), data, np.nan))))
        warning = "  -- WARNING: contains NaN or infinite values; analysis will refuse it"
    elif lo == hi:
        warning = "  -- WARNING: constant image, nothing to analyse"
    print(f"intensity   min {lo:g}  max {hi:g}{warning}")
    for note in stack.metadata.get("notes", []):
        print(f"note        {note}")
    if stack.metadata.get("attribution"):
        print(f"source      {stack.metadata['attribution']}")
    return 0
