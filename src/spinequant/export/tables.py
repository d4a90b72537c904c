"""Result tables as CSV, and as Parquet when pyarrow is installed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pandas as pd

from .._atomic import atomic_path


def has_parquet() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def write_table(path: str | os.PathLike, table: pd.DataFrame, *, parquet: bool | None = None) -> list[Path]:
    """Write ``table`` to ``path`` (``.csv``) and beside it ``.parquet`` when pyarrow is present.

    ``parquet=None`` writes Parquet exactly when pyarrow can be imported
    (``pip install 'spinequant[parquet]'``). Each file is written atomically.
    Returns the paths written.
    """
    path = Path(path).with_suffix(".csv")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    written = [path]
    if parquet or (parquet is None and has_parquet()):
        target = path.with_suffix(".parquet")
        with atomic_path(target) as tmp:
            table.to_parquet(tmp, index=False)
        written.append(target)
    return written
