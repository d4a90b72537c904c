"""Chunked analysis on Dask workers: the same result as in this process, also when a worker
is killed mid-block, and when the whole run is killed with SIGKILL and started again."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

from distributed import Client, LocalCluster  # noqa: E402

from spinequant.cli import main  # noqa: E402
from spinequant.evaluate.detection import match_spine_objects  # noqa: E402
from spinequant.pipeline.analyze import AnalyzeConfig, analyze  # noqa: E402
from spinequant.scale import analyze_chunked  # noqa: E402
from test_scale import SPACING, phantom, zarr_stack  # noqa: E402,F401 (the same phantom fixtures)

CONFIG = AnalyzeConfig(method="classical", export_meshes=False, export_roi=False, report=False)


@pytest.fixture(scope="module")
def serial(zarr_stack, tmp_path_factory):
    """The chunked run in this process (256-px blocks: 2 x 2)."""
    return analyze_chunked(zarr_stack, tmp_path_factory.mktemp("serial") / "out", config=CONFIG, chunk_px=256)


def test_two_local_workers_find_the_in_memory_spines(phantom, serial, tmp_path, capsys):
    # from a TIFF, which each worker opens itself and reads lazily (a memory map)
    from spinequant.io import write_tiff

    tiff = write_tiff(tmp_path / "stack.tif", phantom.image, SPACING)
    out = tmp_path / "out"
    assert main(["analyze", str(tiff), "--out", str(out), "--chunked", "--chunk-size", "256",
                 "--workers", "2", "--method", "classical", "--no-meshes", "--no-roi"]) == 0
    err = capsys.readouterr().err
    assert "Dask cluster: 2 worker(s)" in err and "maps 4/4 blocks" in err
    run = json.loads((out / "run.json").read_text())
    ref = analyze(phantom.image, spacing=SPACING, config=CONFIG)
    assert run["counts"]["spines"] == len(ref.spines) == len(serial.spines) > 20
    from spinequant.io import read_stack

    labels = read_stack(out / "labels_spines.tif", voxel_size=SPACING).data
    match = match_spine_objects(labels, ref.spine_labels, spacing=SPACING, max_distance_um=0.3, min_iou=0.9)
    assert match["tp"] == len(ref.spines)
    assert np.array_equal(labels, serial.spine_labels)          # same ids, block by block, as here


def test_a_worker_killed_mid_block_has_its_block_redone(zarr_stack, serial, tmp_path):
    # also the export of a volume too large for whole-volume files (forced by the limit 0):
    # results.ome.zarr written chunk by chunk from the stitched labels, no label TIFFs
    import zarr

    from spinequant.scale import ScaleConfig

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        pids = client.run(os.getpid)
        killed = []

        def kill_a_busy_worker(stage, done, total):
            if stage == "maps" and done == 1 and not killed:
                busy = [w for w, keys in client.processing().items() if keys]
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])

        out = tmp_path / "out"
        result = analyze_chunked(zarr_stack, out, config=CONFIG, scale=ScaleConfig(chunk_px=256, whole_export_max_voxels=0),
                                 scheduler=cluster.scheduler_address, progress=kill_a_busy_worker)
        assert killed and set(client.run(os.getpid).values()) != set(pids.values())   # a worker was replaced
    assert np.array_equal(result.spine_labels[...], serial.spine_labels)
    assert np.array_equal(result.dendrite_labels[...], serial.dendrite_labels)
    assert result.spines.round(9).equals(serial.spines.round(9))
    labels = zarr.open_group(str(out / "results.ome.zarr"), mode="r")["labels"]
    assert np.array_equal(labels["spines"]["0"][...], serial.spine_labels)
    assert np.array_equal(labels["semantic"]["0"][...], serial.semantic)
    run = json.loads((out / "run.json").read_text())
    assert "not written" in run["not_written"] and not (out / "labels_spines.tif").exists()
    import hashlib

    nz, ny, nx = serial.image.shape
    edge = max(256, int((2 ** 26 / nz) ** 0.5) // 256 * 256)
    h = hashlib.sha256(str((serial.image.shape, str(serial.image.dtype), "tiles", edge)).encode())
    for y in range(0, ny, edge):                                       # all planes of each tile, row by row
        for x in range(0, nx, edge):
            h.update(np.ascontiguousarray(serial.image[:, y:y + edge, x:x + edge]).data)
    assert run["input"]["data_sha256_tiles"] == h.hexdigest()

def test_a_run_killed_with_sigkill_resumes_to_the_same_result(zarr_stack, serial, tmp_path):
    out = tmp_path / "out"
    args = [sys.executable, "-c", "import sys; from spinequant.cli import main; sys.exit(main(sys.argv[1:]))", "analyze", str(zarr_stack), "--out", str(out), "--chunked",
            "--chunk-size", "256", "--method", "classical", "--no-meshes", "--no-roi", "--quiet"]
    done = out / "chunked.work" / "maps.zarr" / "done"
    proc = subprocess.Popen(args, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(done.glob("*_*"))) < 1 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(done.glob("*_*")))
    assert 1 <= finished < 4 and not (out / "run.json").exists()
    assert subprocess.run(args, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode == 0
    run = json.loads((out / "run.json").read_text())
    assert run["input"]["chunked"]["blocks_resumed"] == finished
    assert run["counts"]["spines"] == len(serial.spines)
    import pandas as pd

    spines = pd.read_csv(out / "spines.csv")
    assert np.allclose(np.sort(spines["volume_um3"]), np.sort(serial.spines["volume_um3"]), atol=1e-6)


def test_workers_that_do_not_start_give_a_clear_error(monkeypatch):
    from spinequant.errors import InputError
    from spinequant.scale.execute import BlockRunner

    def never(self, n_workers, timeout=None):
        raise TimeoutError(f"{n_workers} workers did not arrive")

    closed = []
    real_close = LocalCluster.close
    monkeypatch.setattr(Client, "wait_for_workers", never)
    monkeypatch.setattr(LocalCluster, "close", lambda self, *a, **k: closed.append(1) or real_close(self, *a, **k))
    with pytest.raises(InputError, match=r"of 2 Dask workers started within 120 s.*--workers"):
        with BlockRunner(workers=2):
            pass
    assert closed                                  # the cluster that did start is shut down


def test_local_workers_keep_freed_memory_only_while_the_network_predicts():
    # a cluster spinequant starts raises each worker's allocator thresholds while the network
    # predicts and keeps Dask's own between predictions (scale/worker_memory.py); this process
    # is left alone
    from spinequant.scale.execute import BlockRunner
    from spinequant.scale.worker_memory import DASK_THRESHOLDS
    from spinequant.segment.neural import _malloc

    def thresholds():
        from spinequant.segment.neural import _malloc
        return _malloc._kept, _malloc._after

    before = (_malloc._kept, _malloc._after)
    with BlockRunner(workers=1) as runner:
        (kept, after), = runner.client.run(thresholds).values()
    assert kept == (256 << 20, 512 << 20) and after == DASK_THRESHOLDS
    assert (_malloc._kept, _malloc._after) == before


def test_a_value_shared_by_the_tasks_is_sent_to_each_worker_once():
    # the dendrite skeleton every spine-table task needs is scattered once, not put in each
    # task (where the scheduler and the workers held a copy per task: 5 GB on 21 GB)
    import builtins

    from spinequant.scale.execute import BlockRunner

    def unpickled(data):
        builtins.spinequant_test_unpickled = getattr(builtins, "spinequant_test_unpickled", 0) + 1
        return Counted(data)

    class Counted:
        def __init__(self, data):
            self.data = data

        def __reduce__(self):
            return unpickled, (self.data,)

    def job(args):
        value, k = args
        return float(value.data.sum()) + k

    def count():
        return getattr(builtins, "spinequant_test_unpickled", 0)

    value = Counted(np.arange(1000.0))
    with BlockRunner(workers=1) as runner:
        shared = runner.shared(value)
        assert runner.map(job, [(shared, k) for k in range(6)], names=[str(k) for k in range(6)],
                          stage="shared") == [499500.0 + k for k in range(6)]
        assert list(runner.client.run(count).values()) == [1]
        runner.map(job, [(value, k) for k in range(6)], names=[str(k) for k in range(6)], stage="inline")
        assert list(runner.client.run(count).values()) == [7]     # in each task: once per task
    assert BlockRunner().shared(value) is value                    # in this process: the value itself


def test_blocks_are_gathered_on_their_own_client_while_another_client_is_busy():
    # a user's own Client (a notebook's) is the default one; the run's futures must be followed
    # on the run's client: followed on the default client's loop they hung while that loop was
    # busy, and after a worker kill raised "bound to a different event loop" or hung for good
    import threading

    from spinequant.scale.execute import BlockRunner

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster.scheduler_address) as users:
        busy = threading.Event()
        users.loop.add_callback(busy.wait, 60)             # the user's client's loop blocked for up to 60 s
        try:
            with BlockRunner(scheduler=cluster.scheduler_address) as runner:
                started = time.monotonic()
                assert runner.map(abs, [-1, -2, -3], names=["a", "b", "c"], stage="t") == [1, 2, 3]
                assert time.monotonic() - started < 30
        finally:
            busy.set()
