"""Turn stage configs (frozen dataclasses) into JSON-ready dicts and back."""

from __future__ import annotations

import dataclasses
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
