"""float32 to float16, bit for bit as NumPy casts it, without NumPy's slow path for tiny values.

NumPy casts a float32 to a normal float16 in a few nanoseconds, but takes some 60 ns for each
value whose float16 is subnormal (below 2^-14, about 6.1e-5) or zero: the background of a
network's probability maps, which is most of a stack. Storing the maps of a 101 x 1024 x 1024
stack as float16 took 11 of the 33 s of its segmentation that way (docs/neural.md, "Speed").
Here the normal results are cast by NumPy (with the tiny values set to 0 first, which it casts
fast) and the subnormal ones are written as their bit patterns: a float16 subnormal is
m x 2^-24 with m = |x| x 2^24 rounded half to even (m = 1024 is 2^-14, the smallest normal,
whose bit pattern is 1024 too), the sign in the top bit.
"""

from __future__ import annotations

import numpy as np

_SMALLEST_NORMAL = np.float32(2.0 ** -14)
_SUBNORMAL_STEP = np.float32(2.0 ** 24)


def half(values) -> np.ndarray:
    """``np.asarray(values, np.float32).astype(np.float16)``, the same bits, faster where many
    values are below 2^-14 in magnitude."""
    v = np.asarray(values, dtype=np.float32)
    magnitude = np.abs(v)
    small = magnitude < _SMALLEST_NORMAL           # NaN is not
    if not small.any():
        return v.astype(np.float16)
    out = np.where(small, np.float32(0.0), v).astype(np.float16)
    np.fmin(magnitude, _SMALLEST_NORMAL, out=magnitude)   # fmin: NaN gives the bound, not NaN
    magnitude *= _SUBNORMAL_STEP
    m = np.rint(magnitude, out=magnitude).astype(np.uint16)
    negative = np.signbit(v)
    if negative.any():                             # probability maps have none
        m |= negative.view(np.uint8).astype(np.uint16) << 15
    np.copyto(out.view(np.uint16), m, where=small)
    return out


def at_least(values: np.ndarray, level: float) -> np.ndarray:
    """``values >= level`` as NumPy compares a float16 array with a float (in float16), for
    maps in [0, 1]: a float16's bit patterns sort as its values when it is not negative, and
    comparing them as integers is some 10x faster than NumPy's float16 comparison."""
    values = np.asarray(values)
    if values.dtype != np.float16:
        return values >= level
    return values.view(np.uint16) >= np.float16(level).view(np.uint16)


def as_dtype(values, dtype) -> np.ndarray:
    """``values`` as ``dtype`` (not copied when they are already): through :func:`half` for float16."""
    values = np.asarray(values)
    if np.dtype(dtype) == np.float16 and values.dtype != np.float16:
        return half(values)
    return values.astype(dtype, copy=False)


def store(out: np.ndarray, values) -> None:
    """``out[...] = values``, through :func:`half` when ``out`` is float16 (plane by plane of a
    stack: its scratch arrays stay small and are reused, not fresh pages each time)."""
    if out.dtype != np.float16:
        out[...] = values
    elif out.ndim >= 3 and np.shape(values) == out.shape:
        for plane, plane_values in zip(out, values):
            plane[...] = half(plane_values)
    else:
        out[...] = half(values)
