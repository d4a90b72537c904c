"""JSON-ready copies of settings and results (numpy numbers and arrays, tuples, paths)."""

from __future__ import annotations

from pathlib import Path

import math

import numpy as np


def to_json(obj):
    """A copy of ``obj`` that :func:`json.dumps` accepts: dict keys become strings, tuples
    and arrays lists, numpy scalars Python numbers, paths strings, and NaN or infinite
    numbers ``None`` (JSON has no NaN: strict readers refuse Python's ``NaN``).

    >>> to_json({1: (np.float32(0.5), float("nan")), "p": Path("a")})
    {'1': [0.5, None], 'p': 'a'}
    """
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, np.generic):
        return to_json(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
