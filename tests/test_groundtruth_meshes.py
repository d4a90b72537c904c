"""Meshes to voxels: known volumes and the phantom round trip labels -> meshes -> labels."""

import numpy as np
import pytest
import tifffile
import trimesh

from spinequant.errors import InputError
from spinequant.export.meshes import object_meshes, write_meshes
from spinequant.groundtruth.meshes import (MeshConfig, load_mesh, mesh_to_mask, meshes_ground_truth,
                                           meshes_to_labels)
from spinequant.synth import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("two_photon", seed=0, shape=(16, 96, 96))


def iou(a, b):
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return (a & b).sum() / (a | b).sum()


def test_box_fills_exactly_the_voxel_centres_inside():
    # x 0.25..2.25, y 0.25..1.25, z 0.25..0.75 µm on a 0.5 µm grid: centres 0.5..2 (4) x 0.5, 1 (2) x 0.5 (1)
    box = trimesh.creation.box(bounds=[(0.25, 0.25, 0.25), (2.25, 1.25, 0.75)])
    mask, info = mesh_to_mask(box, shape=(4, 6, 8), spacing=(0.5, 0.5, 0.5))
    assert mask.sum() == 8 and info["watertight"] and info["open_columns"] == 0
    assert mask[1, 1:3, 1:5].all()


def test_rotated_box_matches_the_exact_inside_test():
    box = trimesh.creation.box(extents=(2.0, 1.0, 1.2))
    box.apply_transform(trimesh.transformations.rotation_matrix(0.6, (0.3, 0.2, 1.0)))
    box.apply_translation((2.0, 2.0, 2.0))
    spacing = (0.13, 0.07, 0.07)
    shape = (32, 60, 60)
    mask, _ = mesh_to_mask(box, shape=shape, spacing=spacing)
    zyx = np.indices(shape).reshape(3, -1).T * spacing
    # the exact test: the centre in the box's own frame lies within its half extents
    local = trimesh.transform_points(zyx[:, ::-1], np.linalg.inv(_transform(box)))
    inside = np.all(np.abs(local) <= (1.0, 0.5, 0.6), axis=1).reshape(shape)
    assert (mask != inside).sum() == 0


def _transform(mesh):
    # the box was made centred at 0 and then moved: recover that rigid transform from its vertices
    ref = trimesh.creation.box(extents=(2.0, 1.0, 1.2))
    return trimesh.registration.procrustes(ref.vertices, mesh.vertices, reflection=False, scale=False)[0]


def test_phantom_round_trip_is_exact(phantom):
    for labels in (phantom.spine_labels, phantom.dendrite_labels):
        meshes = object_meshes(labels, phantom.spacing)
        back, infos = meshes_to_labels(list(meshes.values()), shape=labels.shape, spacing=phantom.spacing)
        assert all(i["watertight"] for i in infos)
        assert iou(back, labels) == 1.0
        # object i comes from mesh i, and the ids of the export are 1..n here
        assert np.array_equal(back, labels)


@pytest.mark.parametrize("fmt", ["stl", "ply", "obj"])
def test_round_trip_through_files_with_an_origin(phantom, tmp_path, fmt):
    paths = write_meshes(tmp_path, phantom.spine_labels, phantom.spacing, prefix="spine", formats=(fmt,))
    dend = write_meshes(tmp_path, phantom.dendrite_labels, phantom.spacing, prefix="dend", formats=(fmt,))
    # the same meshes drawn on a grid whose voxel 0 lies 2 voxels further on in every axis
    sp = np.asarray(phantom.spacing)
    shifted = MeshConfig(origin=tuple(-2 * sp))
    spines, dendrites, report = meshes_ground_truth(paths, dend, shape=(20, 100, 100), spacing=sp,
                                                    config=shifted)
    assert report["spines"]["meshes"] == len(paths) and report["spines"]["not_watertight"] == 0
    assert iou(spines[2:18, 2:98, 2:98], phantom.spine_labels) == 1.0
    assert iou(dendrites[2:18, 2:98, 2:98], phantom.dendrite_labels) == 1.0


def test_a_mesh_with_a_hole_is_repaired_or_reported():
    box = trimesh.creation.box(bounds=[(0.25, 0.25, 0.25), (2.25, 1.25, 0.75)])
    top = int(np.argmax(box.face_normals[:, 2]))          # a triangle of the top face, crossed by z rays
    open_box = trimesh.Trimesh(box.vertices, np.delete(box.faces, top, axis=0), process=False)
    mask, info = mesh_to_mask(open_box, shape=(4, 6, 8), spacing=(0.5, 0.5, 0.5))
    assert not info["watertight"] and info["repaired"] and mask.sum() == 8
    mask, info = mesh_to_mask(open_box, shape=(4, 6, 8), spacing=(0.5, 0.5, 0.5), repair=False)
    assert not info["repaired"] and info["open_columns"] > 0
    assert mask.sum() == 8 - info["open_columns"]     # the rays through the hole stay empty


