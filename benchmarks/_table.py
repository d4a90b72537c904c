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


def log_run(folder, mode: str, result: dict) -> None:
    """Print a benchmark mode's result as one JSON line and append it to ``folder/runs.jsonl``."""
    import json
    from pathlib import Path

    line = json.dumps({"mode": mode, **result})
    print(line)
    with open(Path(folder) / "runs.jsonl", "a") as f:
        f.write(line + "\n")


def write_results(table: pd.DataFrame, out, header: str) -> None:
    """``table`` as ``out``.csv and, under ``header``, as ``out``.md; then printed."""
    from pathlib import Path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".md").write_text(header + markdown(table))
    print()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
