"""Spines over time: motion correction, calcium traces (ΔF/F0) and two-channel ratios.

>>> from spinequant.timelapse import estimate_shifts, extract_traces, rsdr   # doctest: +SKIP
"""

from __future__ import annotations

from .ratio import RSDR_COLUMNS, rsdr
from .registration import correct_frames, estimate_shifts, shift_labels
from .traces import TRACE_COLUMNS, delta_f_over_f, extract_traces, parent_dendrites, roi_means, wide

__all__ = ["estimate_shifts", "correct_frames", "shift_labels", "extract_traces", "delta_f_over_f",
           "roi_means", "parent_dendrites", "wide", "rsdr", "TRACE_COLUMNS", "RSDR_COLUMNS"]
