"""The classical segmentation step by step, on volumes whose answers are known.

Synthetic objects are built in µm (a cylinder shaft with spine-like protrusions, blurred
lines, Gaussian noise) on anisotropic voxels; phantoms from :mod:`spinequant.synth` carry
exact truth. Floors for the phantom scores sit 10-15 % under what the method reached when
they were set (values in the comments), so a real regression fails.
"""

import numpy as np
import pytest
from scipy import ndimage as ndi

from spinequant.evaluate.detection import match_spine_objects
from spinequant.instances import spine_instances
from spinequant.pipeline.analyze import default_instance_config
from spinequant.segment.classical import ClassicalConfig, estimate_z_elongation, segment_classical
from spinequant.segment.classical.centreline import centreline
from spinequant.segment.classical.preprocess import auto_threshold, noise_level, subtract_background
from spinequant.segment.classical.shaft import outside_distance, shaft_mask
from spinequant.synth import make_phantom

SPACING = (0.5, 0.1, 0.1)
SHAFT_KW = dict(max_spine_length_um=4.0, min_length_um=3.0, radius_window_um=1.5, radius_margin=1.2)


def _grid(shape, spacing=SPACING):
    """Voxel-centre coordinates (z, y, x) in µm."""
    return np.indices(shape, dtype=np.float32) * np.asarray(spacing, np.float32)[:, None, None, None]


def _protrusion(z, y, x, *, cz, cy, r, x0, side, length, neck=0.15, head=0.35):
    """A neck and a round head in the focal plane, reaching ``length`` µm beyond a shaft of
    radius ``r`` on the ``side`` (+1 / -1) of y."""
    tip = cy + side * (r + length - head)
    m = ((z - cz) ** 2 + (x - x0) ** 2 <= neck ** 2) & ((y - cy) * side >= 0) & ((y - tip) * side <= 0)
    return m | ((z - cz) ** 2 + (y - tip) ** 2 + (x - x0) ** 2 <= head ** 2)


def _bump(z, y, x, *, cz, cy, r, x0, side, height, radius=0.3):
    """A ball whose top lies ``height`` µm above the shaft surface."""
    c = cy + side * (r + height - radius)
    return (z - cz) ** 2 + (y - c) ** 2 + (x - x0) ** 2 <= radius ** 2


def _render(mask, spacing, blur_um, *, amplitude=800.0, offset=100.0, noise=10.0, seed=0):
    """Blur a mask with a Gaussian of ``blur_um`` (z, y, x) and add Gaussian noise."""
    b = ndi.gaussian_filter(mask.astype(np.float32), [s / d for s, d in zip(blur_um, spacing)])
    rng = np.random.default_rng(seed)
    return (offset + amplitude * b + rng.normal(0.0, noise, mask.shape)).astype(np.float32)


# ---------------------------------------------------------------- noise and background


def test_noise_level_recovers_gaussian_sigma():
    """Median and scaled MAD of the lower half give the background and the noise sigma of
    pure Gaussian noise within 2 %, and within 6 % when 5 % of the voxels are bright signal
    (the lower half of the histogram stays signal-free)."""
    rng = np.random.default_rng(0)
    for sigma in (1.0, 5.0, 20.0):
        v = rng.normal(100.0, sigma, (32, 64, 64))
        bg, noise = noise_level(v)
        assert bg == pytest.approx(100.0, abs=0.05 * sigma)
        assert noise == pytest.approx(sigma, rel=0.02)
        v[rng.random(v.shape) < 0.05] += 50 * sigma
        bg, noise = noise_level(v)
        assert bg == pytest.approx(100.0, abs=0.1 * sigma)
        assert noise == pytest.approx(sigma, rel=0.06)


def _tube_scene(background):
    """A blurred tube (peak 300 above background) along x plus a given background; returns
    the image, the pure structure and the voxels farther than 3 µm from the tube."""
    shape = (16, 120, 200)
    z, y, x = _grid(shape)
    tube = (z - 3.5) ** 2 + (y - 6.0) ** 2 <= 0.5 ** 2
    structure = ndi.gaussian_filter(tube.astype(np.float32), (0.8 / 0.5, 1.5, 1.5))
    structure *= 300.0 / structure.max()
    far = ndi.distance_transform_edt(~tube, sampling=SPACING) > 3.0
    return structure + background(z, y, x), structure, far


