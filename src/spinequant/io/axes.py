"""Map the axis letters a file declares onto spinequant's canonical ``TCZYX``."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..stack import CANONICAL_AXES

# Letters readers use for the same thing: tifffile's S (samples, e.g. RGB) is a channel,
# I/Q/P (unnamed image sequence / plane) is taken as Z when no Z is declared.
_ALIASES = {"S": "C", "A": "C", "E": "C"}
#: Channel names given to the colour samples of an RGB(A) image.
RGB_NAMES = ("red", "green", "blue", "alpha")

_SEQUENCE = ("I", "Q", "P", "R", "L", "M", "V", "H")


def to_canonical(data, axes: str, *, source: str = "the file"):
    """Drop singleton unnamed axes and transpose ``data`` to a subset of ``TCZYX``.

    Returns ``(data, axes, notes)``; ``notes`` lists assumptions made, for ``info``.
    """
    axes = axes.upper()
    notes: list[str] = []
    if len(axes) != data.ndim:
        raise InputError(f"{source}: {data.ndim} dimensions but axes {axes!r}; the file's metadata is inconsistent.")
    letters = []
    keep = []
    for i, (a, n) in enumerate(zip(axes, data.shape)):
        a = _ALIASES.get(a, a)
        if a in _SEQUENCE:
            if n == 1:
                continue
            if "Z" not in axes and "Z" not in letters:
                notes.append(f"axis '{axes[i]}' of length {n} taken as Z (the file does not name it)")
                a = "Z"
        if a == "Z" and n == 1:
            notes.append("a single plane: read as a 2D image (Y, X)")
            continue
        if a not in CANONICAL_AXES:
            if n == 1:
                continue
            raise InputError(
                f"{source} has an axis '{axes[i]}' of length {n} that spinequant cannot interpret "
                f"(it understands T, C, Z, Y, X). Save the stack as a Z-stack (ImageJ hyperstack or "
                f"OME-TIFF) with named axes."
            )
        if a in letters:
            if n == 1:
                continue
            j = letters.index(a)
            if data.shape[keep[j]] == 1:
                letters.pop(j)
                keep.pop(j)
            else:
                raise InputError(f"{source} declares axis {a} twice ({axes}); the file's metadata is inconsistent.")
        letters.append(a)
        keep.append(i)
    drop = tuple(i for i in range(data.ndim) if i not in keep)
    if drop:
        data = data[tuple(0 if i in drop else slice(None) for i in range(data.ndim))]
    order = sorted(range(len(letters)), key=lambda k: CANONICAL_AXES.index(letters[k]))
    if order != list(range(len(letters))):
        data = np.transpose(data, order) if isinstance(data, np.ndarray) else data.transpose(order)
    canon = "".join(letters[k] for k in order)
    if "Y" not in canon or "X" not in canon:
        raise InputError(f"{source} has no Y and X image axes (axes {axes}); it does not look like an image.")
    return data, canon, notes


def default_axes(ndim: int) -> str:
    """Axes assumed for an array with no axis metadata."""
    try:
        return {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}[ndim]
    except KeyError:
        raise InputError(f"An image needs 2 to 5 dimensions; this one has {ndim}.") from None


def spatial_spacing(axes: str, spacing_zyx) -> tuple[float, ...]:
    """A file's (z, y, x) voxel size cut to the stack's spatial axes: (y, x) without a Z axis."""
    spacing_zyx = tuple(spacing_zyx)
    return spacing_zyx if "Z" in axes else spacing_zyx[1:]


def grey_from_rgb(data, axes: str, notes: list[str]):
    """Read an RGB(A) image whose colour channels are equal as one grey image.

    ``data`` has canonical ``axes`` with the colour samples on C. Returns ``(data, axes,
    stored_as_rgb)``; true colour (channels that differ) is returned unchanged. Only numpy
    data are checked (lazy arrays keep their channels).
    """
    if "C" not in axes or not isinstance(data, np.ndarray) or data.shape[axes.index("C")] not in (3, 4):
        return data, axes, False
    c = axes.index("C")
    red, green, blue = (np.take(data, i, axis=c) for i in range(3))
    if not (np.array_equal(red, green) and np.array_equal(red, blue)):
        return data, axes, False
    notes.append("grey image stored as RGB (equal channels): read as one grey channel")
    return red, axes.replace("C", ""), True
