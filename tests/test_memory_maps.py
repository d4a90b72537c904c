"""Memory of the in-memory path: float16 network maps and label volumes resident only where
objects lie (docs/scale.md, "Memory of the in-memory path")."""

import sys

import cc3d
import numpy as np
import pytest
from scipy import ndimage as ndi

from spinequant.errors import InputError
from spinequant.evaluate.detection import match_spine_objects
from spinequant.instances import spine_instances
from spinequant.instances import _objects
from spinequant._blank import blank_volume
from spinequant.instances._objects import Objects, label_components
from spinequant.pipeline.analyze import NEURAL_INSTANCES, AnalyzeConfig, resolve_config
from spinequant.segment.neural.predict import predict
from spinequant.synth import make_phantom


def _iou(a, b):
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


def test_float16_maps_give_the_spines_of_float32_maps():
    # The default model's float16 maps against its float32 maps, through the settings analyze
    # uses: the same spines (every one matched), spine voxels IoU >= 0.99 and dendrite voxels
    # >= 0.995 (measured 1.0 and 0.9993 on this phantom), scores within float16 rounding.
    ph = make_phantom("two_photon", seed=5, shape=(16, 192, 192))
    config = resolve_config(AnalyzeConfig()).instances
    found = {}
    for dtype in (np.float32, np.float16):
        dend, spine, heads = predict(ph.image, spacing=ph.spacing, model="lean2d_real", dtype=dtype)
        assert spine.dtype == dtype
        found[dtype] = spine_instances(spine, dend, spacing=ph.spacing, config=config, head_prob=heads,
                                       image=ph.image)
    full, half = found[np.float32], found[np.float16]
    assert full.n_spines == half.n_spines > 10
    match = match_spine_objects(half.spine_labels, full.spine_labels, spacing=ph.spacing)
    assert match["tp"] == full.n_spines
    assert _iou(half.spine_labels > 0, full.spine_labels > 0) >= 0.99
    assert _iou(half.dendrite_labels > 0, full.dendrite_labels > 0) >= 0.995
    pairs = np.array(match["pairs"])
    np.testing.assert_allclose(half.scores[pairs[:, 0]], full.scores[pairs[:, 1]], atol=1e-3)


@pytest.mark.parametrize("bad, message", [(1.5, "from 0 to 1.5"), (-0.25, "from -0.25"),
                                         (np.nan, "NaN"), (np.inf, "NaN or infinite")])
def test_a_float16_map_out_of_range_is_still_refused(bad, message):
    spine = np.zeros((3, 20, 20), np.float16)
    spine[1, 5:9, 5:9] = 0.8
    spine[2, 3, 3] = bad
    with pytest.raises(InputError, match=message):
        spine_instances(spine, spacing=(0.5, 0.1, 0.1))


def test_float16_and_float32_maps_of_the_same_numbers_give_the_same_objects():
    # Thresholds (0.1, half each object's peak) are compared in the map's own type.
    z, y, x = np.mgrid[:6, :60, :60]
    spine = np.zeros((6, 60, 60), np.float32)
    for cy, cx, peak in [(12, 12, 0.9), (12, 40, 0.45), (42, 18, 0.7), (45, 45, 0.3)]:
        spine = np.maximum(spine, peak * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 18 - (z - 3) ** 2 / 2))
    spine = spine.astype(np.float16).astype(np.float32)       # numbers float16 holds exactly
    config = NEURAL_INSTANCES
    a = spine_instances(spine, spacing=(0.5, 0.1, 0.1), config=config)
    b = spine_instances(spine.astype(np.float16), spacing=(0.5, 0.1, 0.1), config=config)
    assert a.n_spines == 4
    np.testing.assert_array_equal(a.spine_labels, b.spine_labels)


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_blank_volumes_take_memory_only_where_objects_are_written():
    # 400 MiB of labels with an object in every plane: resident a few MiB (4 KiB pages), not
    # 2 MiB huge pages per object (>= 200 MiB here) nor the whole volume.
    shape = (100, 1024, 1024)
    before = _rss_mib()
    labels = blank_volume(shape)
    assert labels.dtype == np.int32 and labels.shape == shape and labels.flags.writeable
    for z in range(shape[0]):
        labels[z, 500:510, 500:510] = z + 1
    objects = Objects.of(labels)                             # a whole-volume pass reads every page
    grown = _rss_mib() - before
    assert len(objects.ids) == shape[0] and labels.sum() == sum(100 * (z + 1) for z in range(shape[0]))
    assert grown < 60, f"{grown:.0f} MiB resident"
    kept = objects.keep(objects.ids[::2])                    # written into a new blank volume
    assert kept.labels.max() == 50 and _rss_mib() - before < 100


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_semantic_labels_are_resident_only_where_objects_lie():
    # The semantic volume of a 100 x 1024 x 1024 stack with an object in every plane: the
    # values of the whole-volume formula, resident for a few MiB, not 100 (nor a 100 MiB mask).
    from spinequant.export import semantic_labels

    shape = (100, 1024, 1024)
    spines, dendrites = blank_volume(shape), blank_volume(shape)
    for z in range(shape[0]):
        dendrites[z, 500:520, 100:900] = 1 + z % 3
        spines[z, 515:530, 300 + 5 * z:310 + 5 * z] = z + 1
    before = _rss_mib()
    semantic = semantic_labels(spines, dendrites)
    grown = _rss_mib() - before
    expected = np.zeros(shape, np.uint8)
    expected[dendrites > 0] = 1
    expected[spines > 0] = 2
    assert semantic.dtype == np.uint8 and np.array_equal(semantic, expected)
    assert grown < 20, f"{grown:.0f} MiB resident"


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_components_labelled_slab_by_slab_are_cc3d_s(monkeypatch, connectivity):
    # Slabs of 1-3 planes on small masks (noise and smooth blobs that cross many slab faces):
    # the same ids as cc3d on the whole mask, object for object.
    monkeypatch.setattr(_objects, "BLANK_MIN_BYTES", 1)
    rng = np.random.default_rng(connectivity)
    for trial in range(40):
        shape = tuple(int(n) for n in rng.integers(2, 24, 3))
        monkeypatch.setattr(_objects, "_SLAB_VOXELS", int(rng.integers(1, 4)) * shape[1] * shape[2])
        mask = (rng.random(shape) < rng.uniform(0.05, 0.5) if trial % 2 else
                ndi.gaussian_filter(rng.random(shape), 1.5) > 0.5)
        got = label_components(mask, connectivity)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, cc3d.connected_components(mask, connectivity=connectivity))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_components_of_a_large_mask_take_memory_only_where_objects_are():
    # 400 MiB of int32 labels; cc3d alone would make them uint32 and resident whole. Objects
    # span slab faces (a rod through every plane) and join there (a U whose arms meet below).
    shape = (100, 1024, 1024)
    mask = np.zeros(shape, bool)
    mask[:, 10, 10] = True                                  # one object through all planes
    mask[5:60, 300, 300] = mask[5:60, 300, 310] = True      # two arms...
    mask[60, 300, 300:311] = True                           # ...joined in a later slab
    mask[::7, 900, 900:905] = True                          # one object per seventh plane
    before = _rss_mib()
    labels = label_components(mask, 26)
    grown = _rss_mib() - before
    assert grown < 80, f"{grown:.0f} MiB resident"
    want = cc3d.connected_components(mask, connectivity=26)
    assert labels.max() == want.max() == 2 + len(range(0, 100, 7))
    np.testing.assert_array_equal(labels, want)