def test_subtract_background_removes_constant_offset_exactly():
    """A constant offset is removed to within 0.1 (of 150) everywhere, and a structure far
    narrower than ``scale_um`` keeps its full height."""
    image, structure, far = _tube_scene(lambda z, y, x: np.full(z.shape, 150.0, np.float32))
    out = subtract_background(image, spacing=SPACING, scale_um=10.0)
    assert np.abs(out[far]).max() < 0.1
    assert np.abs(out - structure).max() < 0.1


def test_subtract_background_flattens_gentle_gradient():
    """A gentle illumination gradient (0.5 per µm in y and x, 1 per µm in z: 24 units across
    the stack) is mostly removed: far from the tube the residual's mean is under 30 % of the
    gradient's range and its largest value under 60 % (5.5 and 12 of 24 measured), and the
    tube keeps its height within 5 %.

    The background is estimated on cells a quarter of ``scale_um`` wide, sampled at their
    first voxel, and the opening is cut short at the high faces, so it lags a gradient by
    one to two cells (2.5-5 µm here); these bounds pin that down rather than ask for zero."""
    image, structure, far = _tube_scene(lambda z, y, x: 150.0 + 0.5 * x + 0.5 * y + 1.0 * z)
    out = subtract_background(image, spacing=SPACING, scale_um=10.0)
    spread = float(np.ptp(image[far] - structure[far]))
    assert spread > 20
    assert abs(float(out[far].mean())) < 0.3 * spread and np.abs(out[far]).max() < 0.6 * spread
    peak = np.unravel_index(np.argmax(structure), structure.shape)
    assert out[peak] == pytest.approx(300.0, rel=0.05)


# ---------------------------------------------------------------- thresholds


def _bimodal(seed=0):
    """90 % background N(100, 10) and 10 % signal N(200, 30)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(100, 10, 90_000), rng.normal(200, 30, 10_000)])


def test_auto_threshold_each_rule_reports_itself():
    """Every forced rule returns its own name; ``"noise"`` is exactly background + k noise;
    ``"otsu"``, ``"li"`` and ``"auto"`` put the threshold between the two modes."""
    v = _bimodal()
    bg, noise = noise_level(v)
    for rule in ("otsu", "triangle", "li", "noise"):
        thr, used = auto_threshold(v, background=bg, noise=noise, k_noise=3.0, method=rule)
        assert used == rule
        if rule == "noise":
            assert thr == pytest.approx(bg + 3.0 * noise)
        if rule in ("otsu", "li"):
            assert 100 + 2 * 10 < thr < 200, rule
    thr, used = auto_threshold(v, background=bg, noise=noise, k_noise=3.0, method="auto")
    assert used == "otsu" and 120 < thr < 200


def test_auto_threshold_never_below_noise_floor():
    """``"auto"`` never goes below background + k_noise * noise: on pure noise, and on a
    histogram whose second mode is too dim for Otsu to clear the floor, it switches to the
    noise rule; on the bimodal histogram with a low k it keeps Otsu's value."""
    rng = np.random.default_rng(1)
    cases = {
        "pure noise": rng.normal(100, 5, 100_000),
        "dim mode": np.concatenate([rng.normal(100, 5, 98_000), rng.normal(125, 5, 2_000)]),
        "bimodal": _bimodal(1),
    }
    for name, v in cases.items():
        bg, noise = noise_level(v)
        for k in (2.0, 6.0, 10.0):
            thr, used = auto_threshold(v, background=bg, noise=noise, k_noise=k, method="auto")
            floor = bg + k * noise
            assert thr >= floor - 1e-9, (name, k)
            otsu, _ = auto_threshold(v, background=bg, noise=noise, k_noise=k, method="otsu")
            assert (used, thr) == (("otsu", otsu) if otsu > floor else ("noise", pytest.approx(floor))), (name, k)
    bg, noise = noise_level(cases["pure noise"])
    assert auto_threshold(cases["pure noise"], background=bg, noise=noise, k_noise=6.0)[1] == "noise"
    bg, noise = noise_level(cases["bimodal"])
    assert auto_threshold(cases["bimodal"], background=bg, noise=noise, k_noise=2.0)[1] == "otsu"


