"""Classical centreline: spines pruned, branches and dendrites leaving the volume kept."""

import numpy as np
import pytest

from spinequant.segment.classical.centreline import centreline, leaves_volume

SPACING = (0.2, 0.1, 0.1)


@pytest.fixture(scope="module")
def foreground():
    """A shaft along x through both x faces (y = 2 µm), a 1.5 µm spine at x = 4 µm, a 5.5 µm
    branch at x = 10 µm that ends inside, and a separate 1 µm blob."""
    shape = (11, 80, 140)
    z, y, x = np.indices(shape) * np.array(SPACING)[:, None, None, None]

    def tube(along_x, centre, start, stop, radius):
        across, along = (y, x) if along_x else (x, y)
        return ((z - 1.0) ** 2 + (across - centre) ** 2 <= radius ** 2) & (along >= start) & (along <= stop)

    return (tube(True, 2.0, 0, 14, 0.4) | tube(False, 4.0, 2.0, 3.5, 0.25)
            | tube(False, 10.0, 2.0, 7.5, 0.3) | tube(True, 6.5, 1.0, 2.0, 0.3))


def _points_um(line):
    return np.argwhere(line) * np.array(SPACING)


def test_spine_cut_branch_and_shaft_kept(foreground):
    line = centreline(foreground, spacing=SPACING, max_spine_length_um=4.0, min_length_um=3.0)
    z, y, x = _points_um(line).T
    assert line.any() and not (line & ~foreground).any()
    assert not np.any((np.abs(x - 4.0) < 0.3) & (y > 2.6))  # the spine
    assert y[np.abs(x - 10.0) < 0.3].max() > 7.0             # the branch, to its end
    assert not np.any((y > 6.0) & (x < 3.0))  # the blob is too short
    # The shaft runs on to within a radius of both faces.
    assert x.min() < 0.5 and x.max() > 13.5


def test_ends_leaving_the_volume_are_not_pruned(foreground):
    # With no border allowance, both shaft ends (3.7 and 3.6 µm from the nearest junction)
    # are side branches shorter than 4 µm.
    line = centreline(foreground, spacing=SPACING, max_spine_length_um=4.0, min_length_um=3.0,
                      border_um=0.0)
    x = _points_um(line)[:, 2]
    assert x.min() == pytest.approx(4.0) and x.max() == pytest.approx(10.0)


def test_leaves_volume_only_through_yx_faces(foreground):
    assert leaves_volume(np.array([5, 20, 3]), foreground, SPACING, 1.5)      # shaft end near x = 0
    assert not leaves_volume(np.array([5, 73, 100]), foreground, SPACING, 1.5)  # branch end inside
    assert not leaves_volume(np.array([5, 20, 3]), foreground, SPACING, 0.2)   # too far from the face
    top = np.zeros((11, 20, 20), dtype=bool)
    top[0, 8:12, 8:12] = True  # touching the top z plane does not count
    assert not leaves_volume(np.array([0, 10, 10]), top, SPACING, 1.5)


def test_empty_and_short_foreground():
    empty = np.zeros((5, 20, 20), dtype=bool)
    assert not centreline(empty, spacing=SPACING, max_spine_length_um=4.0, min_length_um=3.0).any()
    blob = empty.copy()
    blob[2, 5:15, 10] = True  # 0.9 µm long
    assert not centreline(blob, spacing=SPACING, max_spine_length_um=4.0, min_length_um=3.0).any()
    assert centreline(blob, spacing=SPACING, max_spine_length_um=4.0, min_length_um=0.5).sum() == 10
