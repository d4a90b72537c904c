"""Let glibc keep freed memory for reuse while a network runs: an opt-in for programs that
own their process.

By default glibc hands every freed block above 128 kB straight back to the system, so each
batch of tiles pays for fresh, zeroed pages for its intermediate tensors: on a
101 x 1024 x 1024 stack that page-fault storm cost ~20 s of a 50 s prediction (measured:
53 s without, 30 s with the settings below). glibc raises the threshold by itself after the
first large free, which is why a second prediction in the same process was always faster.

The settings are process-wide and cannot be read back (and setting them turns glibc's own
adaptive thresholds off for good), so :func:`predict` does not touch them on its own: a
napari session or a Dask worker keeps its allocator. A command-line program or batch script
that owns its process calls :func:`keep_freed_memory` once at start; from then on each
prediction runs with the raised thresholds (:func:`while_predicting`), and after it the
thresholds go down to 32 MiB and the kept memory is handed back: the stages after the
network would otherwise hold up to the trim threshold of freed heap on top of their live
arrays (measured on that stack: ~340 MiB in the measure stage). 32 MiB, not glibc's initial
128 kB: on that stack 128 kB gave a peak of 1,128 MiB but 1.14x the wall time of the run
before this change (sys time 4.9 -> 8.6 s from fresh pages), 32 MiB 1,155 MiB at 1.02x
(`python benchmarks/wall_time.py -n 3 --vs OLD -- NEW`, `spinequant analyze big.tif`, 2026-12-01).
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: The thresholds after a prediction (see the module's note for the measurement).
_AFTER = 32 << 20
_kept: tuple[int, int] | None = None
#: The thresholds after a prediction (mmap, trim): :data:`_AFTER`, or what the caller of
#: :func:`keep_freed_memory` asked for (a Dask worker: Dask's own).
_after: tuple[int, int] = (_AFTER, _AFTER)
# Predictions running now (threads of one process share the allocator): the last to finish
# puts the thresholds back.
_running = 0
_lock = threading.Lock()


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _set(mmap_threshold: int, trim_threshold: int) -> bool:
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) & bool(libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 512 << 20, *,
                      after: tuple[int, int] | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds while networks predict, for the rest of the
    process (Linux only); True if set. Call it only from a program that owns its process
    (see the module's note). By default they are raised at once and go down to 32 MiB after
    the first prediction; with ``after`` ((mmap, trim) bytes) they are set to ``after`` at
    once and after every prediction (the workers of a local Dask cluster keep Dask's own
    between predictions, :mod:`spinequant.scale.worker_memory`)."""
    global _kept, _after
    if _kept is not None:
        return True
    if not _set(*(after or (mmap_threshold, trim_threshold))):
        return False
    _kept, _after = (mmap_threshold, trim_threshold), tuple(after or (_AFTER, _AFTER))
    return True


@contextmanager
def while_predicting() -> Iterator[None]:
    """Within the block, the thresholds :func:`keep_freed_memory` asked for; afterwards
    glibc's initial ones and the freed memory handed back. Nothing when it was not called."""
    global _running
    if _kept is None:
        yield
        return
    with _lock:
        if _running == 0:
            _set(*_kept)
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0:
                _set(*_after)
                _trim()


def hand_back_freed_memory() -> None:
    """Hand the heap's freed memory back to the system (``malloc_trim``) between the stages
    of a run, when :func:`keep_freed_memory` was asked for and no prediction is running.
    Under the 32 MiB thresholds the freed temporaries of one stage (below 32 MiB each) stay
    in the heap: on a 101 x 1024 x 1024 stack 15-40 MiB at the start of the measure, export
    and report stages, on top of their peaks. A few milliseconds a call."""
    with _lock:
        if _kept is not None and _running == 0:
            _trim()


def _trim() -> None:
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