# ---------------------------------------------------------------- z elongation and local trim


def _blurred_line(spacing, sigma_z, sigma_y, shape_yx=(80, 120)):
    """A one-voxel line along x in the focal plane, blurred, peak-normalised to 1."""
    nz = int(round(12 / spacing[0]))
    line = np.zeros((nz, *shape_yx), np.float32)
    line[nz // 2, shape_yx[0] // 2, :] = 1.0
    b = ndi.gaussian_filter(line, (sigma_z / spacing[0], sigma_y / spacing[1], sigma_y / spacing[2]))
    return b / b.max()


@pytest.mark.parametrize("sigma_z, sigma_y", [(0.6, 0.3), (1.0, 0.5), (0.9, 0.3), (2.0, 0.5)])
def test_z_elongation_of_blurred_line_is_blur_ratio(sigma_z, sigma_y):
    """Cut at one level (half maximum), a thin line blurred by an anisotropic Gaussian has
    chords along z and y in the ratio of the blur widths: the estimate is within 15 % of
    sigma_z / sigma_y (2, 3 or 4 here)."""
    spacing = (0.25, 0.1, 0.1)
    mask = _blurred_line(spacing, sigma_z, sigma_y) >= 0.5
    assert estimate_z_elongation(mask, spacing) == pytest.approx(sigma_z / sigma_y, rel=0.15)


ZTRIM = pytest.mark.xfail(strict=True, reason=(
    "the z trim reads its reference from the 2 x 2-pooled grid, so it drops every other row at the "
    "edge of the z smear. Comparing each voxel with its own column fixes this and raised phantom "
    "spine F1 0.593 -> 0.619 (12 phantoms) but on the real sample stack the dendrite grew from "
    "40.3 to 48.0 um and the spines from 57 to 70, most of them fragments along the shaft: "
    "not taken (a gain on one data set only); see issue #19"))


@ZTRIM
def test_trimmed_foreground_of_blurred_line_has_no_parity_holes():
    """The z trim compares each voxel with the peak of its own column, so the foreground of
    a blurred line is one solid run across y in (almost) every (z, x) column, and its measured z
    elongation grows with the blur ratio without hitting the upper limit.

    Regression: the z rule once read its reference from a grid pooled 2 x 2 in y/x, which
    dropped every other row at the edge of the z smear; the holes multiply the y runs and
    the measured elongation goes to the limit 5 (4.86, 5.0, 5.0 below)."""
    elongations = []
    for sigma_z in (1.0, 1.5, 2.0):
        image = 100 + 800 * _blurred_line(SPACING, sigma_z, 0.5)
        image += np.random.default_rng(0).normal(0, 5, image.shape)
        dend, spine, diag = segment_classical(image.astype(np.float32), spacing=SPACING, return_diagnostics=True)
        fg = (dend > 0) | (spine > 0)
        starts = fg[:, 1:, :] & ~fg[:, :-1, :]
        runs = starts.sum(axis=1) + fg[:, 0, :]
        assert (runs > 1).sum() < 0.01 * (runs > 0).sum(), sigma_z  # a few noise holes at most
        elongations.append(diag.z_elongation)
    # trimmed at 60 % of the peak along z and about 30 % across, the ratio comes out near
    # 0.65 times the blur ratio (1.4, 1.9, 2.5 measured)
    assert elongations[0] < elongations[1] < elongations[2] < 3.5
    assert elongations == pytest.approx([0.65 * r for r in (2, 3, 4)], rel=0.2)


def test_local_trim_removes_glow_and_keeps_dim_object():
    """A bright line (y sigma 0.1 µm) with an out-of-focus glow around it (15 % of its peak,
    y sigma 0.3 µm) and, 2.5 µm away, a separate dim object (a fifth of the peak). No single
    threshold can drop the glow and keep the dim object; the local trim does: the foreground
    across the line is no wider than where line + glow reach 30 % of their peak (plus a
    voxel), and the dim object, with its own lower reference, is kept. With the trim
    switched off (tiny fractions) the glow stays, so the trim is what removes it."""
    shape = (24, 100, 120)
    z, y, x = _grid(shape)
    cz, cy = 6.0, 4.0
    in_z = np.exp(-((z - cz) ** 2) / (2 * 0.8 ** 2))

    def across(d):
        return np.exp(-d ** 2 / (2 * 0.1 ** 2)) + 0.15 * np.exp(-d ** 2 / (2 * 0.3 ** 2))

    dim = 0.2 * np.exp(-((y - cy - 2.5) ** 2 + (x - 6.0) ** 2) / (2 * 0.2 ** 2))
    image = 100 + 1000 * in_z * (across(y - cy) + dim) + np.random.default_rng(0).normal(0, 3, shape)
    image = image.astype(np.float32)
    iz, iy_dim, ix_dim = int(round(cz / SPACING[0])), int(round((cy + 2.5) / SPACING[1])), 60
    d = np.abs(y[0, :, 0] - cy)
    expected = d[across(d) >= 0.3 * across(0.0)].max()  # 0.1 µm
    far_x = slice(80, 120)  # away from the dim object

    def widths(**fractions):
        config = ClassicalConfig(threshold="noise", smooth_sigma_um=(0.1, 0.05, 0.05), **fractions)
        dend, spine = segment_classical(image, spacing=SPACING, config=config)
        fg = (dend > 0) | (spine > 0)
        return d[fg[iz, :, far_x].any(axis=1)].max(), fg[iz, iy_dim, ix_dim]

    width, dim_kept = widths()
    assert width <= expected + 2 * SPACING[1] + 1e-6 and dim_kept
    loose_width, dim_kept = widths(local_fraction=1e-3, z_local_fraction=1e-3)
    assert loose_width > expected + 0.3 and dim_kept


# ---------------------------------------------------------------- shaft


def test_outside_distance_is_in_micrometres():
    """Distances from a single voxel on anisotropic voxels: 2 z steps are 1.0 µm, 3 x steps
    0.3 µm, the diagonal sqrt(0.5² + 0.1²); an empty mask is infinitely far."""
    mask = np.zeros((5, 5, 5), bool)
    mask[2, 2, 2] = True
    d = outside_distance(mask, SPACING)
    assert d[2, 2, 2] == 0
    assert d[0, 2, 2] == pytest.approx(1.0) and d[2, 2, 4] == pytest.approx(0.2)
    assert d[3, 3, 2] == pytest.approx(np.hypot(0.5, 0.1), rel=1e-5)
    assert np.isinf(outside_distance(np.zeros_like(mask), SPACING)).all()


@pytest.mark.parametrize("radius", [0.4, 0.8])
def test_shaft_mask_rebuilds_cylinder_without_protrusions(radius):
    """On a binary cylinder (radius 0.4 or 0.8 µm) with three 1.5 µm spines and two low
    bumps: the shaft covers the cylinder (IoU > 0.9; 0.98-0.99 measured), reaches no
    farther from the axis than the margin times the radius plus a voxel (so the spines are
    cut off), and the estimated radius is the true one within a y/x voxel (0.1 µm)."""
    shape = (17, 71, 201)  # axis on a voxel centre: odd-width cross-section (see the xfail below)
    z, y, x = _grid(shape)
    cz, cy = 4.0, 3.5
    cyl = (z - cz) ** 2 + (y - cy) ** 2 <= radius ** 2
    geo = dict(cz=cz, cy=cy, r=radius)
    spines = (_protrusion(z, y, x, x0=5.0, side=1, length=1.5, **geo)
              | _protrusion(z, y, x, x0=10.0, side=-1, length=1.5, **geo)
              | _protrusion(z, y, x, x0=15.0, side=1, length=1.5, **geo)) & ~cyl
    bumps = (_bump(z, y, x, x0=7.5, side=1, height=0.25, **geo) | _bump(z, y, x, x0=12.5, side=-1, height=0.25, **geo))
    shaft, line, radii = shaft_mask(cyl | spines | bumps, spacing=SPACING, **SHAFT_KW)
    assert (shaft & cyl).sum() / (shaft | cyl).sum() > 0.9
    axis_distance = np.sqrt((z - cz) ** 2 + (y - cy) ** 2)
    assert axis_distance[shaft].max() <= SHAFT_KW["radius_margin"] * radius + 0.1 + 1e-6
    assert (shaft & spines).sum() < 0.15 * spines.sum()
    assert np.abs(radii / SHAFT_KW["radius_margin"] - radius).max() <= 0.1 + 1e-6
    assert np.ptp(np.argwhere(line)[:, 2]) * SPACING[2] > 15.0  # the centreline runs along the shaft


def _spiny_cylinder(radius=0.6):
    """Cylinder (radius 0.6 µm) along x with two 1.5 µm spines (+y), a 0.8 µm spine (-y,
    alone on that side) and a 0.25 µm bump (+y); returns the mask and the parts."""
    shape = (17, 71, 201)
    z, y, x = _grid(shape)
    geo = dict(cz=4.0, cy=3.5, r=radius)
    cyl = (z - 4.0) ** 2 + (y - 3.5) ** 2 <= radius ** 2
    parts = {"long1": _protrusion(z, y, x, x0=4.0, side=1, length=1.5, **geo) & ~cyl,
             "long2": _protrusion(z, y, x, x0=16.0, side=1, length=1.5, **geo) & ~cyl,
             "short": _protrusion(z, y, x, x0=10.0, side=-1, length=0.8, head=0.3, **geo) & ~cyl,
             "bump": _bump(z, y, x, x0=10.0, side=1, height=0.25, **geo) & ~cyl}
    return cyl, parts


@pytest.fixture(scope="module")
def spiny_cylinder():
    cyl, parts = _spiny_cylinder()
    mask = cyl | np.logical_or.reduce(list(parts.values()))
    return _render(mask, SPACING, (0.3, 0.08, 0.08)), cyl, parts


def test_protrusions_beyond_min_protrusion_are_spines(spiny_cylinder):
    """Through the whole method: the shaft is the cylinder (IoU > 0.9; 0.99 measured); the
    1.5 and 0.8 µm protrusions are spine (over 70 % of their voxels; 81-91 % measured)
    while the 0.25 µm bump, shorter than ``min_protrusion_um`` (0.3) beyond the rebuilt
    shaft, stays shaft. Raising ``min_protrusion_um`` to 1 µm turns the 0.8 µm spine into
    shaft and leaves the long ones spines: the rule is what decides."""
    image, cyl, parts = spiny_cylinder
    dend, spine = segment_classical(image, spacing=SPACING)
    assert ((dend > 0.5) & cyl).sum() / ((dend > 0.5) | cyl).sum() > 0.9
    for name in ("long1", "long2", "short"):
        assert (spine > 0.5)[parts[name]].mean() > 0.7, name
    assert (dend > 0.5)[parts["bump"]].mean() > 0.95 and not (spine > 0.5)[parts["bump"]].any()
    dend, spine = segment_classical(image, spacing=SPACING, config=ClassicalConfig(min_protrusion_um=1.0))
    assert (spine > 0.5)[parts["long1"]].mean() > 0.7 and (spine > 0.5)[parts["long2"]].mean() > 0.7
    assert (dend > 0.5)[parts["short"]].mean() > 0.95


@pytest.mark.xfail(strict=True, reason="protrusion candidates are joined by the one-voxel rim of foreground "
                   "that the block-majority shaft grid leaves uncovered, so a short protrusion takes the reach of "
                   "a long neighbour on the same side (issue #19 report)")
def test_short_protrusion_is_judged_on_its_own_reach():
    """A 0.7 µm spine 3 µm from a 1.5 µm spine on the same side (with more spines and
    bumps around): with ``min_protrusion_um`` = 1 the short one should be shaft whatever
    its neighbour reaches. Today a one-voxel rim along the shaft joins the two into one
    candidate and 90 % of the short spine comes out as spine."""
    shape = (17, 71, 201)
    z, y, x = _grid(shape)
    geo = dict(cz=4.0, cy=3.5, r=0.6)
    cyl = (z - 4.0) ** 2 + (y - 3.5) ** 2 <= 0.6 ** 2
    long = _protrusion(z, y, x, x0=10.0, side=-1, length=1.5, **geo) & ~cyl
    short = _protrusion(z, y, x, x0=13.0, side=-1, length=0.7, head=0.3, **geo) & ~cyl
    others = (_protrusion(z, y, x, x0=4.0, side=1, length=1.5, **geo)
              | _protrusion(z, y, x, x0=16.0, side=1, length=1.5, **geo)
              | _bump(z, y, x, x0=7.0, side=1, height=0.25, **geo)
              | _bump(z, y, x, x0=13.0, side=1, height=0.25, **geo))
    image = _render(cyl | long | short | others, SPACING, (0.3, 0.08, 0.08))
    dend, spine = segment_classical(image, spacing=SPACING, config=ClassicalConfig(min_protrusion_um=1.0))
    assert (spine > 0.5)[long].mean() > 0.7
    assert (dend > 0.5)[short].mean() > 0.95


@pytest.mark.xfail(strict=True, reason="scikit-image's 3D skeletonize (Lee) deletes straight prisms whose "
                   "cross-section is even by even (scikit-image#3757), so such a shaft has no centreline")
def test_centreline_of_even_width_straight_shaft():
    """A straight shaft whose cross-section is 4 x 4 voxels (a grid-aligned dendrite on the
    coarse shaft grid can look like this) still has a centreline along its length."""
    mask = np.zeros((9, 20, 100), bool)
    mask[2:6, 8:12, :] = True
    line = centreline(mask, spacing=(0.2, 0.2, 0.2), max_spine_length_um=4.0, min_length_um=3.0)
    assert np.ptp(np.argwhere(line)[:, 2]) > 80 if line.any() else False


# ---------------------------------------------------------------- whole method on phantoms


def _scores(ph):
    dend, spine = segment_classical(ph.image, spacing=ph.spacing)
    pred, true = dend > 0.5, ph.semantic == 1
    iou = (pred & true).sum() / (pred | true).sum()
    inst = spine_instances(spine, dend, spacing=ph.spacing, config=default_instance_config("classical"))
    match = match_spine_objects(inst.spine_labels, ph.spine_labels, spacing=ph.spacing)
    return float(iou), match


# (preset, seed): measured dendrite IoU, spine F1 / precision / recall (found / true) -> floors
#   confocal 0:   0.792, 0.652 / 0.784 / 0.558 (37 / 52)
#   confocal 1:   0.854, 0.545 / 0.750 / 0.429 (8 / 14)
#   two_photon 0: 0.234, 0.470 / 0.871 / 0.321 (31 / 84)  (truth is geometric; the 3.2 µm z blur
#                                                makes every shaft taller than it, hence the low IoU)
@pytest.mark.parametrize("preset, seed, iou_floor, f1_floor, precision_floor", [
    ("confocal", 0, 0.70, 0.56, 0.68),
    ("confocal", 1, 0.75, 0.47, 0.65),
    ("two_photon", 0, 0.20, 0.40, 0.75),
])
def test_phantom_scores_above_floors(preset, seed, iou_floor, f1_floor, precision_floor):
    """Dendrite IoU (probability > 0.5 against the shaft truth) and spine detection after
    instance finding (centres within 1 µm or IoU 0.3, one-to-one) stay above floors set
    10-15 % under the measured values."""
    ph = make_phantom(preset, seed=seed, shape=(24, 160, 160))
    iou, match = _scores(ph)
    assert iou > iou_floor
    assert match["f1"] > f1_floor and match["precision"] > precision_floor
    assert match["n_pred"] >= 0.3 * match["n_true"]


def test_phantom_segmentation_is_deterministic():
    """Same stack, same maps and diagnostics, bit for bit."""
    ph = make_phantom("confocal", seed=0, shape=(24, 160, 160))
    a = segment_classical(ph.image, spacing=ph.spacing, return_diagnostics=True)
    b = segment_classical(ph.image, spacing=ph.spacing, return_diagnostics=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert (a[0] > 0.5).any() and (a[1] > 0.5).any()


# ---------------------------------------------------------------- units


@pytest.fixture(scope="module")
def two_voxel_sizes():
    """One physical object, a cylinder (radius 0.6 µm, tilted 3° in the plane) with three
    1.5 µm spines, blurred and noisy on a (0.25, 0.05, 0.05) µm grid, and the same stack
    averaged 2 x 2 x 2 onto (0.5, 0.1, 0.1) µm. Returns, per grid: foreground, shaft and
    spine volumes (µm³), the diagnostics and the fraction of each spine labelled spine."""
    fine_spacing, shape = (0.25, 0.05, 0.05), (34, 142, 402)
    z, y, x = _grid(shape, fine_spacing)
    tilt = 0.05
    cyl = (z - 4.0) ** 2 + (y - 3.5 - tilt * (x - 10.0)) ** 2 <= 0.6 ** 2
    spines = [_protrusion(z, y - tilt * (x0 - 10.0), x, cz=4.0, cy=3.5, r=0.6, x0=x0, side=side, length=1.5) & ~cyl
              for x0, side in ((4.0, 1), (10.0, -1), (16.0, 1))]
    fine = _render(cyl | np.logical_or.reduce(spines), fine_spacing, (0.3, 0.08, 0.08), noise=20.0)

    def coarsen(a):
        return a.reshape(17, 2, 71, 2, 201, 2).mean(axis=(1, 3, 5))

    out = {}
    for name, image, spacing, masks in (("fine", fine, fine_spacing, spines),
                                         ("coarse", coarsen(fine), SPACING, [coarsen(m) > 0.5 for m in spines])):
        dend, spine, diag = segment_classical(image, spacing=spacing, return_diagnostics=True)
        voxel = float(np.prod(spacing))
        out[name] = dict(foreground=((dend > 0) | (spine > 0)).sum() * voxel, shaft=(dend > 0.5).sum() * voxel,
                         spine=(spine > 0.5).sum() * voxel, diag=diag,
                         spines=[float((spine > 0.5)[m].mean()) for m in masks])
    return out


def test_same_object_at_two_voxel_sizes(two_voxel_sizes):
    """Everything the method derives in µm agrees between the two voxel sizes: threshold
    within 5 % and each of the three spines is mostly spine on
    both grids (0.81-1.0 measured)."""
    fine, coarse = two_voxel_sizes["fine"], two_voxel_sizes["coarse"]
    assert coarse["diag"].threshold_high == pytest.approx(fine["diag"].threshold_high, rel=0.05)
    assert min(fine["spines"] + coarse["spines"]) > 0.7


@ZTRIM
def test_foreground_volume_does_not_depend_on_voxel_size(two_voxel_sizes):
    """Foreground volume and measured z elongation within 10 % between the two voxel sizes
    (26.2 / 23.3 µm³ and 1.12 / 1.0 measured)."""
    fine, coarse = two_voxel_sizes["fine"], two_voxel_sizes["coarse"]
    assert coarse["foreground"] == pytest.approx(fine["foreground"], rel=0.1)
    assert coarse["diag"].z_elongation == pytest.approx(fine["diag"].z_elongation, rel=0.1)


@pytest.mark.xfail(strict=True, reason="on the coarser grid the one-voxel rim left outside the block-majority "
                   "shaft joins the spines: 17.7 instead of 24.6 µm³ of shaft (issue #19 report)")
def test_shaft_volume_does_not_depend_on_voxel_size(two_voxel_sizes):
    """The shaft and spine volumes (µm³) agree within 15 % between the two voxel sizes."""
    fine, coarse = two_voxel_sizes["fine"], two_voxel_sizes["coarse"]
    assert coarse["shaft"] == pytest.approx(fine["shaft"], rel=0.15)
    assert coarse["spine"] == pytest.approx(fine["spine"], rel=0.15)
