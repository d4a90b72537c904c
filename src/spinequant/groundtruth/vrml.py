"""Triangle meshes from VRML 2.0 scenes (``.wrl``), as Imaris' *Export Scene* writes surfaces.

Only what surface exports use is read: ``Transform`` (translation, rotation, scale, center,
scaleOrientation, nested), ``Group``/``Shape``/``Anchor``/``Collision``/``Billboard`` children
and ``IndexedFaceSet`` with its ``Coordinate`` points and ``coordIndex`` polygons (fanned into
triangles); ``DEF`` names are kept so that ``USE`` repeats a node. Appearance, normals, colours,
lights, viewpoints and every other node are skipped. Coordinates are taken as µm (Imaris and
Neurolucida 360 write µm). VRML 1.0 and Open Inventor (``.iv``) are different languages and are
refused with the export to choose instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import InputError

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]]|[^\s{}\[\],"]+')
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_GROUPS = ("Transform", "Group", "Anchor", "Collision", "Billboard", "Shape", "LOD", "Switch")


def read_vrml(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (N, 3) x, y, z in the scene's units, faces (M, 3)) of every IndexedFaceSet in
    the scene, with the transforms above it applied."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    header = text.lstrip()[:16]
    if not header.startswith("#VRML V2.0"):
        kind = "VRML 1.0" if header.startswith("#VRML V1.0") else "Open Inventor" \
            if header.startswith("#Inventor") else "not VRML 2.0"
        raise InputError(f"'{path}' is {kind}; spinequant reads VRML 2.0 scenes (#VRML V2.0). "
                         f"Export the surfaces as VRML 2.0, STL or OBJ, in µm.")
    tokens = _TOKEN.findall(re.sub(r"#[^\n]*", " ", text))
    try:
        nodes, _ = _nodes(tokens, 0, {}, until=None)
    except (IndexError, ValueError) as exc:
        raise InputError(f"'{path}' is not a readable VRML 2.0 scene ({exc or 'it ends too early'}). "
                         f"Export it again, or as STL or OBJ.") from None
    verts, faces = [], []
    for node in nodes:
        _collect(node, np.eye(4), verts, faces)
    if not faces:
        raise InputError(f"'{path}' holds no IndexedFaceSet surface. Export the surfaces, not "
                         f"only the image or the spots.")
    offsets = np.cumsum([0] + [len(v) for v in verts[:-1]])
    return (np.concatenate(verts),
            np.concatenate([f + o for f, o in zip(faces, offsets)]).astype(np.int64))


def _nodes(tokens, i, defs, *, until):
    """Nodes from ``tokens[i]`` up to the closing ``until`` token (or the end)."""
    out = []
    while i < len(tokens) and tokens[i] != until:
        if tokens[i] in ("PROTO", "EXTERNPROTO", "ROUTE"):
            raise ValueError(f"{tokens[i]} is not supported")
        node, i = _node(tokens, i, defs)
        out.append(node)
    return out, i + 1


def _node(tokens, i, defs):
    if tokens[i] == "USE":
        return defs[tokens[i + 1]], i + 2
    name = None
    if tokens[i] == "DEF":
        name, i = tokens[i + 1], i + 2
    kind = tokens[i]
    if tokens[i + 1] != "{":
        raise ValueError(f"expected '{{' after {kind}")
    fields, i = {}, i + 2
    while tokens[i] != "}":
        field = tokens[i]
        value, i = _value(tokens, i + 1, defs)
        fields[field] = value
    node = (kind, fields)
    if name is not None:
        defs[name] = node
    return node, i + 1


def _value(tokens, i, defs):
    """A field's value: a list ``[...]`` of numbers or nodes, a node, or one or more numbers
    (or one word / string)."""
    if tokens[i] == "[":
        if i + 1 < len(tokens) and (tokens[i + 1] == "]" or _NUMBER.match(tokens[i + 1])):
            j = tokens.index("]", i)
            return np.array([float(t) for t in tokens[i + 1:j]]), j + 1
        if tokens[i + 1].startswith('"'):          # a list of strings (WorldInfo, url)
            j = tokens.index("]", i)
            return tokens[i + 1:j], j + 1
        return _nodes(tokens, i + 1, defs, until="]")
    if tokens[i] in ("DEF", "USE") or (i + 1 < len(tokens) and tokens[i + 1] == "{"):
        return _node(tokens, i, defs)
    numbers = []
    while i < len(tokens) and _NUMBER.match(tokens[i]):
        numbers.append(float(tokens[i]))
        i += 1
    if numbers:
        return np.array(numbers), i
    return tokens[i], i + 1


def _collect(node, matrix, verts, faces) -> None:
    kind, fields = node
    if kind == "Transform":
        matrix = matrix @ _transform(fields)
    if kind == "IndexedFaceSet":
        _face_set(fields, matrix, verts, faces)
        return
    if kind in _GROUPS:
        for key in ("children", "choice", "level", "geometry"):
            value = fields.get(key)
            for child in ([value] if isinstance(value, tuple) else value or []):
                if isinstance(child, tuple):
                    _collect(child, matrix, verts, faces)


def _face_set(fields, matrix, verts, faces) -> None:
    coord = fields.get("coord")
    points = np.asarray(coord[1].get("point", []) if isinstance(coord, tuple) else [], float)
    index = np.asarray(fields.get("coordIndex", []), float).astype(np.int64)
    if points.size == 0 or index.size == 0:
        return
    points = points.reshape(-1, 3)
    homogeneous = np.c_[points, np.ones(len(points))] @ matrix.T
    triangles = []
    for polygon in np.split(index, np.flatnonzero(index < 0)):
        polygon = polygon[polygon >= 0]
        triangles += [(polygon[0], polygon[k], polygon[k + 1]) for k in range(1, len(polygon) - 1)]
    if triangles:
        tri = np.array(triangles, np.int64)
        if tri.max() >= len(points):
            raise InputError("An IndexedFaceSet refers to points it does not have (coordIndex "
                             f"{int(tri.max())}, {len(points)} points).")
        verts.append(homogeneous[:, :3])
        faces.append(tri)


def _transform(fields) -> np.ndarray:
    """VRML 2.0: T x C x R x SR x S x -SR x -C."""
    def vec(name, default):
        return np.asarray(fields.get(name, default), float).reshape(-1)
    t, c, s = vec("translation", (0, 0, 0)), vec("center", (0, 0, 0)), vec("scale", (1, 1, 1))
    r, sr = vec("rotation", (0, 0, 1, 0)), vec("scaleOrientation", (0, 0, 1, 0))

    def shift(v):
        m = np.eye(4)
        m[:3, 3] = v
        return m

    def rotate(axis_angle):
        axis, angle = axis_angle[:3], axis_angle[3]
        norm = np.linalg.norm(axis)
        m = np.eye(4)
        if norm == 0 or angle == 0:
            return m
        x, y, z = axis / norm
        k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
        m[:3, :3] = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        return m

    scale = np.diag([*s, 1.0])
    return shift(t) @ shift(c) @ rotate(r) @ rotate(sr) @ scale @ rotate(sr).T @ shift(-c)
