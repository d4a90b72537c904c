"""A cell body in a stack: no spine on it or beside it, not a dendrite; chunked as in memory."""
import html
import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from spinequant.cli import main
from spinequant.evaluate.detection import match_spine_objects
from spinequant.io import write_ome_zarr, write_tiff
from spinequant.pipeline.analyze import AnalyzeConfig, analyze
from spinequant.scale import analyze_chunked
from spinequant.segment import segment_maps
from spinequant.segment.neural.bodies import BODY_HALO_UM, CellBodies
from spinequant.synth import make_phantom

KW = dict(seed=1001, shape=(24, 512, 512))          # a 48 µm field: room for a body beside the dendrites


@pytest.fixture(scope="module")
def phantoms():
    return make_phantom("two_photon", **KW), make_phantom("two_photon", n_somata=(1, 1), **KW)


@pytest.fixture(scope="module")
def body(phantoms):
    """The phantom's cell body: where its light adds more than half its most (the edge of a
    blurred solid lies near half its brightness)."""
    plain, soma = phantoms
    assert soma.params["n_somata"] == 1
    added = ndi.uniform_filter(soma.image.astype(np.float32) - plain.image, 5)      # less noise
    return added > 0.5 * added.max()


def test_the_maps_are_cleared_on_a_cell_body_and_its_halo(phantoms, body):
    plain, soma = phantoms
    maps = segment_maps(soma.image, spacing=soma.spacing, method="lean2d_real",
                        head_support=(0.0, 0.0))
    found = maps.diagnostics["cell_bodies"]
    assert found["found"] == 1 and found["halo_um"] == BODY_HALO_UM
    # no spine or head on the body or beside it; no dendrite on the body
    distance = ndi.distance_transform_edt(~body, sampling=soma.spacing)
    assert maps.spine[distance <= 1.0].max() == 0 and maps.heads[distance <= 1.0].max() == 0
    assert maps.spine[distance <= BODY_HALO_UM].max() < 0.01
    assert maps.dendrite[body].max() == 0
    # ... but the dendrites and spines elsewhere are found as without the body
    assert (maps.dendrite > 0.5).sum() > 0.8 * (segment_maps(plain.image, spacing=plain.spacing,
                                                              method="lean2d_real").dendrite > 0.5).sum()
    assert "cell_bodies" not in segment_maps(plain.image, spacing=plain.spacing, method="lean2d_real").diagnostics


def test_analyze_calls_no_spine_on_a_cell_body_finds_the_others_and_says_so(phantoms, body, tmp_path, capsys):
    plain, soma = phantoms
    stack = tmp_path / "soma.tif"
    write_tiff(stack, soma.image, soma.spacing)
    out = tmp_path / "out"
    assert main(["analyze", str(stack), "--out", str(out), "--no-meshes"]) == 0
    assert "Note: 1 cell body found (" in capsys.readouterr().out
    spine_labels = tifffile.imread(out / "labels_spines.tif")
    semantic = tifffile.imread(out / "labels_semantic.tif")
    near = ndi.distance_transform_edt(~body, sampling=soma.spacing) <= 1.0
    assert not (spine_labels[near] > 0).any() and not (semantic[body] > 0).any()
    without = analyze(plain.image, spacing=plain.spacing,
                      config=AnalyzeConfig(export_meshes=False, export_roi=False, report=False))
    tp = [match_spine_objects(labels, soma.spine_labels, spacing=soma.spacing)["tp"]
          for labels in (spine_labels, without.spine_labels)]
    assert tp[0] >= 0.9 * tp[1] > 10
    run = json.loads((out / "run.json").read_text())
    found = run["diagnostics"]["segment"]["cell_bodies"]
    assert found["found"] == 1 and 0 < found["volume_um3"] < found["with_halo_um3"]
    assert f"<b>Cell bodies:</b> {html.escape(found['note'])}" in (out / "report.html").read_text()


def test_a_chunked_run_clears_the_same_cell_body_as_in_memory(phantoms, tmp_path):
    _, soma = phantoms
    config = AnalyzeConfig(export_meshes=False, export_roi=False, report=False)
    ref = analyze(soma.image, spacing=soma.spacing, config=config)
    path = tmp_path / "stack.ome.zarr"
    write_ome_zarr(path, soma.image, soma.spacing)
    out = tmp_path / "out"
    ch = analyze_chunked(path, out, config=config, chunk_px=256)
    assert ch.diagnostics["chunked"]["blocks"] == 4
    assert len(ch.spines) == len(ref.spines)
    match = match_spine_objects(np.asarray(ch.spine_labels[...]), ref.spine_labels, spacing=soma.spacing,
                                max_distance_um=0.3, min_iou=0.9)
    assert match["tp"] == len(ref.spines)
    run = json.loads((out / "run.json").read_text())
    assert run["diagnostics"]["segment"]["cell_bodies"] == ref.diagnostics["segment"]["cell_bodies"]
    bodies = CellBodies.load(out / "chunked.work" / "cell_bodies")
    assert bodies.bodies.any() and (bodies.halo >= bodies.bodies).all()


