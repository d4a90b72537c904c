"""The two costly steps of the imaging model, split into slabs that run in threads.

numpy's random generators and scipy.ndimage release the GIL, so slabs run in parallel on
the cores there are. The slabs are fixed (not tied to the number of threads) and each has its
own generator seeded from the caller's, so the result is the same on any machine.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage as ndi

WORKERS = max(1, min(4, os.cpu_count() or 1))
N_SLABS = 8


def slabs(n: int, k: int = N_SLABS) -> list[slice]:
    edges = np.linspace(0, n, min(k, n) + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def run(fn, items) -> None:
    items = list(items)
    if WORKERS == 1 or len(items) == 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(fn, items))


def blur(x: np.ndarray, sigma, *, truncate: float) -> np.ndarray:
    """Gaussian filter (float32 result) as one 1D pass per axis; each pass runs in slabs cut
    across another axis, which leaves every line it filters whole."""
    src = np.asarray(x, np.float32)
    for axis, s in enumerate(sigma):
        if s <= 0:
            continue
        dst = np.empty_like(src)
        across = 1 if axis == 0 else 0

        def one(sl, src=src, dst=dst, axis=axis, s=s, across=across):
            index = [slice(None)] * 3
            index[across] = sl
            index = tuple(index)
            ndi.gaussian_filter1d(src[index], s, axis=axis, truncate=truncate, output=dst[index])

        run(one, slabs(src.shape[across]))
        src = dst
    return src if src is not x else src.copy()


def shot_and_read_noise(expected_photons: np.ndarray, scale: float, offset: float, read_sigma: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Poisson(λ) − λ plus Gaussian read noise (float32 photons), λ = scale · expected + offset."""
    noise = np.empty(expected_photons.shape, np.float32)
    parts = slabs(expected_photons.shape[0])
    seeds = rng.integers(0, 2**63, size=len(parts))

    def one(i):
        sl = parts[i]
        gen = np.random.default_rng(int(seeds[i]))
        lam = np.multiply(expected_photons[sl], scale, dtype=np.float64)
        lam += offset
        part = gen.poisson(lam).astype(np.float32)
        np.subtract(part, lam, out=part, casting="unsafe")
        if read_sigma > 0:
            part += gen.standard_normal(part.shape, dtype=np.float32) * np.float32(read_sigma)
        noise[sl] = part

    run(one, range(len(parts)))
    return noise
