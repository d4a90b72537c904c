"""Exact order statistics (medians, percentiles) of voxel values read part by part (tiles of a volume).

A volume larger than memory cannot be sorted. For 8- and 16-bit images a histogram of the
values is exact and takes one pass; for other types a histogram pass finds the bins of the
wanted ranks and a further pass reads the values in and around them, so the result is the
value numpy's ``median`` or ``percentile`` would give on all values at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

#: Bins of the histogram that locates the wanted ranks among values that are not 8- or 16-bit.
BINS = 1 << 16


def exact_histogram_dtype(dtype) -> bool:
    """Whether values of ``dtype`` can be counted in one exact histogram (8- and 16-bit integers)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "ui" and dtype.itemsize <= 2


def value_histogram(values: np.ndarray) -> np.ndarray:
    """Counts of every possible value of an 8- or 16-bit integer array (index: value - the
    type's minimum); add the histograms of several bands."""
    dtype = np.dtype(values.dtype)
    offset = int(np.iinfo(dtype).min)
    return np.bincount(values.reshape(-1).astype(np.int64) - offset, minlength=1 << (8 * dtype.itemsize))


def ranks_from_histogram(histogram: np.ndarray, dtype, ranks) -> list[float]:
    """The values at 0-based ``ranks`` (ascending) of the values counted by :func:`value_histogram`."""
    cumulative = np.cumsum(histogram)
    offset = int(np.iinfo(np.dtype(dtype)).min)
    return [float(np.searchsorted(cumulative, r, side="right") + offset) for r in ranks]


def order_statistics(values: Callable[[], Iterator[np.ndarray]], ranks, dtype) -> list[float]:
    """The values at 0-based ``ranks`` (ascending order) of all values ``values()`` yields
    (each call a fresh pass, part by part). One pass for 8- and 16-bit integers, else three
    (range, histogram, the values of the ranks' bins)."""
    if exact_histogram_dtype(dtype):
        histogram = None
        for v in values():
            h = value_histogram(v)
            histogram = h if histogram is None else histogram + h
        return ranks_from_histogram(histogram, dtype, ranks)
    low, high = np.inf, -np.inf
    for v in values():
        if v.size:
            low, high = min(low, float(v.min())), max(high, float(v.max()))
    edges = np.linspace(low, high, BINS + 1)
    histogram = np.zeros(BINS, np.int64)
    for v in values():
        histogram += np.histogram(v, bins=edges)[0]
    cumulative = np.cumsum(histogram)
    bins = [int(np.searchsorted(cumulative, r, side="right")) for r in ranks]
    # a bin either side: the histogram's bin of a value on an edge may differ from a comparison
    lo, hi = edges[max(min(bins) - 1, 0)], edges[min(max(bins) + 2, BINS)]
    below, kept = 0, []
    for v in values():
        below += int(np.count_nonzero(v < lo))
        kept.append(v[(v >= lo) & (v <= hi)])
    kept = np.sort(np.concatenate(kept))
    return [float(kept[r - below]) for r in ranks]


def median(values: Callable[[], Iterator[np.ndarray]], n: int, dtype) -> float:
    """``np.median`` of the ``n`` values of float32 ``values()`` passes (the mean of the two
    middle ones, in float32 as numpy takes it)."""
    middle = order_statistics(values, ((n - 1) // 2, n // 2), dtype)
    return float(np.mean(np.asarray(middle, np.float32)))


def percentile(values: Callable[[], Iterator[np.ndarray]], n: int, q: float, dtype) -> float:
    """``np.percentile(all values, q)`` (numpy's default linear method) of the ``n`` values of
    ``values()`` passes."""
    rank = q / 100.0 * (n - 1)
    below = int(np.floor(rank))
    a, b = order_statistics(values, (below, min(below + 1, n - 1)), dtype)
    t = rank - below
    # numpy's interpolation, including its form for t >= 0.5 (the same float result)
    return float(b - (b - a) * (1 - t)) if t >= 0.5 else float(a + (b - a) * t)
