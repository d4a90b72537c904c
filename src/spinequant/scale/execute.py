"""Running the blocks of a chunked analysis: in this process, or as Dask tasks on a cluster.

Blocks are independent (each writes only its own Zarr chunks, its marker and its objects
file), so they are submitted as independent tasks of a Dask graph to a ``distributed``
cluster: a local one of ``workers`` processes (one thread each) or an existing one at a
scheduler ``address`` (started by dask-jobqueue on SLURM/PBS, by dask-kubernetes, or by hand
with ``dask scheduler`` / ``dask worker``). A task carries only the input's path
(:class:`VolumeSource`) and the working folder's paths, so a worker needs the package and
access to those paths, nothing else. A worker that dies mid-block has its tasks run again
on another (the scheduler's ``allowed-failures``); a task that raises is retried
``retries`` times, then the run stops with its error.
"""

from __future__ import annotations

import logging
import uuid

from ..errors import InputError

log = logging.getLogger(__name__)

#: Times a block that raised is run again before the run stops (a worker that dies is
#: handled by the scheduler's ``distributed.scheduler.allowed-failures``, default 3).
RETRIES = 2


class BlockRunner:
    """Runs a function over blocks, here or on a Dask cluster (a context manager).

    ``workers``: start a local cluster of that many processes (one thread each; distributed
    sets OMP/MKL/OpenBLAS threads to 1 in its workers). ``scheduler``: the address of a
    running cluster's scheduler (``tcp://host:8786``). Neither: run in this process.
    """

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None,
                 memory_limit=0, say=None):
        if workers is not None and scheduler is not None:
            raise InputError("Give --workers (start a local cluster) or --scheduler (use a running one), not both.")
        if workers is not None and int(workers) < 1:
            raise InputError(f"--workers must be at least 1; got {workers}.")
        self.workers, self.scheduler, self.memory_limit = workers, scheduler, memory_limit
        self.say = say or log.info
        self.client = self.cluster = None

    def __enter__(self):
        if self.workers is None and self.scheduler is None:
            return self
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("Running blocks on several workers needs the 'distributed' package: "
                             "pip install 'spinequant[scale]'.") from None
        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout="30s")
            except OSError as exc:
                raise InputError(f"Cannot reach the Dask scheduler at '{self.scheduler}' ({exc}). Check the "
                                 f"address (tcp://HOST:PORT) and that the scheduler is running.") from None
        else:
            self.cluster = LocalCluster(n_workers=int(self.workers), threads_per_worker=1, processes=True,
                                        memory_limit=self.memory_limit, dashboard_address=":0")
            self.client = Client(self.cluster)
            try:
                self.client.wait_for_workers(int(self.workers), timeout=120)
            except TimeoutError:
                started = len(self.client.nthreads())
                self.__exit__()
                raise InputError(f"Only {started} of {self.workers} Dask workers started within 120 s. The machine "
                                 f"may lack the memory or processes for them: ask for fewer (--workers).") from None
        n = self.n_workers()
        self.say(f"Dask cluster: {n} worker(s); dashboard {self.dashboard()}")
        return self

    def dashboard(self) -> str:
        try:
            import bokeh  # noqa: F401  (the dashboard needs it)
        except ImportError:
            if self.cluster is not None:
                return "not available (pip install bokeh)"
        return self.client.dashboard_link

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def n_workers(self) -> int:
        """Workers of the cluster (1: this process)."""
        if self.client is None:
            return 1
        # not scheduler_info(): the client's periodic refresh overwrites its cache with a copy that lists
        # no workers, so under load it read 0 (a CI failure); nthreads() returns its own reply
        return len(self.client.nthreads())

    def map(self, fn, jobs: list, *, names: list[str], stage: str, progress=None) -> list:
        """``[fn(job) for job in jobs]``, in order; ``progress(stage, done, total)`` after each."""
        step = progress or (lambda name, done, total: None)
        total = len(jobs)
        step(stage, 0, total)
        if self.client is None:
            results = []
            for job in jobs:
                results.append(fn(job))
                step(stage, len(results), total)
            return results
        from distributed import as_completed

        run = uuid.uuid4().hex[:8]
        futures = [self.client.submit(fn, job, key=f"{stage}-{name}-{run}", pure=False, retries=RETRIES)
                   for job, name in zip(jobs, names)]
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                future.result()                       # raises a block's error here
                step(stage, done, total)
            return [f.result() for f in futures]
        finally:
            for f in futures:
                f.release()
