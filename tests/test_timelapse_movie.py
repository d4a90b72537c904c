"""Motion correction and calcium traces on movie phantoms with known shifts and ΔF/F0."""

import numpy as np
import pandas as pd
import pytest

from spinequant.synth import make_phantom, project_phantom
from spinequant.synth.movie import make_movie, transient_kernel
from spinequant.timelapse import delta_f_over_f, estimate_shifts, extract_traces, parent_dendrites, wide

SPARSE = dict(spine_density_per_um=(0.6, 1.0), n_axons=(0, 0), n_dim_dendrites=(0, 0))


@pytest.fixture(scope="module")
def flat():
    return project_phantom(make_phantom("two_photon", seed=0, shape=(12, 160, 160), **SPARSE))


@pytest.fixture(scope="module")
def movie(flat):
    return make_movie(flat, n_frames=150, frame_rate_hz=10.0, seed=0, photons=150)


def test_transient_kernel_peaks_at_one():
    t = np.linspace(0, 3, 3001)
    k = transient_kernel(t, 0.05, 0.5)
    assert k.max() == pytest.approx(1.0, abs=1e-4)
    assert transient_kernel(np.array([-1.0, 0.0]), 0.05, 0.5).tolist() == [0.0, 0.0]


def test_movie_is_reproducible_and_quiet_at_first(flat):
    a = make_movie(flat, n_frames=30, seed=3)
    b = make_movie(flat, n_frames=30, seed=3)
    assert np.array_equal(a.frames, b.frames)
    assert np.abs(a.spine_dff.to_numpy()[:20]).max() == 0.0     # no event in the 20 quiet frames
    assert a.shifts_um.shape == (30, 2)


def test_shifts_recovered_to_a_hundredth_of_a_micrometre(movie):
    # against the structural image the ROIs belong to: absolute shifts
    shifts = estimate_shifts(movie.frames, movie.spacing, reference=movie.resting)
    error = shifts - movie.shifts_um
    rms = float(np.sqrt((error**2).sum(axis=1).mean()))
    assert rms < 0.03                 # measured 0.014 µm (motion: 0.3 µm jitter + 0.5 µm drift)
    assert np.abs(error).max() < 0.1
    # against the movie's own average: the same up to one constant offset
    own = estimate_shifts(movie.frames, movie.spacing)
    rest = own - movie.shifts_um
    rest -= rest.mean(axis=0)
    assert float(np.sqrt((rest**2).sum(axis=1).mean())) < 0.03


def _pearson(table, truth):
    w = wide(table)
    return pd.Series({i: np.corrcoef(w[f"spine_{i}"], truth[i])[0, 1] for i in truth.columns})


def _resolvable(flat, margin_um=1.5, min_area_um2=0.25):
    """Spines an ROI mean can separate from their neighbours: large enough, alone in the
    projection, and far enough from the frame's edge to stay in view while the movie moves."""
    spacing = np.asarray(flat.spacing)
    ys, xs = np.nonzero(flat.spine_labels)
    extent = (np.asarray(flat.spine_labels.shape) - 1) * spacing
    edge = np.minimum.reduce([ys * spacing[0], xs * spacing[1], extent[0] - ys * spacing[0],
                              extent[1] - xs * spacing[1]])
    edge = pd.Series(edge).groupby(flat.spine_labels[ys, xs]).min()
    truth = flat.spines.set_index("id")
    return truth.index[(truth["area_um2"] >= min_area_um2) & ~truth["overlapped"] & (edge >= margin_um)]


def test_traces_follow_the_true_dff_with_motion(flat, movie):
    table, shifts = extract_traces(movie.frames, movie.spine_labels, movie.dendrite_labels, movie.spacing,
                                   frame_rate_hz=10.0, reference=movie.resting, baseline=(0, 20),
                                   neuropil_r=0.1, background=movie.background_adu)
    r = _pearson(table, movie.spine_dff)
    good = _resolvable(flat)
    assert len(good) >= 3
    assert r[good].min() >= 0.95          # measured: 0.990 .. 0.998, median 0.994
    assert r.median() >= 0.75             # all 37 spines, tiny and overlapping ones too: 0.81
    # the amplitude is right too once the detector offset is subtracted
    w = wide(table)
    best = r[good].idxmax()
    peak = w[f"spine_{best}"].max() / movie.spine_dff[best].max()
    assert 0.7 < peak < 1.3


