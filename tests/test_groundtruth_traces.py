"""Traces and points to masks, against phantom truth (DeepD3's way of building ground truth)."""

import numpy as np
import pandas as pd
import pytest

from spinequant.errors import InputError
from spinequant.evaluate.detection import match_spine_objects
from spinequant.groundtruth.traces import TraceConfig, estimate_radii, grow_spines, trace_mask, traces_ground_truth
from spinequant.synth import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("two_photon", seed=1, shape=(16, 128, 128))


def iou(a, b):
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return (a & b).sum() / (a | b).sum()


def test_dendrite_from_the_traced_radius(phantom):
    mask, info = trace_mask(phantom.centrelines, shape=phantom.image.shape, spacing=phantom.spacing)
    assert info["radius_source"] == "swc"
    assert iou(mask, phantom.dendrite_labels) >= 0.94      # measured 0.952 (the phantom's shafts vary)


def test_dendrite_radius_measured_in_the_image(phantom):
    nodes = phantom.centrelines.assign(radius=0.0)
    radii = estimate_radii(nodes, phantom.image, phantom.spacing, TraceConfig())
    assert np.median(np.abs(radii - phantom.centrelines["radius"])) <= 0.06    # µm; measured 0.045
    mask, info = trace_mask(nodes, shape=phantom.image.shape, spacing=phantom.spacing, image=phantom.image)
    assert info["radius_source"] == "image"
    assert iou(mask, phantom.dendrite_labels) >= 0.8       # measured 0.852 (0.730 by the median of 3 nodes)
    with pytest.raises(InputError, match="no radius"):
        trace_mask(nodes, shape=phantom.image.shape, spacing=phantom.spacing)


def test_spines_grown_from_points_are_found(phantom):
    pts = phantom.spines[["head_z_um", "head_y_um", "head_x_um"]].to_numpy()
    spines, dendrites, report = traces_ground_truth(phantom.image, phantom.spacing, swc=phantom.centrelines,
                                                    points_um=pts)
    assert report["spines"]["points"] == 25 and report["spines"]["empty"] == 0
    r = match_spine_objects(spines, phantom.spine_labels, spacing=phantom.spacing)
    assert r["tp"] >= 23 and r["f1"] >= 0.92               # measured 24 of 25, F1 0.96
    assert not ((spines > 0) & (dendrites > 0)).any()


def test_touching_spines_are_split_between_their_points():
    image = np.full((3, 30, 40), 10.0)
    image[1, 10:20, 5:35] = 100.0          # one bright bar, two points on it
    labels, info = grow_spines([[0.5, 1.5, 1.0], [0.5, 1.5, 2.9]], image, (0.5, 0.1, 0.1),
                               config=TraceConfig(spine_radius_um=2.0, smooth_um=0.0))
    assert set(np.unique(labels)) == {0, 1, 2}
    assert labels[1, 15, 8] == 1 and labels[1, 15, 32] == 2
    assert (labels > 0).sum() == 10 * 30


def test_cli_traces_with_points_in_pixels(phantom, tmp_path):
    from spinequant.cli import main
    from spinequant.io import write_tiff
    from spinequant.io.swc import write_swc
    from spinequant.segment.neural.data import load_training_data

    write_tiff(tmp_path / "img.tif", phantom.image, phantom.spacing)
    write_swc(tmp_path / "d.swc", phantom.centrelines)
    px = phantom.spines[["head_x_um", "head_y_um", "head_z_um"]].to_numpy() / np.asarray(phantom.spacing)[::-1]
    pd.DataFrame(px, columns=["x", "y", "z"]).to_csv(tmp_path / "points.csv", index=False)
    out = tmp_path / "train" / "s"
    assert main(["groundtruth", "traces", str(tmp_path / "img.tif"), "--swc", str(tmp_path / "d.swc"),
                 "--points", str(tmp_path / "points.csv"), "--units", "px", "--out", str(out)]) == 0
    (sample,) = load_training_data(tmp_path / "train")
    assert set(np.unique(sample.semantic)) == {0, 1, 2}
    assert main(["groundtruth", "traces", str(tmp_path / "img.tif"), "--out", str(out)]) == 2
