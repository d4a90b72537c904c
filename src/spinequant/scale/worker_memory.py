"""The allocator of a local Dask cluster's workers while the network predicts.

Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes glibc's mmap
threshold at 128 kB: every array above that is fresh, zeroed pages from the system. For the
network's tile batches that page-fault storm made each block's maps take 1.3x as long as in
the main process (48 x 2048 x 2048, 1024-px blocks; docs/scale.md, "The workers' allocator").
A cluster that spinequant starts is its own, so each worker raises the thresholds while the
network predicts and goes back to Dask's between predictions
(:func:`~spinequant.segment.neural.keep_freed_memory`), as the command line does in its own
process. Workers of a cluster given by address (``--scheduler``) keep their allocator.
"""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

#: Dask's thresholds for its workers (mmap: glibc's initial 128 kB, which the trim
#: threshold's environment variable fixes; trim: Dask's 64 kB).
DASK_THRESHOLDS = (128 << 10, 65536)


class NetworkMemory(WorkerPlugin):
    """Sets the thresholds in every worker, also in one the nanny restarts."""

    name = "spinequant-network-memory"

    def setup(self, worker):
        from ..segment.neural._malloc import keep_freed_memory

        keep_freed_memory(after=DASK_THRESHOLDS)