def test_dendrite_subtraction_helps_the_small_spines(flat, movie):
    # the true shifts: this test is about the subtraction
    kwargs = dict(frame_rate_hz=10.0, shifts_um=movie.shifts_um, baseline=(0, 20), background=movie.background_adu)
    frames, truth = movie.frames, movie.spine_dff
    plain = _pearson(extract_traces(frames, movie.spine_labels, movie.dendrite_labels, movie.spacing, **kwargs)[0], truth)
    sub = _pearson(extract_traces(frames, movie.spine_labels, movie.dendrite_labels, movie.spacing, neuropil_r=0.1,
                                  **kwargs)[0], truth)
    assert sub.median() > plain.median()


def test_parent_dendrite_matches_the_truth(flat):
    parents = parent_dendrites(flat.spine_labels, flat.dendrite_labels)
    truth = flat.spines.set_index("id")["dendrite_id"]
    # measured 33 of 37: in the projection a few spines lie over the other dendrite
    assert (parents == truth.to_numpy()).mean() >= 0.85


def test_running_percentile_baseline_removes_a_slow_drift():
    t = np.arange(400)
    drift = 100 + 0.02 * t                                # a slow rise of the baseline: +8 %
    raw = drift.copy()
    raw[200:210] *= 1.5
    dff, f0 = delta_f_over_f(raw, percentile=10, window_frames=100)
    assert abs(dff[205, 0] - 0.5) < 0.02           # the 10th percentile of 100 frames lags 0.8 behind
    assert np.abs(dff[:150, 0]).max() < 0.01
    fixed, _ = delta_f_over_f(raw, baseline=(0, 20))
    assert fixed[:150, 0].max() > 0.025            # a fixed baseline does not follow the rise
    smoothed, _ = delta_f_over_f(raw, baseline=(0, 20), smooth_frames=9)
    assert smoothed.shape == (400, 1)


def test_cli_traces_from_a_movie_file_and_a_result_folder(flat, movie, tmp_path, capsys):
    """`spinequant traces MOVIE --rois RESULT/`: a multi-page TIFF of 2D frames (no time axis:
    its planes are the frames, with a note), the ROIs and image of a result folder; the traces
    written follow the true ΔF/F0 of the resolvable spines."""
    import json

    import tifffile

    from spinequant.cli import main
    from spinequant.io import write_tiff
    from spinequant.io.omezarr import write_ome_zarr

    result = tmp_path / "result"
    result.mkdir()
    write_tiff(result / "labels_spines.tif", movie.spine_labels.astype(np.uint16), movie.spacing)
    write_tiff(result / "labels_dendrites.tif", movie.dendrite_labels.astype(np.uint16), movie.spacing)
    write_ome_zarr(result / "results.ome.zarr", movie.resting.astype(np.float32), movie.spacing)
    movie_path = tmp_path / "movie.tif"
    tifffile.imwrite(movie_path, movie.frames, imagej=True, resolution=(1 / movie.spacing[1], 1 / movie.spacing[0]),
                     metadata={"unit": "um", "axes": "ZYX"})
    out = tmp_path / "traces"
    assert main(["traces", str(movie_path), "--rois", str(result), "--out", str(out), "--frame-rate", "10",
                 "--baseline", "0", "19", "--neuropil", "0.1", "--background", str(movie.background_adu)]) == 0
    printed = capsys.readouterr().out
    assert "planes are taken as frames" in printed
    table = pd.read_csv(out / "traces.csv")
    r = _pearson(table, movie.spine_dff)
    assert r[_resolvable(flat)].min() >= 0.95
    shifts = pd.read_csv(out / "shifts.csv")[["shift_y_um", "shift_x_um"]].to_numpy()
    assert float(np.sqrt(((shifts - movie.shifts_um) ** 2).sum(axis=1).mean())) < 0.05
    assert (out / "traces.png").stat().st_size > 5000 and (out / "dff.csv").exists()
    page = (out / "traces.html").read_text()
    assert page.count("data:image/png;base64") == 2 and page.count("<tr>") == 1 + table["roi"].nunique()
    assert json.loads((out / "traces.json").read_text())["config"]["neuropil_r"] == 0.1
    capsys.readouterr()
    assert main(["traces", str(movie_path), "--rois", str(result), "--out", str(out), "--frame-rate", "0"]) == 2
    assert "frame_rate_hz" in capsys.readouterr().err
    assert main(["traces", str(movie_path), "--rois", str(tmp_path), "--out", str(out)]) == 2
    assert "labels_spines.tif" in capsys.readouterr().err
