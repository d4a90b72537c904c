"""Ctrl-C (SIGINT) and SIGTERM as an exception in the main thread, for the command line only.

Python stops a process at SIGTERM without running any clean-up; raised as an exception, both
signals unwind the run so that :func:`spinequant._atomic.atomic_path` removes what was half
written. The library itself never installs handlers.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_HOW = {signal.SIGINT: "Interrupted (Ctrl-C)",
        signal.SIGTERM: "Stopped by SIGTERM (the signal a cluster's time limit or 'kill' sends)"}

# The first signal received while the handlers are installed, until they are removed.
_received: list[int] = []


class Interrupted(KeyboardInterrupt):
    """The process received SIGINT or SIGTERM; ``outcome`` says what became of the results."""

    def __init__(self, signum: int, outcome: str | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.outcome = outcome


def received() -> int | None:
    """The signal that asked this run to stop, if any did."""
    return _received[0] if _received else None


def raise_if_received(outcome: str | None = None) -> None:
    """Stop here if a signal arrived whose exception a library swallowed, or that came too
    late to stop anything; ``outcome`` says what became of the results then.

    trimesh, for one, catches every exception while it imports optional parts, an interrupt
    included, and goes on.
    """
    if _received:
        raise Interrupted(_received[0], outcome)


def with_outcome(exc: KeyboardInterrupt, outcome: str) -> Interrupted:
    """The interrupt ``exc`` together with what became of the results, for the message."""
    return Interrupted(getattr(exc, "signum", None) or received() or signal.SIGINT, outcome)


def exit_code(exc: BaseException) -> int:
    """128 + the signal number, as shells report a process ended by that signal."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def message(exc: BaseException) -> str:
    """One line for the user: how the run was stopped and what became of its results."""
    signum = getattr(exc, "signum", signal.SIGINT)
    outcome = getattr(exc, "outcome", None) or "results that were not finished were removed"
    return f"{_HOW.get(signum, 'Interrupted')}; {outcome}."


@contextlib.contextmanager
def signals_as_exceptions(*, exiting: bool = False):
    """Raise :class:`Interrupted` in the main thread at SIGINT and SIGTERM inside the block.

    A second signal that arrives while the first one's exception is being handled (clean-up
    under way) is not raised again, so the clean-up finishes. With ``exiting`` (the process
    ends after the block) SIGINT and SIGTERM after the block are ignored instead of restoring
    Python's handlers: they would end a finished run, its results complete, with exit -2 or
    -15 and no message.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    previous_hook = sys.unraisablehook

    def quiet_interrupts(unraisable) -> None:
        # A signal handled inside a callback whose exceptions Python can only print and drop
        # (a weakref's, an import lock's): no traceback for the user; the signal is recorded
        # and raised at the run's next progress step (raise_if_received).
        if not isinstance(unraisable.exc_value, Interrupted):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_interrupts
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_IGN if exiting else handler)
        _received.clear()


def _handler(signum, frame) -> None:
    if not _received:
        _received.append(signum)
    if not _cleaning_up():
        raise Interrupted(_received[0])


def _cleaning_up() -> bool:
    """Whether the exception being handled right now is (caused by) an interrupt."""
    exc = sys.exc_info()[1]
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False
