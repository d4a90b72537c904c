"""The network's maps averaged over orientations of each tile (test-time augmentation).

A network trained with flips and turns still answers a little differently on an image and on
its mirror image: on real projections the installed detector found the same spines on both
at F1 0.88 only (docs/real_data.md, "Trained to answer alike"). Averaging its maps over the
eight orientations of the pixel grid (four quarter turns, each also mirrored) makes the maps
of a turned or mirrored image the turned or mirrored maps, and the average ranks spines a
little better than any one orientation (docs/real_data.md, "Eight orientations averaged").
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ...errors import InputError

ORIENTATIONS = (1, 4, 8)
"""1: as given; 4: as given and mirrored left-right, up-down and both; 8: the four quarter
turns, each also mirrored left-right (the grid's whole symmetry group)."""


def check_orientations(n) -> int:
    """``n`` as an int if it is one of :data:`ORIENTATIONS`, else a clear error."""
    if isinstance(n, bool) or n not in ORIENTATIONS:
        raise InputError(f"orientations must be 1, 4 or 8 (the image as given; with its mirror "
                         f"images; with its quarter turns too), not {n!r}.")
    return int(n)


def _transforms(n: int) -> list[tuple[int, bool, bool]]:
    """(quarter turns, mirrored left-right, mirrored up-down) of each orientation."""
    if n == 4:
        return [(0, False, False), (0, True, False), (0, False, True), (0, True, True)]
    return [(k, mirror, False) for k in range(4) for mirror in (False, True)][:n]


def _orient(tiles: np.ndarray, turns: int, lr: bool, ud: bool) -> np.ndarray:
    out = np.rot90(tiles, turns, axes=(-2, -1))
    if lr:
        out = out[..., ::-1]
    if ud:
        out = out[..., ::-1, :]
    return out


def _restore(maps: np.ndarray, turns: int, lr: bool, ud: bool) -> np.ndarray:
    if ud:
        maps = maps[..., ::-1, :]
    if lr:
        maps = maps[..., ::-1]
    return np.rot90(maps, -turns, axes=(-2, -1))


def oriented(run: Callable[[np.ndarray], np.ndarray], n: int) -> Callable[[np.ndarray], np.ndarray]:
    """A ``run`` (tiles ``(B, C, [Z,] Y, X)`` in, maps ``(B, K, [Z,] Y, X)`` out, as
    :func:`~.tiling.sliding_window` calls it) that averages ``run``'s maps over ``n``
    orientations of the tiles in y/x, each map turned back before it is added. Costs ``n``
    passes of the network; ``n == 1`` returns ``run`` itself."""
    n = check_orientations(n)
    if n == 1:
        return run
    transforms = _transforms(n)

    def run_oriented(tiles: np.ndarray) -> np.ndarray:
        total = None
        for t in transforms:
            maps = np.asarray(run(np.ascontiguousarray(_orient(tiles, *t))), dtype=np.float32)
            maps = _restore(maps, *t)
            if total is None:
                total = np.array(maps, dtype=np.float32)     # a contiguous copy to add into
            else:
                total += maps
        total /= len(transforms)
        return total

    return run_oriented
