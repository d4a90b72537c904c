"""Correct a result by hand: delete, merge, split, add and retype spines, with undo.

Pure functions on label arrays (:mod:`spinequant.edit.ops`) and an :class:`EditSession`
that keeps the spine table in step with the labels by re-measuring only the spines an edit
touched. Front ends (the napari plugin) only call these.
"""

from __future__ import annotations

from .ops import (add_spine, delete_spines, merge_spines, next_id, spine_ids, split_spine_by_line,
                  split_spine_by_seeds)
from .session import MANUAL_RULE, EditSession

__all__ = ["EditSession", "MANUAL_RULE", "add_spine", "delete_spines", "merge_spines", "next_id",
           "spine_ids", "split_spine_by_line", "split_spine_by_seeds"]
