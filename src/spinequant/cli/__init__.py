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

# Every public module of this package is a subcommand: it has ``register(subparsers)``,
# which adds its parser and sets ``func``. Modules starting with "_" are helpers.
COMMANDS = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))

EXIT_INPUT = 2
EXIT_BUG = 70


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="spinequant",
        description="Find and measure dendrites and dendritic spines in 3D microscopy stacks.",
    )
    parser.add_argument("--version", action="version", version=f"spinequant {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.func(args) or 0)
    except SpinequantError as exc:
        if args.debug:
            raise
        _print_error(str(exc))
        return EXIT_INPUT
    except KeyboardInterrupt:
        _print_error("Interrupted; results that were not finished were not written.")
        return 130
    except MemoryError:
        _print_error("Out of memory. Process a smaller crop, or a large volume in chunks (see the README).")
        return EXIT_INPUT


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
