"""Write files and folders so that a failed or interrupted run leaves nothing half-written.

Every result is written under a temporary name (see :mod:`._partials`) and renamed into place
when complete. Errors of the operating system while writing (disk full, permission changed,
drive gone) become one :class:`OutputError` that says what could not be written, where, and
for a full disk how much space there is.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import time
from contextvars import ContextVar
from pathlib import Path

from ._partials import aside_name, final_of, partial_name, remove, remove_stale
from .errors import OutputError

# Attempts to rename a new folder into place while other processes replace it too.
_REPLACE_ATTEMPTS = 50

# zarr writes from a thread of its own and finishes a chunk that was under way when the main
# thread failed or was interrupted; such a late write can re-create a folder just removed.
_SETTLE_S = 0.2

# What atomic_path has put in place inside the innermost undo_on_failure block.
_placed: ContextVar[list[Path] | None] = ContextVar("spinequant_placed", default=None)


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` (and parents) if needed and check that files can be written in it.

    Temporary files that killed runs left in it are removed (see :func:`._partials.is_stale`).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # The name is known before the file exists, so a stop (Ctrl-C, SIGTERM raised as an
        # exception) at any point here still removes it: a file object's own clean-up can be
        # cut short between its creation and its removal.
        probe = path / f".spinequant-write-test-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        finally:
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"Cannot write results to '{path}': {exc.strerror or exc}.{_space_note(exc, path)} Choose a "
            f"folder you can write to (for example one in your home directory) with --out."
        ) from None
    remove_stale(path)
    return path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, directory: bool = False):
    """Yield a temporary path beside ``final``; on success rename it to ``final``.

    On any exception the temporary file or folder is removed and ``final`` is untouched; an
    ``OSError`` becomes an :class:`OutputError` with a message for the user. A folder
    (``directory=True``) replaces an existing one even when other processes do the same.
    """
    final = Path(final)
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot create the folder '{final_of(parent)}': {exc.strerror or exc}.{_space_note(exc, parent)} "
            f"Choose an output location you can write to."
        ) from None
    tmp = parent / partial_name(final.name)
    remove(tmp)
    placed = _placed.get()
    try:
        yield tmp
        # Listed before the rename: a signal handled just after the rename (Python runs its
        # handler at the next line) would otherwise leave the file in place but unlisted,
        # after the run said that nothing was written.
        if placed is not None:
            placed.append(final)
        if directory:
            _replace_dir(tmp, final)
        else:
            os.replace(tmp, final)
    except OutputError:  # of a write inside this one (a file in a folder): already explained
        _unlist(placed, final)
        _discard(tmp, directory)
        raise
    except OSError as exc:
        _unlist(placed, final)   # the rename failed: what is at ``final`` is not ours
        written = _size(tmp)
        _discard(tmp, directory)
        raise write_error(exc, final, written) from exc
    except BaseException:
        _discard(tmp, directory)
        raise


def _unlist(placed: list[Path] | None, final: Path) -> None:
    if placed and placed[-1] == final:
        placed.pop()


@contextlib.contextmanager
def undo_on_failure():
    """Remove everything :func:`atomic_path` puts in place inside the block if the block fails.

    A run that fails or is interrupted half-way through writing its results then leaves none
    of them, rather than a mix of new and older files that looks like a result.
    """
    placed: list[Path] = []
    token = _placed.set(placed)
    try:
        yield
    except BaseException:
        for path in reversed(placed):
            remove(path)
        raise
    finally:
        _placed.reset(token)
    outer = _placed.get()
    if outer is not None:
        outer.extend(placed)


def write_error(exc: OSError, target: Path, written: int | None = None) -> OutputError:
    """One paragraph on an operating-system error while writing ``target``."""
    target = final_of(Path(target))
    sentences = [f"Could not write '{target.name}' in '{target.parent}': {_reason(exc)}."]
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and written:
        sentences.append(f"{_size_text(written)} of it had been written when the space ran out.")
    note = _space_note(exc, target.parent).strip()
    if note:
        sentences.append(note)
    sentences.append("Nothing half-written was left behind.")
    sentences.append(_ADVICE.get(exc.errno, "Check the drive and the folder, then run again."))
    return OutputError(" ".join(sentences))


_REASONS = {
    errno.ENOSPC: "the drive is full (no space left on device)",
    errno.EDQUOT: "your disk quota on that drive is used up",
    errno.EACCES: "permission denied (the folder's permissions may have changed during the run)",
    errno.EPERM: "the operation is not permitted there",
    errno.EROFS: "the drive is read-only (it may have been switched to read-only after an error)",
    errno.EIO: "the drive reported an input/output error (a failing disk or a lost network connection)",
    errno.ENOENT: "the folder was removed or renamed while the run was writing",
    errno.ENAMETOOLONG: "the path is too long for that drive",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "a folder of that name is in the way",
}

_ADVICE = {
    errno.ENOSPC: "Free some space on that drive, or choose a folder on another drive with --out, "
                  "then run again.",
    errno.EDQUOT: "Delete files you no longer need or ask for a larger quota, or choose a folder on "
                  "another drive with --out, then run again.",
    errno.EACCES: "Make the folder writable again, or choose another with --out, then run again.",
    errno.EPERM: "Make the folder writable again, or choose another with --out, then run again.",
    errno.EROFS: "Choose a folder on a writable drive with --out, then run again.",
    errno.ENAMETOOLONG: "Choose a shorter --out path, then run again.",
    errno.EISDIR: "Move the folder that is in the way, or choose another --out, then run again.",
}


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno) or (exc.strerror or str(exc) or type(exc).__name__)


def _space_note(exc: OSError, folder: Path) -> str:
    """For a full drive or quota: how much is free where the results go (when it can be told)."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return ""
    for place in (Path(folder), *Path(folder).parents):
        try:
            usage = shutil.disk_usage(place)
        except OSError:
            continue
        if exc.errno == errno.EDQUOT:
            return f" The drive itself has {_size_text(usage.free)} free; the limit is your quota."
        return f" {_size_text(usage.free)} of {_size_text(usage.total)} are free on that drive now."
    return ""


