import numpy as np
import pytest

from spinequant.errors import InputError
from spinequant.evaluate import resolvable_heads
from spinequant.evaluate.resolution import _largest_exact, _largest_greedy
from spinequant.synth import make_phantom


def test_heads_within_one_psf_count_once():
    # two heads one above the other, 1 µm apart in z (FWHM 3.2 µm): one blob; a third far off
    heads = [[0, 5, 5], [1.0, 5, 5], [0, 9, 5]]
    assert resolvable_heads(heads, (3.2, 0.45)).tolist() == [True, False, True]
    # with a STED-like PSF (0.6 µm along z) all three are separate
    assert resolvable_heads(heads, (0.6, 0.07)).all()


def test_largest_set_not_first_come():
    # a chain A-B-C where only neighbours clash: A and C are both kept, not B
    heads = [[0, 0, 0], [0, 0, 0.4], [0, 0, 0.8]]
    assert resolvable_heads(heads, (1.0, 0.45)).tolist() == [True, False, True]
    # a star: a centre within reach of four heads that are apart from each other
    star = [[0, 0, 0], [0, 0.4, 0], [0, -0.4, 0], [0, 0, 0.4], [0, 0, -0.4]]
    assert resolvable_heads(star, (1.0, 0.45)).tolist() == [False, True, True, True, True]


def test_exact_and_greedy_agree_on_small_clusters():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 2, size=(12, 3))
    clashes = [set() for _ in pts]
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            if np.linalg.norm((pts[i] - pts[j]) / [3.2, 0.45, 0.45]) < 1:
                clashes[i].add(j)
                clashes[j].add(i)
    exact = _largest_exact(range(len(pts)), clashes)
    greedy = _largest_greedy(range(len(pts)), clashes)
    for chosen in (exact, greedy):
        assert all(j not in clashes[i] for i in chosen for j in chosen)
    assert len(exact) >= len(greedy)
    assert resolvable_heads(pts, (3.2, 0.45)).sum() == len(exact)


def test_phantom_ceiling_follows_the_psf():
    ph = make_phantom("two_photon", seed=1001)
    heads = ph.spines[["head_z_um", "head_y_um", "head_x_um"]]
    keep = resolvable_heads(heads, ph.params["imaging"]["psf_fwhm_um"])
    assert 0.5 < keep.mean() < 1.0       # dense spines under a 3.2 µm z PSF: some unresolvable
    assert resolvable_heads(heads, (0.01, 0.01)).all()


@pytest.mark.parametrize("fwhm", [(0, 0.4), (1.0,), (np.nan, 0.4), (1, 2, 3, 4)])
def test_bad_psf_width_is_refused(fwhm):
    with pytest.raises(InputError, match="PSF width"):
        resolvable_heads([[0, 0, 0]], fwhm)
