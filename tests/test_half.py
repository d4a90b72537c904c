"""float32 -> float16 without NumPy's slow path for tiny values: the same bits as NumPy's cast."""

import numpy as np
import pytest

from spinequant._half import as_dtype, at_least, half, store


def _bits(a):
    return np.asarray(a, np.float16).view(np.uint16)


def test_half_gives_numpys_bits_for_every_tiny_value_and_a_sample_of_the_rest():
    # Every float32 of magnitude below 2^-14 on a stride of 61 bit patterns (all exponents and
    # rounding cases: ties to even at the subnormal steps, up to 2^-14 itself), both signs.
    tiny = np.arange(0, 0x38800000 + 2, 61, dtype=np.uint32).view(np.float32)
    for x in (tiny, -tiny):
        assert np.array_equal(_bits(half(x)), _bits(x.astype(np.float16)))
    rng = np.random.default_rng(0)
    anything = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 65504, 65519.99, 65520, 1e38, 2**-14, 2**-24,
                        2**-25, 3 * 2**-25, 5.96e-8, np.nan], np.float32)
    for x in (anything, special):
        with np.errstate(over="ignore", invalid="ignore"):     # NumPy warns of the overflow; so does half
            expected, got = x.astype(np.float16), half(x)
        nan = np.isnan(x)
        assert np.array_equal(_bits(got)[~nan], _bits(expected)[~nan]) and np.isnan(got[nan]).all()


def test_maps_are_stored_with_the_same_values_as_a_plain_assignment():
    rng = np.random.default_rng(1)
    maps = (rng.random((3, 40, 50)) ** 8).astype(np.float32)     # mostly tiny, as a network's background
    out = np.zeros((3, 40, 50), np.float16)
    store(out, maps)
    assert np.array_equal(_bits(out), _bits(maps.astype(np.float16)))
    plane = np.zeros((40, 50), np.float16)
    store(plane, maps[1])
    assert np.array_equal(_bits(plane), _bits(maps[1].astype(np.float16)))
    wide = np.zeros((40, 50), np.float32)
    store(wide, maps[2])
    assert np.array_equal(wide, maps[2])
    assert as_dtype(out, np.float16) is out and as_dtype(maps, np.float32) is maps
    assert np.array_equal(_bits(as_dtype(maps, np.float16)), _bits(maps.astype(np.float16)))


@pytest.mark.parametrize("level", [0.0, 0.05, 0.1, 0.375, 0.999, 1.0])
def test_at_least_compares_float16_maps_as_numpy_does(level):
    rng = np.random.default_rng(2)
    m = rng.random(100_000).astype(np.float16)
    m[:50] = 0
    m[50:100] = 1
    m[100:150] = np.float16(level)
    assert np.array_equal(at_least(m, level), m >= level)
    assert np.array_equal(at_least(m.astype(np.float32), level), m.astype(np.float32) >= level)
