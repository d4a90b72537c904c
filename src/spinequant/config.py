"""Stage configs (frozen dataclasses): one way to check them, and JSON-ready dicts and back.

Every stage config calls :func:`check_fields` from its ``__post_init__``, so a bad setting is
refused when the config is made (from Python, from ``run.json`` or from the command line),
before any work starts, with a message that names the setting.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing

from .errors import InputError


def config_to_dict(config) -> dict:
    """``dataclasses.asdict`` with tuples kept as lists (JSON)."""
    return dataclasses.asdict(config)


def config_from_dict(cls, values: dict | None):
    """Build dataclass ``cls`` from ``values`` (e.g. read from a ``run.json``).

    Nested dataclass fields are built recursively, lists become tuples where the field is a
    tuple, and unknown keys raise :class:`InputError` naming them.
    """
    if values is None:
        return cls()
    if dataclasses.is_dataclass(values):
        return values
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise InputError(
            f"Unknown setting(s) {unknown} for {cls.__name__}; known settings are {sorted(names)}."
        )
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        nested = _dataclass_in(hint)
        if nested is not None and isinstance(value, dict):
            value = config_from_dict(nested, value)
        elif isinstance(value, list) and _is_tuple(hint):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def check_fields(config, *, ranges: dict | None = None, choices: dict | None = None) -> None:
    """Check every field of a stage config against its type hint and limits.

    Numbers must not be NaN and, unless ``ranges`` says otherwise, >= 0; ``ranges`` maps a
    field to ``(low, high, low_open, high_open)`` (``None`` for no bound); ``choices`` maps a
    field to its allowed values (for a ``str | float`` field, the allowed words). Tuples are
    checked element by element and for their length; ``None`` only where the hint allows it.
    Nested configs check themselves when they are made.
    """
    ranges, choices = ranges or {}, choices or {}
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        where = f"{type(config).__name__}.{f.name}"
        problem = _field_problem(value, hints[f.name], ranges.get(f.name), choices.get(f.name))
        if problem:
            raise InputError(f"The setting {where}={value!r} is not valid: {problem}.")


def _field_problem(value, hint, limits, allowed) -> str | None:
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    if value is None:
        return None if type(None) in options else "it must be given (not None)"
    problems = []
    for option in options:
        if option is type(None):
            continue
        problem = _option_problem(value, option, limits, allowed)
        if problem is None:
            return None
        problems.append(problem)
    return "; or ".join(problems)


def _option_problem(value, option, limits, allowed) -> str | None:
    origin = typing.get_origin(option)
    if dataclasses.is_dataclass(option):
        return None if isinstance(value, option) else f"it must be a {option.__name__}"
    if origin is tuple:
        args = typing.get_args(option)
        if not isinstance(value, (tuple, list)):
            return "it must be a list of numbers"
        if args and args[-1] is not Ellipsis and len(value) != len(args):
            return f"it must have {len(args)} values, not {len(value)}"
        for v in value:
            problem = _option_problem(v, args[0], limits, None)
            if problem:
                return problem
        return None
    if option is bool:
        return None if isinstance(value, bool) else "it must be true or false"
    if option is str:
        if not isinstance(value, str):
            return "it must be a word"
        if allowed is not None and value not in allowed:
            return f"choose one of {list(allowed)}"
        return None
    if option in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (option is int and not float(value).is_integer()):
            return "it must be a whole number" if option is int else "it must be a number"
        if math.isnan(value):   # infinity is a legitimate "no limit"
            return "it must be a number, not NaN"
        if allowed is not None and all(isinstance(a, (int, float)) for a in allowed) \
                and value not in allowed:
            return f"choose one of {list(allowed)}"
        low, high, low_open, high_open = limits or (0, None, False, False)
        if low is not None and (value < low or (low_open and value == low)):
            return f"it must be {'above' if low_open else 'at least'} {low}"
        if high is not None and (value > high or (high_open and value == high)):
            return f"it must be {'below' if high_open else 'at most'} {high}"
        return None
    return None   # dicts and other free-form fields are checked where they are used


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _dataclass_in(hint):
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def _is_tuple(hint) -> bool:
    if typing.get_origin(hint) is tuple:
        return True
    return any(typing.get_origin(a) is tuple for a in typing.get_args(hint))
