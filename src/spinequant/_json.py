"""JSON-ready copies of settings and results (numpy numbers and arrays, tuples, paths)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def to_json(obj):
    """A copy of ``obj`` that :func:`json.dumps` accepts: dict keys become strings, tuples
    and arrays lists, numpy scalars Python numbers, paths strings."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj
