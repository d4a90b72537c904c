"""SWC centreline files (Cannon et al. 1998): one node a row, coordinates and radius in µm.

A centreline table is a :class:`pandas.DataFrame` with the columns of :data:`SWC_COLUMNS`;
``parent`` is -1 for a root. x, y, z follow SWC's order; spinequant's arrays are (z, y, x).
"""

from __future__ import annotations

import io as _io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import InputError

SWC_COLUMNS = ["id", "type", "x", "y", "z", "radius", "parent"]
#: SWC structure identifiers used by spinequant (standard SWC: 3 = basal dendrite).
SWC_DENDRITE = 3


def write_swc(path: str | os.PathLike, nodes: pd.DataFrame, *, comments: list[str] | None = None) -> Path:
    """Write ``nodes`` (columns :data:`SWC_COLUMNS`, µm) to ``path`` atomically."""
    missing = [c for c in SWC_COLUMNS if c not in nodes.columns]
    if missing:
        raise InputError(f"A centreline table needs the columns {SWC_COLUMNS}; missing {missing}.")
    lines = [f"# {c}" for c in (comments or [])]
    lines.append("# units: micrometres; columns: " + " ".join(SWC_COLUMNS))
    for row in nodes[SWC_COLUMNS].itertuples(index=False):
        lines.append(f"{int(row.id)} {int(row.type)} {row.x:.4f} {row.y:.4f} {row.z:.4f} "
                     f"{row.radius:.4f} {int(row.parent)}")
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def read_swc(path: str | os.PathLike) -> pd.DataFrame:
    """Read an SWC file into a table with the columns of :data:`SWC_COLUMNS`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"The SWC file '{path}' does not exist. Check the path.")
    text = "\n".join(line for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
                     if line.strip() and not line.lstrip().startswith("#"))
    if not text:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in SWC_COLUMNS})
    try:
        table = pd.read_csv(_io.StringIO(text), sep=r"\s+", header=None, usecols=range(7),
                            names=SWC_COLUMNS, engine="python")
        table = table.astype({"id": np.int64, "type": np.int64, "parent": np.int64,
                              "x": float, "y": float, "z": float, "radius": float})
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(
            f"'{path}' is not a valid SWC file ({exc}). Each non-comment line needs 7 numbers: "
            f"id type x y z radius parent."
        ) from None
    known = set(table["id"]) | {-1}
    orphans = sorted(set(table["parent"]) - known)
    if orphans:
        raise InputError(f"'{path}' refers to parent nodes that do not exist: {orphans[:5]}.")
    return table
