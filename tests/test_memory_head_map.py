"""The head map kept only where spine objects read it, and a run that frees the network's maps
once its spine objects are made: the same results for less memory (docs/scale.md, "Memory of
the in-memory path", session 9)."""

import sys

import numpy as np
import pytest

from spinequant.instances import spine_instances
from spinequant.instances.heads import HEAD_BLOB_FRACTION, head_map_support
from spinequant.pipeline.analyze import AnalyzeConfig, analyze, resolve_config
from spinequant.segment.neural.predict import predict
from spinequant.segment.neural.tiling import sliding_window
from spinequant.synth import make_phantom

HEADS = resolve_config(AnalyzeConfig()).instances       # the default model's spine-object settings


def _kept(head, spine, support):
    spine_min, head_min = support
    return (spine >= spine_min) | (head >= head_min)


def _gaussian(shape, centre, sigma, peak):
    z, y, x = np.indices(shape, dtype=np.float32)
    cz, cy, cx = centre
    sz, sy, sx = sigma
    return peak * np.exp(-((z - cz) / sz) ** 2 / 2 - ((y - cy) / sy) ** 2 / 2 - ((x - cx) / sx) ** 2 / 2)


def test_a_head_map_zeroed_outside_its_support_gives_the_same_spines():
    # Every way spine objects read the head map: peaks, a faint spine outlined by its head's
    # blob (the spine map silent there), two heads sharing one region of the spine map (the
    # watershed), trimming and scores; the head map has a weak background everywhere else.
    shape = (10, 90, 90)
    dendrite = np.zeros(shape, np.float32)
    dendrite[2:8, 42:48, 5:85] = 0.9
    spine = np.maximum.reduce([_gaussian(shape, (5, 34, 20), (1.5, 3, 3), 0.9),
                               _gaussian(shape, (5, 33, 50), (1.5, 3, 3), 0.8),
                               _gaussian(shape, (5, 33, 57), (1.5, 3, 3), 0.8),
                               _gaussian(shape, (5, 56, 70), (1.5, 3, 3), 0.06)])   # under 0.1
    heads = [(5, 32, 20, 0.9), (5, 31, 50, 0.7), (5, 31, 57, 0.6), (5, 57, 70, 0.8)]
    rng = np.random.default_rng(0)
    # the background stays under the support's level: half the default model's head threshold
    # (its candidate floor, 0.05, since its confidence is learnt)
    head = np.maximum.reduce([rng.uniform(0, 0.02, shape).astype(np.float32)]
                             + [_gaussian(shape, c[:3], (2, 4, 4), c[3]) for c in heads])
    spine, head, dendrite = (m.astype(np.float16) for m in (spine, head, dendrite))
    support = head_map_support(HEADS)
    kept = _kept(head, spine, support)
    sparse = np.where(kept, head, 0).astype(np.float16)
    assert kept.mean() < 0.2                                  # most of the map is dropped
    full = spine_instances(spine, dendrite, spacing=(0.5, 0.1, 0.1), config=HEADS, head_prob=head)
    less = spine_instances(spine, dendrite, spacing=(0.5, 0.1, 0.1), config=HEADS, head_prob=sparse)
    assert full.n_spines == 4
    np.testing.assert_array_equal(less.spine_labels, full.spine_labels)
    np.testing.assert_array_equal(less.dendrite_labels, full.dendrite_labels)
    np.testing.assert_array_equal(less.scores, full.scores)


def test_the_network_keeps_the_head_map_only_where_it_is_read():
    # The default model on a phantom: the kept map holds the network's own values wherever
    # the spine objects may read it (and a margin), 0 elsewhere, and gives the same spines,
    # labels and scores.
    ph = make_phantom("two_photon", seed=5, shape=(16, 192, 192))
    support = head_map_support(HEADS)
    dend, spine, head = predict(ph.image, spacing=ph.spacing, model="lean2d_real")
    *_, sparse = predict(ph.image, spacing=ph.spacing, model="lean2d_real", head_support=support)
    read = _kept(head, spine, (HEADS.threshold, HEAD_BLOB_FRACTION * HEADS.head_threshold))
    assert sparse.dtype == np.float16 and 0 < read.mean() and (sparse != 0).mean() < 0.5
    np.testing.assert_array_equal(sparse[read], head[read])
    assert np.all((sparse == head) | (sparse == 0))
    full = spine_instances(spine, dend, spacing=ph.spacing, config=HEADS, head_prob=head, image=ph.image)
    less = spine_instances(spine, dend, spacing=ph.spacing, config=HEADS, head_prob=sparse, image=ph.image)
    assert full.n_spines > 10
    np.testing.assert_array_equal(less.spine_labels, full.spine_labels)
    np.testing.assert_array_equal(less.scores, full.scores)


