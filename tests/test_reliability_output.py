"""Writing results when things go wrong: a full disk, permissions changed mid-run, SIGTERM and
Ctrl-C at several moments, temporary files of killed runs, several runs into one folder.

Every case ends in one clear message (no traceback) and leaves nothing half-written.
"""

import builtins
import errno
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import spinequant
from spinequant._atomic import atomic_path, ensure_writable_dir
from spinequant._partials import HOST, _start_time, partial_name, temp_owner
from spinequant.cli import main
from spinequant.cli import _signals
from spinequant.errors import OutputError
from spinequant.io import write_tiff
from spinequant.pipeline import AnalyzeConfig, analyze, analyze_folder, save_result
from spinequant.synth import make_phantom

SRC = str(Path(spinequant.__file__).resolve().parents[1])
CLASSICAL = AnalyzeConfig(method="classical")


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("two_photon", seed=3, shape=(12, 96, 96))


@pytest.fixture(scope="module")
def tiny_tif(phantom, tmp_path_factory):
    return write_tiff(tmp_path_factory.mktemp("input") / "tiny.tif", phantom.image, phantom.spacing)


@pytest.fixture(scope="module")
def result(phantom):
    return analyze(phantom.image, spacing=phantom.spacing, config=CLASSICAL)


def leftovers(folder: Path) -> list[str]:
    """Temporary files and folders anywhere below ``folder``."""
    return [str(p) for p in Path(folder).rglob(".*") if temp_owner(p.name)]


class _FillingFile:
    """A file whose writes fail with ``err`` once ``budget`` bytes have been written in all."""

    def __init__(self, raw, budget: list[int], err: int):
        self._raw, self._budget, self._err = raw, budget, err

    def write(self, data):
        if self._budget[0] < len(data):
            raise OSError(self._err, os.strerror(self._err))
        self._budget[0] -= len(data)
        return self._raw.write(data)

    def fileno(self):  # numpy's tofile would write around write()
        raise io.UnsupportedOperation("fileno")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._raw.close()

    def __iter__(self):
        return iter(self._raw)

    def __getattr__(self, name):
        return getattr(self._raw, name)


def fail_writes(monkeypatch, where, budget: float, err: int = errno.ENOSPC) -> list[int]:
    """Make writes to paths containing ``where`` fail with ``err`` after ``budget`` bytes in all
    (as on a filling disk).

    Returns the remaining budget, a one-item list, so a test can read what was written.
    """
    left = [budget]
    real_open = builtins.open

    def opener(file, mode="r", *args, **kwargs):
        raw = real_open(file, mode, *args, **kwargs)
        writing = any(c in mode for c in "wax+")
        if writing and isinstance(file, (str, os.PathLike)) and str(where) in str(Path(file).absolute()):
            return _FillingFile(raw, left, err)
        return raw

    monkeypatch.setattr(builtins, "open", opener)
    monkeypatch.setattr(io, "open", opener)
    return left


@pytest.fixture(scope="module")
def total_bytes(result, tmp_path_factory):
    """Bytes the exports (without the report) write through Python files."""
    mp = pytest.MonkeyPatch()
    out = tmp_path_factory.mktemp("measure") / "out"
    left = fail_writes(mp, out, 10**12)
    try:
        save_result(replace(result, config=replace(result.config, report=False)), out)
    finally:
        mp.undo()
    return 10**12 - left[0]


@pytest.mark.parametrize("fraction", [0.0, 0.15, 0.35, 0.6, 0.85, 0.99])
def test_disk_full_at_any_point_gives_one_message_and_leaves_nothing(
        fraction, result, total_bytes, tmp_path, monkeypatch):
    out = tmp_path / "out"
    quiet = replace(result, config=replace(result.config, report=False))
    fail_writes(monkeypatch, out, int(fraction * total_bytes))
    with pytest.raises(OutputError) as info:
        save_result(quiet, out)
    monkeypatch.undo()
    text = str(info.value)
    assert text.startswith("Could not write '") and f"in '{out}" in text
    assert "the drive is full" in text and "are free on that drive now" in text
    assert "Nothing half-written was left behind" in text and "--out" in text
    assert ".partial" not in text and "\n" not in text
    assert not list(out.iterdir()), "a failed save leaves no result files"


def test_disk_full_in_the_report_removes_the_tables_already_written(result, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = Path.write_bytes

    def full(self, data):
        if self.parent == out and "histograms.png" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputError, match=r"Could not write 'histograms.png'.*drive is full"):
        save_result(result, out)
    assert not list(out.iterdir())


