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


class Cancelled(BaseException):
    """Raised by a ``progress`` callback to stop a running analysis or training.

    :func:`spinequant.analyze` and :func:`spinequant.segment.neural.train` call their progress
    callback between small pieces of work (a batch of network tiles, a step of the spine-object
    stage, a few spines measured, a training step); a callback that raises ``Cancelled`` stops
    the call there, and the exception reaches the caller unchanged. Like ``KeyboardInterrupt``
    it is not an ``Exception``, so no ``except Exception`` on the way swallows it (a folder
    run stops instead of marking the stack failed and going on). Nothing is left half-written:
    ``analyze`` writes nothing; ``save_result`` removes what it had written; training keeps
    the best model and the checkpoint of the last finished epoch (a later run resumes there).
    """
