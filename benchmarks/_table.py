"""Markdown tables for benchmark output (no extra dependency)."""

from __future__ import annotations

import pandas as pd


def markdown(table: pd.DataFrame, *, digits: int = 2) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, table.columns)) + " |",
             "|" + "|".join("---" for _ in table.columns) + "|"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines) + "\n"
