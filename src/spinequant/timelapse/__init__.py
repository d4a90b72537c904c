"""Spines over time: motion correction, calcium traces (ΔF/F0), two-channel ratios, and
spines followed over imaging sessions (registration, tracking, turnover).

>>> from spinequant.timelapse import estimate_shifts, extract_traces, rsdr   # doctest: +SKIP
>>> from spinequant.timelapse import align_sessions, track_spines, summarise  # doctest: +SKIP
"""

from __future__ import annotations

from .alignment import AlignConfig, SessionTransform, align_sessions
from .demixing import demix_frames
from ..morphology.ratio import RSDR_COLUMNS, rsdr
from .registration import correct_frames, estimate_shifts, shift_labels
from .traces import TRACE_COLUMNS, delta_f_over_f, extract_traces, parent_dendrites, roi_means, wide
from .tracking import SessionSpines, TrackConfig, track_spines
from .turnover import along_dendrite, summarise

__all__ = ["estimate_shifts", "correct_frames", "shift_labels", "extract_traces", "delta_f_over_f",
           "roi_means", "parent_dendrites", "wide", "demix_frames", "rsdr", "TRACE_COLUMNS", "RSDR_COLUMNS",
           "align_sessions", "AlignConfig", "SessionTransform", "track_spines", "TrackConfig", "SessionSpines",
           "summarise", "along_dendrite"]
