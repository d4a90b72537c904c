"""The skeleton graph on small skeletons with known answers."""

import numpy as np
import pytest

from spinequant.skeleton_graph import (keep_long_components, neighbour_offsets, prune_side_branches,
                                       skeleton_tree, spanning_tree, tree_length, voxel_graph)


def _plane(shape, pixels):
    mask = np.zeros(shape, dtype=bool)
    for p in pixels:
        mask[p] = True
    return mask


def _t_junction(short=3, long=8):
    """A shaft along x (row 10, 30 pixels long) with a short branch up from x = 10 and a long
    branch down from x = 20; each shaft end is 10 pixels from its junction."""
    mask = np.zeros((25, 31), dtype=bool)
    mask[10, :] = True
    mask[10 - short:10, 10] = True
    mask[11:11 + long, 20] = True
    return mask


def _node(coords, pixel):
    return int(np.flatnonzero((coords == pixel).all(axis=1))[0])


def test_neighbour_offsets_cover_the_neighbourhood_once():
    for ndim, count in ((2, 4), (3, 13)):
        half = neighbour_offsets(ndim)
        assert len(half) == count
        full = {tuple(o) for o in half} | {tuple(-o) for o in half}
        assert len(full) == 3 ** ndim - 1


def test_line_edges_have_lengths_in_um():
    line = np.zeros((1, 1, 6), dtype=bool)
    line[0, 0, :] = True
    coords, graph = voxel_graph(line, (2.0, 1.0, 0.3))
    assert coords.tolist() == [[0, 0, k] for k in range(6)]
    assert graph.nnz == 5 and np.allclose(graph.data, 0.3)
    assert np.all(graph.tocoo().row < graph.tocoo().col)  # each edge once, earlier -> later


def test_anisotropic_diagonal_length():
    diagonal = np.zeros((4, 4, 4), dtype=bool)
    diagonal[np.arange(4), np.arange(4), np.arange(4)] = True
    _, tree = skeleton_tree(diagonal, (0.5, 0.2, 0.1))
    assert tree_length(tree) == pytest.approx(3 * np.sqrt(0.25 + 0.04 + 0.01))
    along_z = np.zeros((5, 3, 3), dtype=bool)
    along_z[:, 1, 1] = True
    assert tree_length(skeleton_tree(along_z, (0.5, 0.2, 0.1))[1]) == pytest.approx(2.0)


def test_spanning_tree_opens_loops_at_long_edges():
    square = np.ones((2, 2), dtype=bool)  # 4 sides of 1 µm and 2 diagonals of sqrt(2) µm
    coords, graph = voxel_graph(square, (1.0, 1.0))
    assert graph.nnz == 6
    tree = spanning_tree(graph)
    assert (tree != tree.T).nnz == 0
    assert tree.nnz == 2 * 3 and tree_length(tree) == pytest.approx(3.0)
    ring = np.zeros((5, 5), dtype=bool)
    ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True  # 16 pixels in a loop
    coords, tree = skeleton_tree(ring, (1.0, 1.0))
    assert len(coords) == 16 and tree.nnz == 2 * 15
    assert np.diff(tree.indptr).max() == 2  # a path: the loop opened once


def test_short_branch_is_cut_long_branch_and_junctions_stay():
    mask = _t_junction(short=3, long=8)
    coords, tree = skeleton_tree(mask, (1.0, 1.0))
    keep = prune_side_branches(tree, 5.0)
    kept = {tuple(c) for c in coords[keep]}
    assert kept == {tuple(c) for c in np.argwhere(mask)} - {(7, 10), (8, 10), (9, 10)}
    assert (10, 10) in kept  # the junction belongs to the shaft


def test_branch_of_exactly_the_limit():
    coords, tree = skeleton_tree(_t_junction(short=3, long=8), (1.0, 1.0))
    # The short branch is 3 µm from its end to the junction.
    assert not prune_side_branches(tree, 3.0)[_node(coords, (7, 10))]
    assert prune_side_branches(tree, 3.0, inclusive=False)[_node(coords, (7, 10))]
    assert prune_side_branches(tree, 2.9)[_node(coords, (7, 10))]


def test_anisotropic_spacing_changes_which_branch_is_short():
    # Rows are 0.25 µm apart: the 8-pixel branch is 2 µm long; the shaft's ends stay 10 µm away.
    coords, tree = skeleton_tree(_t_junction(short=3, long=8), (0.25, 1.0))
    keep = prune_side_branches(tree, 2.0)
    assert not keep[_node(coords, (18, 20))] and not keep[_node(coords, (7, 10))]
    assert keep[_node(coords, (10, 0))] and keep[_node(coords, (10, 30))]


def test_protected_ends_and_per_junction_limits():
    coords, tree = skeleton_tree(_t_junction(short=3, long=8), (1.0, 1.0))
    short_end = _node(coords, (7, 10))
    protected = np.zeros(len(coords), dtype=bool)
    protected[short_end] = True
    assert prune_side_branches(tree, 5.0, protected=protected)[short_end]
    limit = np.full(len(coords), 1.0)
    limit[_node(coords, (10, 20))] = 9.0  # only the long branch's junction allows a long cut
    keep = prune_side_branches(tree, limit)
    assert keep[short_end] and not keep[_node(coords, (18, 20))]


def test_two_branches_at_one_junction_cascade():
    # A Y at the shaft's end: once the first arm (in node order) is cut, its junction is a
    # path node, and the other arm with the shaft forms one path with no junction, so it stays.
    mask = np.zeros((9, 12), dtype=bool)
    mask[4, :8] = True
    mask[3, 8] = mask[2, 9] = True
    mask[5, 8] = True
    coords, tree = skeleton_tree(mask, (1.0, 1.0))
    keep = prune_side_branches(tree, 3.0)
    assert keep.sum() == len(coords) - 2
    assert not keep[_node(coords, (2, 9))] and keep[_node(coords, (5, 8))]


def test_keep_long_components():
    mask = np.zeros((5, 20), dtype=bool)
    mask[1, 0:4] = True   # 3 µm
    mask[3, 5:16] = True  # 10 µm
    coords, tree = skeleton_tree(mask, (1.0, 1.0))
    keep = keep_long_components(tree, np.ones(len(coords), dtype=bool), 5.0)
    assert {tuple(c) for c in coords[keep]} == {(3, x) for x in range(5, 16)}
    # Length counts only the kept nodes: halving the long line drops it too.
    half = coords[:, 1] < 10
    assert not keep_long_components(tree, half, 5.0).any()
    assert not keep_long_components(tree, np.zeros(len(coords), dtype=bool), 0.0).any()
