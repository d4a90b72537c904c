"""Classical segmentation on a hand-built blurred dendrite with known shaft and spines."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from spinequant.errors import InputError
from spinequant.segment.classical import ClassicalConfig, segment_classical

SPACING = (0.3, 0.1, 0.1)


def _phantom(seed=0):
    """A shaft (radius 0.6 µm) along x with four mushroom-like spines, blurred, noisy."""
    shape = (24, 80, 200)
    z, y, x = np.indices(shape, dtype=np.float32) * np.array(SPACING, np.float32)[:, None, None, None]
    cz, cy = shape[0] * SPACING[0] / 2, 3.0
    shaft = (z - cz) ** 2 + (y - cy) ** 2 <= 0.6 ** 2
    heads = []
    spine = np.zeros(shape, bool)
    for i, x0 in enumerate((4.0, 8.0, 12.0, 16.0)):
        sign = 1 if i % 2 == 0 else -1
        hy = cy + sign * 2.0
        neck = (np.abs(x - x0) <= 0.12) & ((z - cz) ** 2 <= 0.15 ** 2) & ((y - cy) * sign > 0) & ((y - hy) * sign < 0)
        head = (z - cz) ** 2 + (y - hy) ** 2 + (x - x0) ** 2 <= 0.45 ** 2
        spine |= (neck | head) & ~shaft
        heads.append((hy, x0))
    truth = np.where(shaft, 1, np.where(spine, 2, 0)).astype(np.uint8)
    signal = shaft * 1.0 + spine * 1.0
    blurred = ndi.gaussian_filter(signal.astype(np.float32), (0.6 / SPACING[0], 1.5, 1.5))
    rng = np.random.default_rng(seed)
    image = rng.poisson(100 + 800 * blurred).astype(np.uint16)
    return image, truth, heads


def test_shaft_and_spines_are_separated():
    image, truth, heads = _phantom()
    dend, spine = segment_classical(image, spacing=SPACING)
    assert dend.dtype == np.float32 and spine.dtype == np.float32
    assert 0 <= dend.min() and dend.max() <= 1 and 0 <= spine.min() and spine.max() <= 1
    shaft_pred = dend > 0.5
    true_shaft = truth == 1
    # Blur in z (sigma 0.6 µm) is as wide as the shaft, so the visible shaft is taller than
    # the geometric one: demand that it covers the true shaft and is not grossly inflated.
    recall = (shaft_pred & true_shaft).sum() / true_shaft.sum()
    iou = (shaft_pred & true_shaft).sum() / (shaft_pred | true_shaft).sum()
    assert recall > 0.9 and iou > 0.4
    # Every spine head centre is classified as spine, not shaft.
    zc = truth.shape[0] // 2
    for hy, hx in heads:
        iy, ix = int(round(hy / SPACING[1])), int(round(hx / SPACING[2]))
        assert spine[zc, iy, ix] > 0.5, (hy, hx)
        assert dend[zc, iy, ix] < 0.5
    # Shaft centre between spines is shaft.
    assert dend[zc, 30, 100] > 0.5 and spine[zc, 30, 100] == 0


def test_background_far_from_dendrite_is_empty():
    image, truth, _ = _phantom(seed=1)
    dend, spine = segment_classical(image, spacing=SPACING)
    far = ndi.distance_transform_edt(truth == 0, sampling=SPACING) > 1.5
    assert ((dend > 0.5) | (spine > 0.5))[far].mean() < 0.001


def test_deterministic_and_threshold_override():
    image, _, _ = _phantom(seed=2)
    a = segment_classical(image, spacing=SPACING)
    b = segment_classical(image, spacing=SPACING)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    _, _, diag = segment_classical(image, spacing=SPACING, config=ClassicalConfig(threshold=50.0),
                                   return_diagnostics=True)
    assert diag.threshold_rule == "user"


def test_rejects_4d_input():
    with pytest.raises(InputError, match="3D"):
        segment_classical(np.ones((2, 3, 10, 10)), spacing=SPACING)


def test_maximum_projection_in_2d():
    """The projected phantom: heads are spine, the shaft between them is shaft, background empty."""
    image, truth, heads = _phantom()
    plane = image.max(axis=0)
    dend, spine, diag = segment_classical(plane, spacing=SPACING[1:], return_diagnostics=True)
    assert dend.shape == spine.shape == plane.shape and diag.z_elongation == 1.0
    for hy, hx in heads:
        iy, ix = int(round(hy / SPACING[1])), int(round(hx / SPACING[2]))
        assert spine[iy, ix] > 0.5 and dend[iy, ix] < 0.5, (hy, hx)
    assert dend[30, 100] > 0.5 and spine[30, 100] == 0
    far = ndi.distance_transform_edt(truth.max(axis=0) == 0, sampling=SPACING[1:]) > 1.5
    assert ((dend > 0.5) | (spine > 0.5))[far].mean() < 0.001
    with pytest.raises(InputError, match="two numbers"):
        segment_classical(plane, spacing=SPACING)
