"""Surface meshes (Imaris, Neurolucida 360, spinequant's own export) to voxel labels.

A mesh's vertices are (x, y, z) in µm, as Imaris and Neurolucida 360 write them and as
:func:`spinequant.export.meshes.object_meshes` does. ``origin`` is where the centre of voxel
(0, 0, 0) lies in the mesh's frame, (z, y, x) µm; spinequant's own meshes have origin 0, an
Imaris export has the image's extent minimum plus half a voxel.

A voxel is inside a mesh when a ray from its centre along z crosses the surface an odd
number of times (ray parity). Every column (y, x) of the mesh's bounding box is one ray: each
triangle adds its crossing to the columns its projection covers, and a running count along z
gives the parity, so the work grows with the triangles and the box, not with voxels times
triangles. Rays pass a hair (:data:`RAY_OFFSET` voxels) beside the voxel centres so that none
runs exactly through an edge or vertex (marching-cubes vertices lie on the voxel grid).

>>> import numpy as np, trimesh
>>> box = trimesh.creation.box(extents=(1.2, 1.2, 1.2))     # x, y, z from -0.6 to 0.6 µm
>>> mask, info = mesh_to_mask(box, shape=(5, 5, 5), spacing=(0.5, 0.5, 0.5), origin=(-1, -1, -1))
>>> int(mask.sum()), info["watertight"]                     # centres at -0.5, 0, 0.5 per axis
(27, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..validate import check_spacing

#: Formats trimesh reads for us; VRML 2.0 (``.wrl``, Imaris' scene export) is read by
#: :mod:`.vrml`.
MESH_SUFFIXES = (".stl", ".ply", ".obj", ".off")
VRML_SUFFIXES = (".wrl", ".vrml")
#: Rays run this many voxels beside the voxel centres in y and x (two unrelated numbers).
RAY_OFFSET = (1.3e-4, 0.7e-4)
#: Triangles rasterised at once (bounds the memory of the candidate columns).
_CHUNK = 20000


@dataclass(frozen=True)
class MeshConfig:
    """How meshes become voxels.

    origin : (z, y, x) µm of the centre of voxel (0, 0, 0) in the meshes' frame.
    repair : fill the holes of meshes that are not closed (trimesh) before filling them.
    """

    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    repair: bool = True


def load_mesh(path: str | os.PathLike):
    """One triangle mesh from an STL, PLY, OBJ, OFF or VRML 2.0 file (several bodies are merged)."""
    import trimesh

    path = Path(path)
    if not path.exists():
        raise InputError(f"The mesh file '{path}' does not exist. Check the path.")
    suffix = path.suffix.lower()
    if suffix in VRML_SUFFIXES:
        from .vrml import read_vrml

        vertices, faces = read_vrml(path)
        return trimesh.Trimesh(vertices=vertices, faces=faces, process=True)
    if suffix == ".iv":
        raise InputError(
            f"'{path}' is an Open Inventor scene, which spinequant cannot read. Export the surfaces "
            f"as VRML 2.0 (.wrl), STL or OBJ instead, in µm.")
    if suffix not in MESH_SUFFIXES:
        raise InputError(f"'{path}' is not a mesh format spinequant reads; use one of "
                         f"{', '.join(MESH_SUFFIXES)} (vertices x, y, z in µm).")
    try:
        mesh = trimesh.load(path, force="mesh", process=True)
    except Exception as exc:  # trimesh raises many kinds for damaged files
        raise InputError(f"'{path}' could not be read as a mesh ({exc}). Export it again as STL or OBJ.") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(f"'{path}' holds no triangles. Export the surface as a triangle mesh (STL or OBJ).")
    return mesh


def mesh_to_mask(mesh, *, shape, spacing, origin=(0.0, 0.0, 0.0), repair: bool = True):
    """Voxels of the grid ``shape`` / ``spacing`` (z, y, x µm) whose centres lie inside ``mesh``.

    Returns ``(mask, info)``; ``info`` says whether the mesh was ``watertight``, whether it was
    ``repaired`` (holes filled by trimesh), and ``open_columns``: rays that crossed the surface
    an odd number of times (a hole the repair could not close), which are left empty.
    """
    sp = np.asarray(check_spacing(spacing), float)
    shape = tuple(int(s) for s in shape)
    watertight = bool(mesh.is_watertight)
    repaired = False
    if not watertight and repair:
        import trimesh

        mesh = mesh.copy()
        mesh.merge_vertices()
        trimesh.repair.fill_holes(mesh)
        repaired = bool(mesh.is_watertight)
    # vertices x, y, z µm -> continuous voxel indices z, y, x
    tri = (np.asarray(mesh.triangles, float)[:, :, ::-1] - np.asarray(origin, float)) / sp
    mask = np.zeros(shape, bool)
    info = {"watertight": watertight, "repaired": repaired, "open_columns": 0, "voxels": 0}
    lo = np.maximum(np.floor(tri.reshape(-1, 3).min(0)).astype(int), 0)
    hi = np.minimum(np.ceil(tri.reshape(-1, 3).max(0)).astype(int) + 1, shape)
    if len(tri) == 0 or np.any(hi[1:] <= lo[1:]) or hi[0] <= 0 or lo[0] >= shape[0]:
        return mask, info
    cols, zs = _column_crossings(tri, lo[1:], hi[1:])
    nz = shape[0]
    width = hi[2] - lo[2]
    counts = np.zeros((nz + 1, (hi[1] - lo[1]) * width), np.int32)
    # a crossing at height z makes every voxel above it (index > z) flip
    np.add.at(counts, (np.clip(np.floor(zs).astype(int) + 1, 0, nz), cols), 1)
    parity = np.cumsum(counts, axis=0) % 2
    open_cols = parity[-1] == 1
    parity[:, open_cols] = 0
    inside = parity[:nz].astype(bool).reshape(nz, hi[1] - lo[1], width)
    mask[:, lo[1]:hi[1], lo[2]:hi[2]] = inside
    info["open_columns"] = int(open_cols.sum())
    info["voxels"] = int(mask.sum())
    return mask, info


def _column_crossings(tri: np.ndarray, lo, hi):
    """(column index within the box lo..hi in y, x; z of the crossing) for every ray a
    triangle's projection covers."""
    cols_out, z_out = [], []
    oy, ox = RAY_OFFSET
    width = hi[1] - lo[1]
    for start in range(0, len(tri), _CHUNK):
        t = tri[start:start + _CHUNK]
        y, x = t[:, :, 1] - oy, t[:, :, 2] - ox          # rays at integer y, x in this frame
        y0 = np.maximum(np.ceil(y.min(1)).astype(int), lo[0])
        y1 = np.minimum(np.floor(y.max(1)).astype(int), hi[0] - 1)
        x0 = np.maximum(np.ceil(x.min(1)).astype(int), lo[1])
        x1 = np.minimum(np.floor(x.max(1)).astype(int), hi[1] - 1)
        ny, nx = np.maximum(y1 - y0 + 1, 0), np.maximum(x1 - x0 + 1, 0)
        n = ny * nx
        if n.sum() == 0:
            continue
        which = np.repeat(np.arange(len(t)), n)
        k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        cy = y0[which] + k // np.maximum(nx[which], 1)
        cx = x0[which] + k % np.maximum(nx[which], 1)
        # barycentric coordinates of (cy, cx) in the projected triangle
        ay, ax = y[which, 0], x[which, 0]
        by, bx = y[which, 1] - ay, x[which, 1] - ax
        qy, qx = y[which, 2] - ay, x[which, 2] - ax
        py, px = cy - ay, cx - ax
        det = by * qx - bx * qy
        ok = np.abs(det) > 1e-12
        safe = np.where(ok, det, 1.0)
        u = (py * qx - px * qy) / safe
        v = (by * px - bx * py) / safe
        ok &= (u >= 0) & (v >= 0) & (u + v <= 1)
        tz = t[which, :, 0]
        z = tz[:, 0] + u * (tz[:, 1] - tz[:, 0]) + v * (tz[:, 2] - tz[:, 0])
        cols_out.append(((cy - lo[0]) * width + (cx - lo[1]))[ok])
        z_out.append(z[ok])
    if not cols_out:
        return np.zeros(0, int), np.zeros(0)
    return np.concatenate(cols_out), np.concatenate(z_out)


