"""The ``spinequant`` command. Each subcommand lives in its own module and only parses
arguments, calls the library and prints; errors in the user's input are printed as one
paragraph without a traceback."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import textwrap
import warnings

from ..errors import SpinequantError, SpinequantWarning
from . import _signals

# Every public module of this package is a subcommand: it has ``register(subparsers)``,
# which adds its parser and sets ``func``. Modules starting with "_" are helpers.
COMMANDS = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))

EXIT_INPUT = 2
EXIT_BUG = 70
#: What became of the results when a signal stops the command before it has parsed its arguments.
STARTING = "nothing was written (it was still starting)"
#: A signal handled only once the command had returned: every result it wrote is whole.
FINISHED = "it came after the command had finished, and its results are complete"


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` naming a command, only that command's module is imported
    (the others pull in torch and take seconds)."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="spinequant",
        description="Find and measure dendrites and dendritic spines in 3D microscopy stacks.",
    )
    parser.add_argument("--version", action="version", version=f"spinequant {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in commands_named(argv):
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def commands_named(argv: list[str] | None) -> list[str]:
    """The command that ``argv`` names (a list of one), or all of them when it names none."""
    first = next((a for a in (argv or []) if not a.startswith("-")), "")
    module = first.replace("-", "_")  # export-onnx lives in export_onnx.py
    return [module] if module in COMMANDS else list(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    # Handlers first: the subcommands import numpy, zarr, torch..., and a Ctrl-C or SIGTERM
    # during those imports must end as cleanly as one during the analysis.
    with _signals.signals_as_exceptions(exiting=argv is None):
        args = None
        try:
            args = _parse(sys.argv[1:] if argv is None else list(argv))
            args.owns_process = argv is None   # the console script, not a caller in Python
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                code = int(args.func(args) or 0)
            _signals.raise_if_received(FINISHED)
            sys.stdout.flush()
            return code
        except BrokenPipeError:
            return _closed_pipe()
        except (KeyboardInterrupt, Exception) as exc:
            return _report(exc, debug=getattr(args, "debug", False), starting=args is None)


def _closed_pipe() -> int:
    """The reader of our output went away (``spinequant evaluate ... | head``): stop quietly,
    as command-line tools do, with the exit code of a process ended by SIGPIPE."""
    import os

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # no error at exit's flush
    return 128 + 13


def _parse(argv: list[str]) -> argparse.Namespace:
    try:
        return build_parser(argv).parse_args(argv)
    except KeyboardInterrupt as exc:
        raise _signals.with_outcome(exc, STARTING) from None


def _report(exc: BaseException, *, debug: bool, starting: bool = False) -> int:
    """Print the error that ended a command as one paragraph and give the exit code; re-raise
    anything that is not the user's to fix (a bug shows its traceback). ``starting``: the
    command had not got as far as its arguments."""
    if not isinstance(exc, KeyboardInterrupt) and _signals.received() is not None:
        # An error after a swallowed interrupt (a library left half imported) is the
        # interrupt's doing, not a problem of its own.
        exc = _signals.Interrupted(_signals.received())
    if isinstance(exc, KeyboardInterrupt) and starting and not getattr(exc, "outcome", None):
        exc = _signals.with_outcome(exc, STARTING)
    if isinstance(exc, KeyboardInterrupt):
        _print_error(_signals.message(exc))
        return _signals.exit_code(exc)
    if isinstance(exc, SpinequantError) and not debug:
        _print_error(str(exc))
        return EXIT_INPUT
    if isinstance(exc, MemoryError):
        _print_error("Out of memory. Process a smaller crop, or a large volume in chunks (see the README).")
        return EXIT_INPUT
    raise exc


def _print_error(message: str, kind: str = "error") -> None:
    text = textwrap.fill(message, width=100, subsequent_indent="  ", break_long_words=False,
                         break_on_hyphens=False)
    print(f"spinequant: {kind}: {text}", file=sys.stderr)


_show_python_warning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # spinequant's own warnings (e.g. an incomplete file read with --allow-incomplete) are
    # messages for the user, printed like errors, not Python source locations.
    if issubclass(category, SpinequantWarning):
        _print_error(str(message), kind="WARNING")
    else:
        _show_python_warning(message, category, filename, lineno, file, line)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