def test_an_earlier_complete_result_is_not_mixed_with_a_failed_one(result, tmp_path, monkeypatch):
    out = tmp_path / "out"
    quiet = replace(result, config=replace(result.config, report=False))
    save_result(quiet, out)
    assert (out / "run.json").exists()
    fail_writes(monkeypatch, ".results.ome.zarr.partial", 3000)  # the zarr fails half-way through
    with pytest.raises(OutputError, match="results.ome.zarr"):
        save_result(quiet, out)
    monkeypatch.undo()
    names = {p.name for p in out.iterdir()}
    assert "run.json" not in names and not leftovers(out)
    assert "spines.csv" not in names, "the tables this run wrote before the failure are removed"


def test_permission_taken_away_mid_run(result, tmp_path, monkeypatch):
    out = tmp_path / "out"
    quiet = replace(result, config=replace(result.config, report=False))
    real_replace = os.replace
    calls = []

    def refused(src, dst):
        calls.append(dst)
        if len(calls) > 3:
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(OutputError) as info:
        save_result(quiet, out)
    monkeypatch.undo()
    assert "permission denied (the folder's permissions may have changed during the run)" in str(info.value)
    assert "Make the folder writable again" in str(info.value)
    assert not list(out.iterdir())


def test_cli_disk_full_exit_code_message_and_no_results_folder(tiny_tif, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results"
    fail_writes(monkeypatch, out, 20_000)
    code = main(["analyze", str(tiny_tif), "--out", str(out), "--method", "classical", "--no-meshes", "-q"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("spinequant: error: Could not write") and "Traceback" not in err
    assert "drive is full" in " ".join(err.split())
    assert not out.exists(), "a new results folder of a failed run is removed"


def test_folder_run_reports_a_full_disk_as_an_output_error_not_a_bug(tiny_tif, tmp_path, monkeypatch):
    folder = tmp_path / "stacks"
    folder.mkdir()
    (folder / "a.tif").write_bytes(tiny_tif.read_bytes())
    out = tmp_path / "out"
    fail_writes(monkeypatch, out / "a", 10_000)
    items = []
    config = replace(CLASSICAL, export_meshes=False, report=False)
    summary = analyze_folder(folder, out, config=config, on_item=items.append)
    monkeypatch.undo()
    assert [i.status for i in items] == ["failed"]
    assert "drive is full" in items[0].message and "bug" not in items[0].message
    assert summary["status"].tolist() == ["failed"]
    assert not leftovers(out) and not (out / "a").exists()


# --- signals ---------------------------------------------------------------------------------

def _start_cli(*args):
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from spinequant.cli import main; sys.exit(main())", *map(str, args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    chunks = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read1(4096), b"")),
                              daemon=True)
    reader.start()
    return proc, chunks, reader


def _signal_at(proc, chunks, sig, moment, deadline):
    """Send ``sig`` after ``moment`` seconds, or once stderr shows stage ``moment``."""
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() < deadline:
        if (moment < time.monotonic() - start) if isinstance(moment, float) else \
                (moment.encode() in b"".join(chunks)):
            proc.send_signal(sig)
            return
        time.sleep(0.01)


def test_sigterm_and_ctrl_c_at_several_moments(tiny_tif, tmp_path):
    # (signal, moment): seconds after the start (imports) or the stage shown on stderr
    moments = [(signal.SIGTERM, 0.5), (signal.SIGINT, 1.0), (signal.SIGINT, "segment"),
               (signal.SIGTERM, "export"), (signal.SIGINT, "report")]
    runs = []
    for i, (sig, moment) in enumerate(moments):
        out = tmp_path / f"out{i}"
        runs.append((sig, moment, out, *_start_cli("analyze", tiny_tif, "--out", out, "--method", "classical")))
    deadline = time.monotonic() + 60
    senders = [threading.Thread(target=_signal_at, args=(proc, chunks, sig, moment, deadline))
               for sig, moment, out, proc, chunks, _ in runs]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    stopped = 0
    for sig, moment, out, proc, chunks, reader in runs:
        code = proc.wait(timeout=60)
        reader.join(timeout=5)
        err = b"".join(chunks).decode(errors="replace")
        where = f"{signal.Signals(sig).name} at {moment}: {err[-600:]!r}"
        if code == 0 or "results are complete" in " ".join(err.split()):
            # the run finished before the signal (or before it was handled): fine, but its
            # results must be complete, and a late signal says so
            assert (out / "run.json").exists(), where
            continue
        assert code == 128 + sig, where
        stopped += 1
        assert "Traceback" not in err, where
        assert "spinequant: error: " in err and ("Ctrl-C" if sig == signal.SIGINT else "SIGTERM") in err, where
        assert "nothing was written" in " ".join(err.split()), where
        assert not out.exists() or not list(out.iterdir()), f"{where}: {list(out.iterdir())}"
    assert stopped >= len(moments) - 1, "the signals came too late to test anything"


def test_interrupt_swallowed_by_a_library_still_ends_the_run(monkeypatch, capsys, tmp_path):
    # trimesh catches BaseException while it imports optional parts, interrupts included
    def swallowing(args, stacks, finished):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
        except BaseException:
            pass
        return 0

    monkeypatch.setattr("spinequant.cli.analyze._run", swallowing)
    # the handlers the run must give back: Python's own, or SIG_IGN for SIGINT when the tests
    # were started in the background by a shell without job control
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    code = main(["analyze", "x.tif", "--out", str(tmp_path / "o")])
    assert code == 130
    assert "Interrupted (Ctrl-C)" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before



def test_a_signal_handled_inside_a_callback_is_silent_and_ends_the_run_at_the_next_step(capsys, monkeypatch):
    # Python can only print and drop an exception raised in a weakref's callback (so it did with
    # an import lock's, found by the timing test above): no traceback for the user
    import weakref

    class Held:
        pass

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)   # Python's, not pytest's
    before = sys.unraisablehook
    with pytest.raises(_signals.Interrupted) as caught:
        with _signals.signals_as_exceptions():
            held = Held()
            ref = weakref.ref(held, lambda _: _signals._handler(signal.SIGINT, None))
            del held
            assert ref() is None and _signals.received() == signal.SIGINT
            _signals.raise_if_received()
    assert caught.value.signum == signal.SIGINT
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert sys.unraisablehook is before


def test_a_second_signal_during_clean_up_does_not_cut_it_short():
    cleaned = []
    with _signals.signals_as_exceptions():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.5)
        except KeyboardInterrupt as exc:
            assert exc.signum == signal.SIGTERM
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            cleaned.append(True)
    assert cleaned == [True]


