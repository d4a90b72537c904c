"""What a run records about itself in ``run.json``: inputs, settings, versions, timings."""

from __future__ import annotations

import hashlib
import json
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from .._json import to_json

RUN_FILE = "run.json"
_PACKAGES = ("spinequant", "numpy", "scipy", "scikit-image", "tifffile", "zarr", "pandas",
             "connected-components-3d", "edt", "torch", "trimesh", "roifile")


def array_sha256(data: np.ndarray) -> str:
    """Checksum of the analysed voxels (format-independent: same data, same checksum)."""
    h = hashlib.sha256()
    h.update(str((data.shape, str(data.dtype))).encode())
    h.update(np.ascontiguousarray(data).data)
    return h.hexdigest()


def versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_run_json(out_dir: Path, record: dict) -> Path:
    path = Path(out_dir) / RUN_FILE
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(to_json(record), indent=2), encoding="utf-8")
    return path


def read_run_json(out_dir: Path) -> dict | None:
    path = Path(out_dir) / RUN_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
