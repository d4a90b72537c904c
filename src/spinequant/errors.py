"""Errors that the user can act on.

Every problem with a user's input raises :class:`InputError` (or a subclass) whose message
names what is wrong and what to do. Front ends print the message without a traceback.
"""

from __future__ import annotations


class SpinequantError(Exception):
    """Base class of every error spinequant raises on purpose."""


class InputError(SpinequantError, ValueError):
    """The user's input (a file, an array, a parameter) cannot be used as given."""


class VoxelSizeError(InputError):
    """The voxel size is missing or implausible."""


class OutputError(SpinequantError, OSError):
    """A result cannot be written where the user asked."""


class SpinequantWarning(UserWarning):
    """Something the user should know about a result that spinequant still produced."""


class IncompleteDataWarning(SpinequantWarning):
    """A damaged or truncated input was read anyway (``allow_incomplete``); part of it is missing."""
