"""Spines that do not pass through each other.

Spines are placed along a shaft at random (a Poisson process, random angles around it, some
given a neighbour that touches them), which lets two of them interpenetrate: in the
benchmark's phantoms a quarter of the STED heads intersected another head, which no real
spine does, and their truth then holds two heads where the image can show only one. A spine
whose drawn place overlaps one already placed is turned about the shaft, by the smallest
angle that clears every other spine; neighbours may touch. The turns draw no random numbers,
so a phantom without an overlap is exactly the one drawn before this rule.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .spines import Spine

#: Turns about the shaft tried, in order (degrees): the smallest first, either way round.
TURNS_DEG = tuple(s * a for a in range(15, 180, 15) for s in (1, -1)) + (180,)
#: Step of the points along a spine's cones that are tested against the other spines (µm);
#: an overlap shallower than half of it can pass.
STEP_UM = 0.02


class Occupied:
    """The cones (as segments with a radius, µm) of the spines placed so far."""

    def __init__(self, spines: list[Spine] = ()):
        self._a, self._b, self._r = [], [], []
        self._cache = None
        for spine in spines:
            self.add(spine)

    def add(self, spine: Spine) -> None:
        p = spine.prims
        self._a.append(p.a)
        self._b.append(p.b)
        self._r.append(np.maximum(p.ra, p.rb))
        self._cache = None

    def _segments(self):
        if self._cache is None:
            if self._a:
                self._cache = (np.concatenate(self._a), np.concatenate(self._b), np.concatenate(self._r))
            else:
                self._cache = (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
        return self._cache

    def overlaps(self, spine: Spine) -> bool:
        """Whether ``spine`` passes through a placed spine (touching is allowed)."""
        a, b, r = self._segments()
        if not len(r):
            return False
        lo, hi = spine.prims.bounds()
        near = (np.all(np.minimum(a, b) - r[:, None] < hi, axis=1)
                & np.all(np.maximum(a, b) + r[:, None] > lo, axis=1))
        if not near.any():
            return False
        points, radii = _points_along(spine)
        return bool(np.any(_distance_to_segments(points, a[near], b[near])
                           < radii[:, None] + r[near][None, :]))


def placed_clear(spine: Spine, occupied: Occupied, centre: np.ndarray, axis: np.ndarray
                 ) -> tuple[Spine | None, float]:
    """``spine`` as drawn, or turned about the shaft (the line through ``centre`` along the
    unit ``axis``) by the smallest angle of :data:`TURNS_DEG` that keeps it clear of every
    placed spine, and the angle (radians); None when no turn does."""
    if not occupied.overlaps(spine):
        return spine, 0.0
    for deg in TURNS_DEG:
        turned = _turned(spine, centre, axis, np.radians(deg))
        if not occupied.overlaps(turned):
            return turned, float(np.radians(deg))
    return None, 0.0


def _turned(spine: Spine, centre: np.ndarray, axis: np.ndarray, angle: float) -> Spine:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)  # Rodrigues

    def move(p):
        return (np.asarray(p) - centre) @ rot.T + centre

    prims = replace(spine.prims, a=move(spine.prims.a), b=move(spine.prims.b))
    return replace(spine, base=move(spine.base), head=move(spine.head),
                   direction=spine.direction @ rot.T, prims=prims, axis=move(spine.axis))


def _points_along(spine: Spine) -> tuple[np.ndarray, np.ndarray]:
    """Points every :data:`STEP_UM` along each cone's axis, with the cone's radius there."""
    p = spine.prims
    points, radii = [], []
    for a, b, ra, rb in zip(p.a, p.b, p.ra, p.rb):
        n = max(int(np.ceil(np.linalg.norm(b - a) / STEP_UM)), 1)
        t = np.linspace(0.0, 1.0, n + 1)[:, None]
        points.append(a + t * (b - a))
        radii.append(ra + t[:, 0] * (rb - ra))
    return np.concatenate(points), np.concatenate(radii)


def _distance_to_segments(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(P, Q) distances from each point to each segment a->b."""
    ab = b - a
    length2 = np.maximum(np.einsum("qi,qi->q", ab, ab), 1e-12)
    ap = points[:, None, :] - a[None, :, :]
    t = np.clip(np.einsum("pqi,qi->pq", ap, ab) / length2, 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None, :] - closest, axis=-1)
