"""The stack type: an image array with its physical voxel size.

Everything downstream takes either a :class:`Stack` or a plain array plus ``spacing``
in micrometres, one value per spatial axis: (z, y, x) for a volume, (y, x) for a 2D image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .errors import InputError

#: Canonical axis order. A stack holds a subset of these, in this order.
CANONICAL_AXES = "TCZYX"


@dataclass(frozen=True)
class Stack:
    """An image (numpy or dask array) with its voxel size in µm.

    Attributes
    ----------
    data : array
        numpy or dask array; axes are a subset of ``"TCZYX"`` in that order.
    spacing : tuple of float
        Voxel size in µm, one value per spatial axis: (z, y, x) for a volume, (y, x) for a
        2D image (axes without Z). No z size is ever made up for a 2D image.
    axes : str
        Axis letters of ``data``, e.g. ``"ZYX"``, ``"CZYX"``, or ``"YX"`` for a 2D image.
    channel_names : tuple of str
        One name per channel (empty when there is no channel axis).
    source : str or None
        Path the stack was read from.
    spacing_source : str
        Where ``spacing`` came from: ``"metadata"``, ``"override"``, ``"sample"`` or
        ``"array"`` (given in Python).
    metadata : dict
        Free-form facts the reader found (file format, original axes, units ...).
    """

    data: Any
    spacing: tuple[float, ...]
    axes: str = "ZYX"
    channel_names: tuple[str, ...] = ()
    source: str | None = None
    spacing_source: str = "array"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.axes) != self.data.ndim:
            raise InputError(
                f"The stack has {self.data.ndim} dimensions but {len(self.axes)} axis names "
                f"({self.axes!r}); give one letter from TCZYX per dimension."
            )
        spacing = tuple(float(s) for s in self.spacing)
        if len(spacing) != len(self.spatial_axes):
            raise InputError(
                f"The stack has spatial axes {self.spatial_axes} but {len(spacing)} voxel sizes "
                f"{spacing}; give one per spatial axis ("
                + ("Y X for a 2D image" if self.is_2d else "Z Y X for a volume") + ")."
            )
        object.__setattr__(self, "spacing", spacing)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def spatial_axes(self) -> str:
        """``"ZYX"`` for a volume, ``"YX"`` for a 2D image: the axes ``spacing`` describes."""
        return "".join(a for a in "ZYX" if a in self.axes)

    @property
    def is_2d(self) -> bool:
        """True for a 2D image (no Z axis); its ``spacing`` is (y, x)."""
        return "Z" not in self.axes

    @property
    def is_lazy(self) -> bool:
        return not isinstance(self.data, np.ndarray)

    def size_of(self, axis: str) -> int:
        """Length of ``axis`` (1 when the stack has no such axis)."""
        return self.shape[self.axes.index(axis)] if axis in self.axes else 1

    @property
    def extent_um(self) -> tuple[float, ...]:
        """Physical size in µm along the spatial axes: (z, y, x), or (y, x) for a 2D image."""
        return tuple(self.size_of(a) * s for a, s in zip(self.spatial_axes, self.spacing))

    def select(self, *, channel: int | None = None, time: int | None = None) -> "Stack":
        """Return the (Z, Y, X) volume, or the (Y, X) image of a 2D stack, of one channel and time point.

        A 2D stack stays 2D (no Z axis is added). Raises :class:`InputError` when the stack
        has several channels or time points and none was chosen, or an index is out of range.
        """
        data, axes = self.data, self.axes
        names = self.channel_names
        for letter, index, what, flag in (("T", time, "time points", "--time"),
                                           ("C", channel, "channels", "--channel")):
            if letter not in axes:
                if index not in (None, 0):
                    raise InputError(
                        f"You asked for {what[:-1]} {index}, but {self._describe()} has no "
                        f"{what}. Leave out {flag}."
                    )
                continue
            n = data.shape[axes.index(letter)]
            if index is None:
                if n == 1:
                    index = 0
                else:
                    hint = ""
                    if letter == "C" and names:
                        hint = " (" + ", ".join(f"{i}: {c}" for i, c in enumerate(names)) + ")"
                    if letter == "C" and self.metadata.get("rgb"):
                        raise InputError(
                            f"{self._describe()} is an RGB colour image{hint}, but spinequant "
                            f"analyses one fluorescence channel. Choose the colour that holds the "
                            f"signal with --channel N, or convert the stack to grayscale (Fiji: "
                            f"Image > Type > 8-bit) and save it again."
                        )
                    raise InputError(
                        f"{self._describe()} has {n} {what}{hint}; spinequant analyses one at a "
                        f"time. Choose one with {flag} N (0 to {n - 1})."
                    )
            if not -n <= index < n:
                raise InputError(
                    f"{what[:-1].capitalize()} {index} does not exist: {self._describe()} has "
                    f"{n} {what}, numbered 0 to {n - 1}. Choose one in that range with {flag}."
                )
            pos = axes.index(letter)
            data = data[(slice(None),) * pos + (index,)]
            axes = axes.replace(letter, "")
            if letter == "C":
                names = (names[index],) if names else ()
        return replace(self, data=data, axes=axes, channel_names=names)

    def compute(self) -> "Stack":
        """Return the same stack with its data loaded into memory as numpy."""
        if not self.is_lazy:
            return self
        return replace(self, data=np.asarray(self.data))

    def _describe(self) -> str:
        return f"'{self.source}'" if self.source else "The stack"