def _size_text(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"  # pragma: no cover


def _size(path: Path) -> int:
    """Bytes in a file or folder tree (0 when it is gone)."""
    try:
        if not path.is_dir():
            return path.stat().st_size if path.exists() else 0
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    except OSError:
        return 0


def _discard(tmp: Path, directory: bool) -> None:
    remove(tmp)
    if not directory:
        return
    deadline = time.monotonic() + _SETTLE_S
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if tmp.exists():
            remove(tmp)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Rename the folder ``tmp`` to ``final``, replacing a folder there.

    A folder cannot be renamed over a non-empty one, so the old one is first renamed aside to
    a unique name. Another process may put its own result in place between the two renames;
    then that one is moved aside too and the rename is tried again.
    """
    for attempt in range(_REPLACE_ATTEMPTS):
        aside = final.with_name(aside_name(final.name))
        try:
            os.rename(final, aside)
        except FileNotFoundError:
            aside = None
        try:
            os.rename(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and attempt + 1 < _REPLACE_ATTEMPTS:
                _drop(aside)
                time.sleep(random.uniform(0, 0.005))
                continue
            _put_back(aside, final)
            raise
        except BaseException:
            _put_back(aside, final)
            raise
        _drop(aside)
        return


def _put_back(aside: Path | None, final: Path) -> None:
    if aside is None:
        return
    try:
        os.rename(aside, final)
    except OSError:
        remove(aside)  # another process's result is in place now


def _drop(aside: Path | None) -> None:
    if aside is None:
        return
    try:
        remove(aside)
    except BaseException:
        remove(aside)  # finish the removal when interrupted half-way, then stop
        raise
