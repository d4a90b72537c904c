"""Cell bodies in a stack: left out of the network's intensity levels, and no spine on them.

A cell body in the field is a bright region far thicker than any dendrite. On a two-photon
phantom with one (``n_somata=(1, 1)``) it held the upper percentile of the normalisation at
4x the dendrites' and the shipped network found 15 % of the spines instead of 60 %; with the
levels right, the network saw the body at full contrast and called spines on its surface
(docs/real_data.md, "A cell body in the field"). With the model card's
``normalisation.body_radius_um`` set, the bright regions of a stack whose core lies that far
from their edge, grown by that radius and a halo of :data:`BODY_HALO_UM` (the blur of their
light), are found on a coarse grid of bin maxima (:func:`coarse_maxima`, :func:`body_cores`):
their voxels are left out of the percentiles (:func:`levels_and_bodies`), the spine maps are
cleared there, so that no spine is called on a body or within the halo, and the dendrite map
on the bodies themselves, so that a body is not measured as a dendrite
(:meth:`CellBodies.clear`).
Only in stacks (:func:`looks_for_bodies`): in a single plane crossings of dendrites and thick
saturated dendrites look the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .normalise import MAX_SAMPLE, NormaliseConfig, as_config, levels_of

#: Edge (µm, at most) of the y/x bins whose maxima :func:`body_cores` looks at.
BODY_BIN_UM = 0.75
#: Around a cell body, the blur of its light is left out too, to this distance (µm).
BODY_HALO_UM = 2.0
#: Most bins of :func:`coarse_maxima` searched for cell bodies: the search holds the grid
#: (in the stack's type) and about 4 bytes a bin more, its boolean grids (the distance
#: transforms run slab by slab, :data:`BODY_SLAB_BINS`): on 2^28 bins, 4.3 G voxels at
#: 0.094 µm, 120 s and 968 MB above a uint16 grid of 512 MB (``benchmarks/body_search.py``).
#: The 21 GB benchmark volume (661 M bins) is not searched, and a run says so
#: (:func:`body_search_skipped`).
BODY_MAX_BINS = 2 ** 28
#: Bins of one slab of the distance transforms (on 2^27 bins, 578 MB above the grid in slabs
#: against 1,036 MB in one piece).
BODY_SLAB_BINS = 2 ** 23
#: A cell body's halo lies below the first percentiles: the bodies are looked for again at
#: the new ones, at most this many times.
BODY_ROUNDS = 4


@dataclass(frozen=True)
class CellBodies:
    """Where a stack's cell bodies lie: bins (bool, planes x y bins x x bins) of ``edge`` x
    ``edge`` px in y/x (bins at the far edges are partial), ``bodies`` the bodies themselves
    (their cores grown by the body radius), ``halo`` with the halo of :data:`BODY_HALO_UM`."""

    bodies: np.ndarray
    halo: np.ndarray
    edge: int

    @classmethod
    def from_cores(cls, cores: np.ndarray, coarse_spacing, radius_um: float, edge: int) -> "CellBodies":
        cores = cores.reshape(-1, *cores.shape[-2:])
        return cls(grown(cores, coarse_spacing, radius_um), grown(cores, coarse_spacing, radius_um + BODY_HALO_UM),
                   edge)

    def clear(self, dendrite, spine_maps, origin=(0, 0, 0)) -> None:
        """Set, in place, the ``spine_maps`` (spine, head; None entries skipped) to 0 in the
        bodies and their halo and the ``dendrite`` map (or None) in the bodies; all are 3D
        arrays of one window at ``origin`` (z, y, x) of the stack."""
        self._clear(self.halo, [m for m in spine_maps if m is not None], origin)
        if dendrite is not None:
            self._clear(self.bodies, [dendrite], origin)

    def _clear(self, bins, maps, origin) -> None:
        if not maps:
            return
        nz, ny, nx = maps[0].shape
        z0, y0, x0 = (int(o) for o in origin)
        rows = np.arange(y0, y0 + ny) // self.edge
        cols = np.arange(x0, x0 + nx) // self.edge
        for z in range(nz):
            sub = bins[z0 + z, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]     # the window's bins
            if not sub.any():
                continue
            r, c = np.flatnonzero(sub.any(axis=1)), np.flatnonzero(sub.any(axis=0))
            ys = np.flatnonzero((rows - rows[0] >= r[0]) & (rows - rows[0] <= r[-1]))
            xs = np.flatnonzero((cols - cols[0] >= c[0]) & (cols - cols[0] <= c[-1]))
            inside = sub[np.ix_(rows[ys] - rows[0], cols[xs] - cols[0])]
            for m in maps:
                m[z, ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1][inside] = 0

    def save(self, folder) -> None:
        """Write to ``folder`` (made if missing), for :meth:`load`."""
        from pathlib import Path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "bodies.npy", self.bodies)
        np.save(folder / "halo.npy", self.halo)
        (folder / "edge.txt").write_text(str(self.edge))

    @classmethod
    def load(cls, folder) -> "CellBodies":
        """What :meth:`save` wrote, memory-mapped: a block reads only its own bins."""
        from pathlib import Path

        folder = Path(folder)
        return cls(np.load(folder / "bodies.npy", mmap_mode="r"), np.load(folder / "halo.npy", mmap_mode="r"),
                   int((folder / "edge.txt").read_text()))

    def summary(self, spacing) -> dict:
        """What a run records: how many bodies (connected regions of bins) and their volume
        (µm³, of whole bins: an upper bound), without and with the halo."""
        import cc3d

        try:         # 16-bit labels where they fit: a uint32 copy of a 2^28-bin grid is 1 GB
            n = cc3d.connected_components(self.bodies.view(np.uint8), connectivity=26, out_dtype=np.uint16,
                                          return_N=True)[1]
        except ValueError:
            n = cc3d.connected_components(self.bodies.view(np.uint8), connectivity=26, return_N=True)[1]
        n = int(n)
        bin_um3 = float(spacing[0]) * float(spacing[1]) * float(spacing[2]) * self.edge ** 2
        volume = round(float(self.bodies.sum()) * bin_um3, 1)
        return {"found": n, "volume_um3": volume,
                "with_halo_um3": round(float(self.halo.sum()) * bin_um3, 1), "halo_um": BODY_HALO_UM,
                "note": f"{n} cell bod{'y' if n == 1 else 'ies'} found ({volume:.0f} µm³): left out of "
                        f"the network's intensity levels and of the dendrites; no spine is called on "
                        f"a body or within {BODY_HALO_UM:g} µm of it"}


def levels_and_bodies(image: np.ndarray, config: NormaliseConfig | dict | None = None, *,
                      spacing=None) -> tuple[tuple[float, float], CellBodies | None]:
    """The (low, high) intensities at the configured percentiles and, where it has any, the
    cell bodies of ``image``: with its ``spacing`` (µm) and a ``body_radius_um``, the levels
    of the voxels outside them (:func:`levels_outside_bodies`)."""
    config = as_config(config)
    image = np.asarray(image)
    step = max(1, int(np.ceil(image.size / MAX_SAMPLE)))
    flat = image.reshape(-1)[::step]
    levels = levels_of(flat, config)
    if spacing is None or not looks_for_bodies(image.shape, spacing, config):
        return levels, None
    coarse, coarse_spacing, b = coarse_maxima(image, spacing)
    if body_cores(coarse, coarse_spacing, levels, config.body_radius_um) is None:
        return levels, None
    index = np.unravel_index(np.arange(flat.size, dtype=np.int64) * step, image.shape)
    cell = (*index[:-2], index[-2] // b, index[-1] // b)
    levels, cores = levels_outside_bodies(flat, cell, coarse, coarse_spacing, config)
    return levels, CellBodies.from_cores(cores, coarse_spacing, config.body_radius_um, b)


def looks_for_bodies(shape, spacing, config: NormaliseConfig) -> bool:
    """Whether cell bodies are looked for in an image of ``shape``: with a
    ``body_radius_um``, in stacks of two planes or more, at least 4 ``body_radius_um`` wide
    and high, whose :func:`coarse_maxima` have at most :data:`BODY_MAX_BINS` bins. Not in a
    single plane (a 2D image, a projection): there
    crossings of dendrites and thick saturated dendrites are as thick as a cell body (on 23 of
    dendritic2's 408 benchmark images and sizes; docs/real_data.md)."""
    bins = _search_bins(shape, spacing, as_config(config))
    return bins is not None and bins <= BODY_MAX_BINS


def body_search_skipped(shape, spacing, config) -> dict | None:
    """What a run records when a stack of ``shape`` would be looked at for cell bodies but
    its :func:`coarse_maxima` have more than :data:`BODY_MAX_BINS` bins (None otherwise): so
    that a spine on a cell body in a very large volume is not counted silently."""
    bins = _search_bins(shape, spacing, as_config(config))
    if bins is None or bins <= BODY_MAX_BINS:
        return None
    return {"searched": False, "bins": bins, "max_bins": BODY_MAX_BINS,
            "note": f"the stack was not looked at for cell bodies: its grid of {bin_edge(spacing)}-px bins has "
                    f"{bins:,} bins, more than the {BODY_MAX_BINS:,} searched; if a cell body is in view, "
                    f"spines on it or beside it are counted (analyse the region around it as a stack "
                    f"of its own)"}


def _search_bins(shape, spacing, config: NormaliseConfig) -> int | None:
    """The bins of :func:`coarse_maxima` of a stack of the kind looked at for cell bodies, or
    None for a kind that is not (see :func:`looks_for_bodies`)."""
    if not (config.body_radius_um > 0 and len(shape) >= 3 and shape[-3] >= 2):
        return None
    if min(n * float(s) for n, s in zip(shape[-2:], spacing[-2:])) < 4 * config.body_radius_um:
        return None              # a field narrower than two bodies: a dendrite may fill it
    b = bin_edge(spacing)
    return int(np.prod(shape[:-2])) * -(-shape[-2] // b) * -(-shape[-1] // b)


def bin_edge(spacing) -> int:
    """The y/x bin of :func:`coarse_maxima` in pixels: the largest power of two at most
    :data:`BODY_BIN_UM` wide (a power of two, so that it divides the 256-px tiles of a
    chunked run and the bins of every tile line up)."""
    b = 1
    while 2 * b * float(spacing[-1]) <= BODY_BIN_UM and b < 256:
        b *= 2
    return b


def coarse_maxima(image: np.ndarray, spacing, *, edge: int | None = None):
    """(maxima of ``edge`` x ``edge`` px bins in y/x, the bins' spacing, ``edge``); planes
    (z) are kept. Bins at the image's far edges are partial. A plane at a time, so no copy
    of the image is made."""
    b = bin_edge(spacing) if edge is None else edge
    image = np.asarray(image)
    ny, nx = image.shape[-2:]
    planes = image.reshape(-1, ny, nx)
    coarse = np.empty((planes.shape[0], -(-ny // b), -(-nx // b)), image.dtype)
    for plane, out in zip(planes, coarse):
        rows = np.maximum.reduceat(plane, np.arange(0, ny, b), axis=0)
        out[...] = np.maximum.reduceat(rows, np.arange(0, nx, b), axis=1)
    coarse = coarse.reshape(*image.shape[:-2], *coarse.shape[-2:])
    coarse_spacing = (*(float(s) for s in spacing[:-2]), float(spacing[-2]) * b, float(spacing[-1]) * b)
    return coarse, coarse_spacing, b


def body_cores(coarse: np.ndarray, coarse_spacing, levels, radius_um: float) -> np.ndarray | None:
    """The cores of cell bodies: bins above the middle of ``levels`` (low, high) whose region
    reaches ``radius_um`` from its edge there; None when there is none. (Not above ``high``
    itself: where a body sets it, the voxels above it are its brightest, scattered by the
    noise.)"""
    middle = 0.5 * (levels[0] + levels[1])
    core = distance_test(lambda rows: coarse[..., rows, :] >= middle, coarse.shape, coarse_spacing,
                         radius_um, at_least=True)
    return core if core.any() else None


def grown(cores: np.ndarray, coarse_spacing, um: float) -> np.ndarray:
    """The bins within ``um`` of ``cores``."""
    return distance_test(lambda rows: ~cores[..., rows, :], cores.shape, coarse_spacing, um, at_least=False)


def distance_test(mask_of, shape, spacing, um: float, *, at_least: bool) -> np.ndarray:
    """Where the distance (µm) of a grid's bins to its nearest bin outside a mask is at least
    ``um`` (``at_least``) or at most ``um``: ``mask_of(rows)`` gives the mask's rows (a slice
    along the grid's y axis, the second-last). Slab by slab along y, each with ``um`` of rows
    on either side: a bin's nearest zero within ``um`` lies in its slab, and a slab's missing
    zeros only make distances longer, so the answer is the whole grid's
    (``test_the_search_for_cell_bodies_in_slabs_gives_the_whole_grids_answer``) in a fraction
    of its memory."""
    # edt, not scipy: scipy's transform holds several int32 and float64 copies of the grid (on
    # the 21 GB benchmark volume's 661 M bins the process passed 24 GB and was killed)
    import edt

    ny = shape[-2]
    per_row = max(1, int(np.prod(shape)) // max(ny, 1))
    reach = int(np.ceil(um / float(spacing[-2]))) + 1
    rows = max(1, BODY_SLAB_BINS // per_row - 2 * reach)
    out = np.empty(shape, bool)
    for y0 in range(0, ny, rows):
        y1 = min(ny, y0 + rows)
        a, b = max(0, y0 - reach), min(ny, y1 + reach)
        d = edt.edt(np.ascontiguousarray(mask_of(slice(a, b))).view(np.uint8), anisotropy=tuple(spacing))
        d = d[..., y0 - a:y1 - a, :]
        out[..., y0:y1, :] = d >= um if at_least else d <= um
    return out


def levels_outside_bodies(values: np.ndarray, cell, coarse: np.ndarray, coarse_spacing,
                          config: NormaliseConfig) -> tuple[tuple[float, float], np.ndarray]:
    """The percentile levels of ``values`` (a sample of an image) without those in cell
    bodies and their halo, and the bodies' cores: ``cell`` holds each value's bin in
    ``coarse`` (:func:`coarse_maxima`). The bodies are looked for at the percentiles, then
    again at those left without them, until no new one appears (:data:`BODY_ROUNDS` at most);
    all of an image's bins in bodies keep every value out only while some are left."""
    lo, hi = levels_of(values, config)
    cores = np.zeros(coarse.shape, bool)
    for _ in range(BODY_ROUNDS):
        core = body_cores(coarse, coarse_spacing, (lo, hi), config.body_radius_um)
        if core is None or not (core & ~cores).any():
            break
        cores |= core
        keep = ~grown(cores, coarse_spacing, config.body_radius_um + BODY_HALO_UM)[cell]
        if not keep.any():
            break
        lo, hi = levels_of(values[keep], config)
    return (lo, hi), cores