def meshes_to_labels(meshes, *, shape, spacing, config: MeshConfig = MeshConfig()):
    """Instance labels (object ``i`` from ``meshes[i - 1]``) and one info dict per mesh.

    Where two meshes overlap, the later one wins. ``meshes`` are trimesh meshes or paths.
    """
    labels = np.zeros(tuple(int(s) for s in shape), np.int32)
    infos = []
    for index, mesh in enumerate(meshes, start=1):
        name = str(mesh) if isinstance(mesh, (str, os.PathLike)) else f"mesh {index}"
        if isinstance(mesh, (str, os.PathLike)):
            mesh = load_mesh(mesh)
        mask, info = mesh_to_mask(mesh, shape=shape, spacing=spacing, origin=config.origin,
                                  repair=config.repair)
        labels[mask] = index
        infos.append({"mesh": name, "id": index, **info})
    return labels, infos


def mesh_report(infos) -> dict:
    """Totals of :func:`meshes_to_labels`' info: meshes read, open ones, repaired ones, empty ones."""
    return {"meshes": len(infos),
            "not_watertight": sum(not i["watertight"] for i in infos),
            "repaired": sum(i["repaired"] for i in infos),
            "open_columns": sum(i["open_columns"] for i in infos),
            "empty": [i["mesh"] for i in infos if i["voxels"] == 0]}


def meshes_ground_truth(spine_meshes, dendrite_meshes, *, shape, spacing,
                        config: MeshConfig = MeshConfig()):
    """Spine and dendrite instance labels from their meshes, and a report of what was read.

    Returns ``(spine_labels, dendrite_labels, report)``; ``report`` has ``spines`` and
    ``dendrites`` (see :func:`mesh_report`) and ``meshes`` (one info dict per mesh).
    """
    spines, spine_info = meshes_to_labels(spine_meshes, shape=shape, spacing=spacing, config=config)
    dendrites, dend_info = meshes_to_labels(dendrite_meshes, shape=shape, spacing=spacing, config=config)
    if not spine_info and not dend_info:
        raise InputError("No meshes were given: name the spine and/or dendrite mesh files.")
    report = {"spines": mesh_report(spine_info), "dendrites": mesh_report(dend_info),
              "meshes": spine_info + dend_info, "origin_um": list(config.origin)}
    return spines, dendrites, report