def _vrml(mesh, *, translation=(0.0, 0.0, 0.0), scale=(1.0, 1.0, 1.0)) -> str:
    """A VRML 2.0 scene as Imaris' Export Scene writes one: a Transform over a Shape with an
    IndexedFaceSet, an appearance, a WorldInfo and comments; vertices divided by ``scale`` and
    moved by ``-translation`` so that the Transform puts them back."""
    v = (np.asarray(mesh.vertices) - np.asarray(translation)) / np.asarray(scale)
    points = ",\n".join(" ".join(f"{c:.6f}" for c in row) for row in v)
    index = ", ".join(f"{a} {b} {c} -1" for a, b, c in mesh.faces)
    return f"""#VRML V2.0 utf8
# exported surface
WorldInfo {{ title "cell 1" info ["Imaris" "units um"] }}
DEF Scene Transform {{
  translation {' '.join(map(str, translation))}
  scale {' '.join(map(str, scale))}
  children [
    Shape {{
      appearance Appearance {{ material Material {{ diffuseColor 0.8 0.2 0.2 transparency 0 }} }}
      geometry IndexedFaceSet {{
        solid FALSE ccw TRUE
        coord Coordinate {{ point [ {points} ] }}
        coordIndex [ {index} ]
      }}
    }}
  ]
}}
"""


def test_vrml_scenes_as_imaris_exports_them(phantom, tmp_path):
    """Phantom spines written as VRML 2.0 scenes (with a Transform to undo) come back exactly;
    a polygon with more than three corners is fanned into triangles; VRML 1.0 and Open Inventor
    are refused with what to export instead."""
    meshes = object_meshes(phantom.spine_labels, phantom.spacing)
    paths = []
    for k, mesh in meshes.items():
        path = tmp_path / f"spine{k}.wrl"
        path.write_text(_vrml(mesh, translation=(1.5, -2.0, 0.25), scale=(2.0, 2.0, 0.5)))
        paths.append(path)
    back, infos = meshes_to_labels([load_mesh(p) for p in paths], shape=phantom.spine_labels.shape,
                                   spacing=phantom.spacing)
    assert all(i["watertight"] for i in infos)
    assert iou(back, phantom.spine_labels) == 1.0
    quad = tmp_path / "quad.wrl"
    quad.write_text("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coord Coordinate { point "
                    "[0 0 0, 1 0 0, 1 1 0, 0 1 0, 0 0 1, 1 0 1, 1 1 1, 0 1 1] } coordIndex "
                    "[0 3 2 1 -1 4 5 6 7 -1 0 1 5 4 -1 1 2 6 5 -1 2 3 7 6 -1 3 0 4 7 -1] } }\n")
    cube = load_mesh(quad)
    assert len(cube.faces) == 12 and cube.is_watertight and cube.volume == pytest.approx(1.0)
    for header, word in (("#VRML V1.0 ascii", "VRML 1.0"), ("#Inventor V2.1 ascii", "Open Inventor")):
        old = tmp_path / "old.wrl"
        old.write_text(header + "\nSeparator { }\n")
        with pytest.raises(InputError, match=word):
            load_mesh(old)


def test_unreadable_meshes_say_what_to_do(tmp_path):
    wrl = tmp_path / "spine.wrl"
    wrl.write_text("#VRML V2.0 utf8\n")
    with pytest.raises(InputError, match="no IndexedFaceSet"):
        load_mesh(wrl)
    cut = tmp_path / "cut.wrl"
    cut.write_text("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coord Coordinate { point [0 0 0")
    with pytest.raises(InputError, match="cut.wrl"):
        load_mesh(cut)
    with pytest.raises(InputError, match="does not exist"):
        load_mesh(tmp_path / "missing.stl")
    bad = tmp_path / "bad.stl"
    bad.write_bytes(b"\0" * 10)
    with pytest.raises(InputError, match="bad.stl"):
        load_mesh(bad)


def test_cli_writes_a_training_folder(phantom, tmp_path):
    from spinequant.cli import main
    from spinequant.io import write_tiff
    from spinequant.segment.neural.data import load_training_data

    write_tiff(tmp_path / "img.tif", phantom.image, phantom.spacing)
    spines = write_meshes(tmp_path / "m", phantom.spine_labels, phantom.spacing, prefix="s", formats=("stl",))
    dend = write_meshes(tmp_path / "m", phantom.dendrite_labels, phantom.spacing, prefix="d", formats=("stl",))
    out = tmp_path / "train" / "stack1"
    code = main(["groundtruth", "meshes", str(tmp_path / "img.tif"), "--spines", *map(str, spines),
                 "--dendrites", *map(str, dend), "--out", str(out)])
    assert code == 0
    assert np.array_equal(tifffile.imread(out / "labels_semantic.tif"), phantom.semantic)
    (sample,) = load_training_data(tmp_path / "train")
    assert np.array_equal(sample.semantic, phantom.semantic)
    assert np.allclose(sample.spacing, phantom.spacing, rtol=1e-4)
