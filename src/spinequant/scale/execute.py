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
import os
import time
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
            from .worker_memory import NetworkMemory

            self.client.register_plugin(NetworkMemory())
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

    def shared(self, value):
        """``value`` to put in the jobs of :meth:`map`: on a cluster, sent to every worker once
        (a future, whose value the tasks get) instead of inside every task; here, itself.

        A value in a job is serialised with each task and held by the scheduler (in this
        process for a local cluster) and the workers until the task runs: the 21 GB
        volume's dendrite skeleton (23 MB pickled) in each of 225 spine-table tasks was
        5 GB (docs/scale.md, "A 21 GB volume")."""
        if self.client is None:
            return value
        return self.client.scatter([value], broadcast=True, hash=False)[0]

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
        run = uuid.uuid4().hex[:8]
        futures = [self.client.submit(fn, job, key=f"{stage}-{name}-{run}", pure=False, retries=RETRIES)
                   for job, name in zip(jobs, names)]
        return _gathered(futures, _counting(step, stage, total))

    def map_two(self, first, first_jobs: list, second, second_jobs: list, *, needs: list, names: tuple,
                stage: str, progress=None) -> tuple[list, list]:
        """``[first(job) ...]`` and ``[second(job) ...]``, where ``second_jobs[j]`` starts only
        once the first jobs ``needs[j]`` (indices) are done. The tasks are started in an order
        that finishes each second job as early as it can (what its first jobs wrote can then be
        deleted); ``names`` = (first names, second names); ``progress(stage, done, total)``
        counts the second jobs (a block is done when its second job is)."""
        step = progress or (lambda name, done, total: None)
        order = _interleaved(len(first_jobs), needs)
        total = len(second_jobs)
        step(stage, 0, total)
        results = {}
        if self.client is None:
            for kind, i in order:
                results[kind, i] = first(first_jobs[i]) if kind == 0 else second(second_jobs[i])
                if kind == 1:
                    step(stage, sum(k for k, _ in results), total)
        else:
            run = uuid.uuid4().hex[:8]
            futures = {}
            for kind, i in order:
                key = f"{stage}-{kind}-{names[kind][i]}-{run}"
                if kind == 0:
                    futures[kind, i] = self.client.submit(first, first_jobs[i], key=key, pure=False,
                                                          retries=RETRIES)
                else:
                    futures[kind, i] = self.client.submit(_after, second, second_jobs[i],
                                                          *[futures[0, k] for k in needs[i]], key=key,
                                                          pure=False, retries=RETRIES)
            seconds = {f.key for (kind, _), f in futures.items() if kind == 1}
            results = dict(zip(futures, _gathered(list(futures.values()), _counting(step, stage, total, seconds))))
        return ([results[0, i] for i in range(len(first_jobs))],
                [results[1, j] for j in range(len(second_jobs))])


def task_record(started: float) -> dict:
    """A task's time and its process's peak memory so far (for run.json and the benchmarks)."""
    from ..pipeline.runinfo import peak_memory_mb

    return {"seconds": round(time.perf_counter() - started, 3), "peak_mb": round(peak_memory_mb(), 1),
            "pid": os.getpid()}


def _after(fn, job, *done):
    """``fn(job)``; ``done`` are the results of the tasks it waited for (a task's dependencies)."""
    return fn(job)


def _interleaved(n_first: int, needs: list) -> list[tuple[int, int]]:
    """``(0, i)`` for the first jobs in order, each ``(1, j)`` right after its last need."""
    order = [(1, j) for j, need in enumerate(needs) if not need]
    waiting = [j for j, need in enumerate(needs) if need]
    done = set()
    for i in range(n_first):
        order.append((0, i))
        done.add(i)
        ready = [j for j in waiting if set(needs[j]) <= done]
        order += [(1, j) for j in ready]
        waiting = [j for j in waiting if j not in ready]
    if waiting:
        raise ValueError(f"Jobs {waiting} need first jobs that do not exist.")
    return order


def _counting(step, stage: str, total: int, keys=None):
    """``on_done(future)`` for :func:`_gathered`: ``step(stage, done, total)`` counting the
    finished futures (those whose key is in ``keys``, if given)."""
    finished = []

    def on_done(future):
        if keys is None or future.key in keys:
            finished.append(future.key)
            step(stage, len(finished), total)

    return on_done


def _gathered(futures: list, on_done) -> list:
    """The futures' results in order, ``on_done(future)`` as each finishes; the first error
    raised by a task is raised here."""
    from distributed import as_completed

    if not futures:
        return []
    results = {}
    try:
        # tracked on the futures' own client's loop: as_completed otherwise uses the default
        # client's, another one when the caller has a Client of their own (a notebook, the tests),
        # and futures handled on a loop not their client's raised "bound to a different event
        # loop" after a worker kill (ce712b2) and once hung (session 46, docs/scale.md)
        for future, result in as_completed(futures, loop=futures[0].client.loop,
                                           with_results=True):         # a block's error raises here
            results[future.key] = result
            on_done(future)
        return [results[f.key] for f in futures]
    finally:
        for f in futures:
            f.release()