# --- temporary files of killed runs ------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_partials_are_removed_and_live_ones_kept(tmp_path):
    dead = _dead_pid()
    python = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.2)
        stale = [partial_name("spines.csv", dead), f".labels.tif.partial-{dead}",  # without a host too
                 f".results.ome.zarr.old-{dead}-0a1b2c3d-{HOST}", partial_name("a.tif", sleeper.pid),
                 partial_name("report.html", os.getpid()), ".old.csv.partial-5-elsewhere"]
        kept = [partial_name("run.json", python.pid), ".recent.csv.partial-5-elsewhere", ".hidden",
                "notes.txt"]
        for name in stale + kept:
            (tmp_path / name).write_text("x")
        zarr_dir = tmp_path / partial_name("results.ome.zarr", dead)
        (zarr_dir / "0").mkdir(parents=True)
        (zarr_dir / "0" / "0.0.0").write_bytes(b"\0" * 1000)
        stale.append(zarr_dir.name)
        # this process's id on a file older than the process: a reused id (an earlier container)
        before = (_start_time(os.getpid()) or time.time()) - 3600
        os.utime(tmp_path / partial_name("report.html", os.getpid()), (before, before))
        two_days = time.time() - 2 * 86400
        os.utime(tmp_path / ".old.csv.partial-5-elsewhere", (two_days, two_days))
        ensure_writable_dir(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
    finally:
        python.kill()
        sleeper.kill()
        python.wait()
        sleeper.wait()


# --- several processes ---------------------------------------------------------------------------

def _replace_many(final: str, writer: int, times: int, barrier) -> str:
    barrier.wait()
    try:
        for i in range(times):
            with atomic_path(final, directory=True) as tmp:
                tmp.mkdir()
                for name in ("a", "b", "c"):
                    (tmp / name).write_text(f"{writer}-{i}")
    except Exception as exc:  # reported to the test, which shows it
        return f"{type(exc).__name__}: {exc}"
    return ""


def test_parallel_directory_replacement_never_fails(tmp_path):
    final = tmp_path / "results.ome.zarr"
    ctx = multiprocessing.get_context("fork")
    n = 4
    barrier = ctx.Manager().Barrier(n)
    with ctx.Pool(n) as pool:
        errors = pool.starmap(_replace_many, [(str(final), w, 60, barrier) for w in range(n)])
    assert errors == [""] * n
    contents = {(final / name).read_text() for name in ("a", "b", "c")}
    assert len(contents) == 1, "the folder is one writer's complete version"
    assert [p.name for p in tmp_path.iterdir()] == ["results.ome.zarr"]


def test_parallel_runs_into_one_folder_and_stale_files_cleared(tiny_tif, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    (out / partial_name("spines_roi.zip", dead)).write_bytes(b"\0" * 5000)
    (out / partial_name("results.ome.zarr", dead)).mkdir()
    settings = tmp_path / "settings.json"  # no report: the folders are what races
    settings.write_text('{"config": {"method": "classical", "report": false}}')
    runs = [_start_cli("analyze", tiny_tif, "--out", out, "--config", settings, "-q") for _ in range(3)]
    for proc, chunks, reader in runs:
        code = proc.wait(timeout=120)
        reader.join(timeout=5)
        assert code == 0, b"".join(chunks).decode(errors="replace")[-800:]
    assert (out / "run.json").exists() and (out / "results.ome.zarr" / ".zgroup").exists()
    assert not leftovers(out)


def test_ctrl_c_after_a_finished_command_line_run_is_ignored():
    """Between the end of the run and the end of the process a Ctrl-C must not turn a finished
    run into a KeyboardInterrupt (exit -2, no message); library callers get their handler back."""
    import signal

    from spinequant.cli import _signals

    before = signal.getsignal(signal.SIGINT)
    try:
        with _signals.signals_as_exceptions(exiting=True):
            pass
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with _signals.signals_as_exceptions():
        pass
    assert signal.getsignal(signal.SIGINT) is before


def test_signal_during_start_up_imports_says_nothing_was_written(monkeypatch, capsys):
    """A signal that lands in an import while the command is still starting may surface as
    some other error of a half-imported library (seen under load: SIGTERM 0.5 s after the
    start). It is reported as the signal, with the start-up's outcome."""
    from spinequant import cli

    monkeypatch.setattr(_signals, "received", lambda: signal.SIGTERM)
    code = cli._report(ImportError("cannot import name 'x' (most likely a circular import)"),
                       debug=False, starting=True)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 128 + signal.SIGTERM
    assert "SIGTERM" in err and "nothing was written (it was still starting)" in err
    code = cli._report(ImportError("half imported"), debug=False, starting=False)
    assert "results that were not finished were removed" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("directory", [False, True])
def test_a_signal_just_after_a_rename_still_undoes_that_file(tmp_path, monkeypatch, directory):
    """Python runs a signal's handler at the next line after a system call returns: a Ctrl-C
    or SIGTERM that lands right after a result was renamed into place must still remove it
    (found by the signal test above: a spines.csv left after "nothing was written")."""
    from spinequant import _atomic

    real_replace, real_rename = os.replace, os.rename

    def then_interrupted(rename):
        def moved(src, dst):
            rename(src, dst)
            if Path(dst).name.startswith("result"):
                raise KeyboardInterrupt
        return moved

    monkeypatch.setattr(_atomic.os, "replace", then_interrupted(real_replace))
    monkeypatch.setattr(_atomic.os, "rename", then_interrupted(real_rename))
    final = tmp_path / ("result" if directory else "result.csv")
    with pytest.raises(KeyboardInterrupt):
        with _atomic.undo_on_failure():
            with atomic_path(final, directory=directory) as tmp:
                if directory:
                    tmp.mkdir()
                    (tmp / "spines.csv").write_text("id\n1\n")
                else:
                    tmp.write_text("id\n1\n")
    assert not final.exists() and not any(tmp_path.iterdir())


def test_a_signal_handled_after_the_command_finished_says_the_results_are_complete(monkeypatch, capsys):
    """A SIGTERM whose handler ran only once the command had returned (its results written):
    exit code 143, and the message says the results are complete rather than removed."""
    import argparse

    import spinequant.cli as cli
    from spinequant.cli import _signals

    def finished_then_signalled(args):
        _signals._received.append(signal.SIGTERM)     # as the handler records it
        return 0

    monkeypatch.setattr(cli, "_parse", lambda argv: argparse.Namespace(func=finished_then_signalled))
    assert cli.main(["anything"]) == 128 + signal.SIGTERM
    err = " ".join(capsys.readouterr().err.split())
    assert "SIGTERM" in err and "its results are complete" in err and "removed" not in err