def _resident_mib(array: np.ndarray) -> float:
    """Resident memory of the mapping that holds ``array`` (its own, for a blank volume)."""
    address = array.__array_interface__["data"][0]
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5:
                start, end = (int(a, 16) for a in head[0].split("-"))
                inside = start <= address < end
            elif inside and head[0] == "Rss:":
                return int(head[1]) / 1024
    raise AssertionError("no mapping holds the array")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_a_sparse_map_is_resident_only_where_it_is_kept():
    # 30 x 1024 x 1024 float16 head map (60 MiB) with a small bright spot in every plane:
    # resident for well under a MiB (rows near the spot), with the blended values there.
    volume = np.zeros((30, 1024, 1024), np.uint8)
    volume[:, 500:510, 600:640] = 200

    def run(tiles):                           # spine 0.9 and head 0.8 on the spot, head 0.05 elsewhere
        bright = tiles[:, 1] > 0
        return np.stack([np.zeros_like(tiles[:, 1]), 0.9 * bright, np.where(bright, 0.8, 0.05)], axis=1)

    dend, spine, head = sliding_window(volume, run, n_out=3, tile_size=512, overlap=32, z_context=1,
                                       batch_size=4, as_list=True, dtype=np.float16, clip=True,
                                       sparse=(2, lambda planes, z: _kept(planes[2], planes[1], (0.099, 0.2))))
    expected = np.zeros(volume.shape, np.float16)
    expected[:, 500:510, 600:640] = 0.8
    np.testing.assert_array_equal(head, expected)
    assert np.array_equal(spine > 0, expected > 0)
    assert _resident_mib(head) < 2, f"{_resident_mib(head):.1f} MiB resident"


def test_a_run_that_does_not_keep_the_maps_gives_the_same_result():
    ph = make_phantom("two_photon", seed=2, shape=(10, 128, 128))
    kept = analyze(ph.image, spacing=ph.spacing)
    freed = analyze(ph.image, spacing=ph.spacing, keep_maps=False)
    assert kept.spine_prob.shape == ph.image.shape and kept.dendrite_prob is not None
    assert freed.spine_prob is None and freed.dendrite_prob is None
    assert len(kept.spines) > 5
    np.testing.assert_array_equal(freed.spine_labels, kept.spine_labels)
    np.testing.assert_array_equal(freed.dendrite_labels, kept.dendrite_labels)
    assert freed.spines.equals(kept.spines)


def test_head_peaks_plane_by_plane_are_scipys_box_maxima():
    # the box maximum is made plane by plane (in the plane, then along z over a rolling window):
    # the peaks of a whole-map scipy filter, on float16 and float32 maps, 3D and 2D
    from scipy import ndimage as ndi

    import spinequant.instances.heads as heads

    rng = np.random.default_rng(3)
    shape = (24, 60, 60)
    head = np.maximum.reduce([rng.uniform(0, 0.3, shape).astype(np.float32)]
                             + [_gaussian(shape, c, (2, 4, 4), p) for c, p in
                                [((5, 10, 10), 0.9), ((12, 30, 40), 0.7), ((20, 50, 20), 0.6), ((13, 31, 46), 0.5)]])
    head[:3] = 0.01                                  # planes with nothing above the threshold
    for spacing, image in (((0.5, 0.1, 0.1), head), ((0.5, 0.1, 0.1), head.astype(np.float16)),
                           ((0.1, 0.1), head[12]), ((0.3, 0.1, 0.1), head[::-1].copy())):
        image32 = image.astype(np.float32)
        z_um = np.clip(heads.Z_STEPS_BETWEEN_HEADS * spacing[0], 0.4, 0.8)      # 0.8 µm at 0.5 µm steps
        radius_um = np.array([z_um, 0.4, 0.4])[-image.ndim:]
        radius = np.maximum(np.round(radius_um / np.asarray(spacing)), 1).astype(int)
        box = ndi.maximum_filter(image32, size=tuple(2 * radius + 1), mode="nearest")
        expected = np.argwhere((image32 == box) & (image32 >= 0.05))
        got, values = heads.head_peaks(image, spacing, threshold=0.05, min_distance_um=0.4)
        assert len(got) > 3
        # every peak kept is a box maximum, and every box maximum is a peak or within the
        # exact spacing of a stronger one
        assert {tuple(p) for p in got} <= {tuple(p) for p in expected}
        scaled = lambda p: np.asarray(p) * np.asarray(spacing) / radius_um
        for p in expected:
            if tuple(p) not in {tuple(q) for q in got}:
                d = np.linalg.norm(scaled(got) - scaled(p), axis=1)
                assert (d < 1.0).any() and values[d < 1.0].max() >= image32[tuple(p)]
