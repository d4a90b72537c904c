"""Names of the temporary files and folders that writes use, and which of them are stale.

A result is written as ``.NAME.partial-PID-HOST`` beside its final name and renamed into
place when complete; a folder that is replaced is first renamed aside to
``.NAME.old-PID-TOKEN-HOST``. The process id and host in the name tell a later run whether
the writer may still be at work: the files of a process that was killed (SIGKILL, a node
that went down) are removed by the next run that writes into the same folder.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

# The first label of the host name: enough to tell cluster nodes apart on a shared drive.
HOST = re.sub(r"[^A-Za-z0-9_]", "", socket.gethostname().split(".")[0]) or "host"

#: A temporary file of another machine is removed only after it has not changed for this long
#: (its process cannot be asked); no write takes nearly that long.
OTHER_HOST_GRACE_S = 24 * 3600.0

# Slack between a process's start time (whole seconds in /proc) and file times.
_CLOCK_SLACK_S = 2.0

_TEMP = re.compile(r"^\.(?P<final>.+)\.(?:partial-(?P<pid>\d+)|old-(?P<old_pid>\d+)-[0-9a-f]+)"
                   r"(?:-(?P<host>[A-Za-z0-9_]+))?$")


def partial_name(final_name: str, pid: int | None = None) -> str:
    """The name under which ``final_name`` is written until it is complete."""
    return f".{final_name}.partial-{os.getpid() if pid is None else pid}-{HOST}"


def aside_name(final_name: str) -> str:
    """A unique name to move a folder aside to while its replacement is renamed in."""
    return f".{final_name}.old-{os.getpid()}-{secrets.token_hex(4)}-{HOST}"


def temp_owner(name: str) -> tuple[str, int, str | None] | None:
    """``(final name, pid, host)`` of a temporary name, or None for any other name.

    Names written before the host was part of them (``.NAME.partial-PID``) have host None and
    count as this machine's.
    """
    m = _TEMP.match(name)
    if m is None:
        return None
    return m["final"], int(m["pid"] or m["old_pid"]), m["host"]


def final_of(path: Path) -> Path:
    """``path`` with every temporary component replaced by its final name (for messages)."""
    parts = [(temp_owner(p) or (p,))[0] for p in path.parts]
    return Path(*parts) if parts else path


def is_stale(path: Path, *, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary file or folder that no running process is writing."""
    owner = temp_owner(path.name)
    if owner is None:
        return False
    _, pid, host = owner
    try:
        changed = path.lstat().st_mtime
    except OSError:
        return False
    if host is not None and host != HOST:
        return (time.time() if now is None else now) - changed > OTHER_HOST_GRACE_S
    return not _may_be_writing(pid, changed)


def remove_stale(folder: Path) -> list[Path]:
    """Remove the stale temporary files and folders directly inside ``folder``."""
    try:
        candidates = [p for p in Path(folder).iterdir() if p.name.startswith(".") and temp_owner(p.name)]
    except OSError:
        return []
    removed = [p for p in candidates if is_stale(p)]
    for p in removed:
        remove(p)
    return removed


def remove_own(folder: Path, *, depth: int = 2) -> list[Path]:
    """Remove this process's temporary files in ``folder`` and its subfolders down to ``depth``."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        owner = temp_owner(p.name)
        if owner is not None and owner[1] == os.getpid() and owner[2] in (None, HOST):
            remove(p)
            removed.append(p)
        elif depth > 1 and p.is_dir() and not p.is_symlink():
            removed += remove_own(p, depth=depth - 1)
    return removed


def remove(p: Path) -> None:
    """Remove a file or folder tree if it is there; never raises (this is clean-up)."""
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    except OSError:
        pass


def _may_be_writing(pid: int, changed: float) -> bool:
    if not _alive(pid):
        return False
    started = _start_time(pid)
    if started is not None and started > changed + _CLOCK_SLACK_S:
        return False  # the id was given to a newer process after the writer ended
    command = _command_line(pid)
    return command is None or _could_run_spinequant(command)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OSError:
        return False
    return True


def _could_run_spinequant(command: str) -> bool:
    # A zombie has an empty command line; the spinequant command and any Python process
    # (scripts and notebooks use the library) may be writing.
    return "spinequant" in command or "python" in command.lower()


def _command_line(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), where /proc tells."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