def test_clearing_a_window_clears_what_clearing_the_whole_stack_clears():
    rng = np.random.default_rng(0)
    bodies = rng.random((3, 10, 12)) < 0.1
    found = CellBodies(bodies, bodies | np.roll(bodies, 1, axis=2), edge=4)
    whole = [rng.random((3, 37, 45)).astype(np.float32) + 0.5 for _ in range(3)]
    expected = [m.copy() for m in whole]
    found.clear(expected[0], expected[1:])
    halo = np.repeat(np.repeat(found.halo, 4, 1), 4, 2)[:, :37, :45]
    assert (expected[1][halo] == 0).all() and (expected[1][~halo] > 0).all()
    assert (expected[0] == 0).sum() == np.repeat(np.repeat(bodies, 4, 1), 4, 2)[:, :37, :45].sum()
    for y0, x0, ny, nx in [(0, 0, 37, 45), (5, 7, 13, 21), (30, 40, 7, 5), (9, 1, 1, 44)]:
        window = [m[:, y0:y0 + ny, x0:x0 + nx].copy() for m in whole]
        found.clear(window[0], (window[1], None, window[2]), origin=(0, y0, x0))
        for w, e in zip(window, expected):
            np.testing.assert_array_equal(w, e[:, y0:y0 + ny, x0:x0 + nx])


def test_training_normalises_a_phantom_with_a_cell_body_as_inference_does(phantoms):
    from spinequant.segment.neural.card import read_card
    from spinequant.segment.neural.data import TrainingSample
    from spinequant.segment.neural.normalise import normalise
    from spinequant.segment.neural.train import normalised

    plain, soma = phantoms
    norm = read_card("lean2d_real").normalisation
    images = [normalised(TrainingSample(p.image, p.semantic, p.spacing, "phantom"), norm) for p in phantoms]
    shaft = plain.semantic == 1
    away = ndi.distance_transform_edt(plain.semantic == 0, sampling=plain.spacing) > 1.0
    contrast = [np.median(x[shaft]) - np.median(x[away]) for x in images]
    assert contrast[1] == pytest.approx(contrast[0], rel=0.1)         # the body does not dim the shafts
    plain_levels = normalise(soma.image, norm)
    assert np.median(plain_levels[shaft]) - np.median(plain_levels[away]) < 0.6 * contrast[0]


def test_the_search_for_cell_bodies_in_slabs_gives_the_whole_grids_answer(phantoms, monkeypatch):
    from spinequant.segment.neural import bodies as search
    from spinequant.segment.neural.card import read_card

    _, soma = phantoms
    config = read_card("lean2d_real").normalisation
    whole = search.levels_and_bodies(soma.image, config, spacing=soma.spacing)
    coarse, coarse_spacing, _ = search.coarse_maxima(soma.image, soma.spacing)
    rng = np.random.default_rng(3)
    cores = rng.random(coarse.shape) < 0.002
    cores[:, 40:60] = True                              # rows with no zero in a slab's mask
    one_slab = [search.grown(cores, coarse_spacing, um) for um in (0.4, 2.0, 6.5)]
    monkeypatch.setattr(search, "BODY_SLAB_BINS", 3 * coarse.shape[0] * coarse.shape[2])   # slabs of a few rows
    assert -(-coarse.shape[1] // 3) > 20
    for um, expected in zip((0.4, 2.0, 6.5), one_slab):
        np.testing.assert_array_equal(search.grown(cores, coarse_spacing, um), expected)
    sliced = search.levels_and_bodies(soma.image, config, spacing=soma.spacing)
    assert sliced[0] == whole[0] and whole[1].summary(soma.spacing)["found"] == 1
    np.testing.assert_array_equal(sliced[1].bodies, whole[1].bodies)
    np.testing.assert_array_equal(sliced[1].halo, whole[1].halo)


def test_a_stack_too_large_to_look_at_for_cell_bodies_says_so(phantoms, tmp_path, monkeypatch):
    from spinequant.segment.neural import bodies as search

    _, soma = phantoms
    small = soma.image[:8, :256, :256]
    monkeypatch.setattr(search, "BODY_MAX_BINS", 100)
    maps = segment_maps(small, spacing=soma.spacing, method="lean2d_real")
    skipped = maps.diagnostics["cell_bodies"]
    assert skipped["searched"] is False and skipped["bins"] > 100
    assert skipped["note"].startswith("the stack was not looked at for cell bodies")
    assert search.body_search_skipped(small[:1].shape, soma.spacing, {"body_radius_um": 5.0}) is None  # one plane
    path = tmp_path / "small.ome.zarr"
    write_ome_zarr(path, small, soma.spacing)
    out = tmp_path / "out"
    analyze_chunked(path, out, config=AnalyzeConfig(export_meshes=False, export_roi=False, report=False),
                    chunk_px=256)
    run = json.loads((out / "run.json").read_text())
    assert run["diagnostics"]["segment"]["cell_bodies"] == skipped
