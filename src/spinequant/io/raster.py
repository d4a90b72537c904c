"""PNG and JPEG images: 2D, decoded with imagecodecs. They carry no pixel size in µm.

PNG's ``pHYs`` chunk and JPEG's JFIF density describe a print size (dots per inch or metre),
never the microscope's pixel, so they are not read: the pixel size must be given.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..stack import Stack
from .axes import RGB_NAMES, grey_from_rgb

#: Suffix -> format name of the files this module reads.
RASTER_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def open_raster(path: str | os.PathLike) -> Stack:
    """Read a PNG or JPEG file as a 2D :class:`Stack` (axes ``YX``, or ``CYX`` for true colour).

    A grey image stored as RGB(A) with equal channels becomes one grey plane
    (``metadata["stored_as_rgb"]``); an alpha channel is dropped. ``spacing`` is (nan, nan).
    """
    import imagecodecs

    path = Path(path)
    fmt = RASTER_FORMATS.get(path.suffix.lower(), "image")
    codec = imagecodecs.png_decode if fmt == "PNG" else imagecodecs.jpeg8_decode
    try:
        data = np.asarray(codec(path.read_bytes()))
    except Exception as exc:  # the codecs raise their own error types for damaged files
        raise InputError(
            f"'{path}' cannot be decoded as a {fmt} image ({exc}): it is damaged, incomplete or "
            f"another format with a {path.suffix} ending. Copy the file again, or save the image "
            f"again (Fiji: File > Save As > Tiff)."
        ) from None
    notes = [f"{fmt} files record no pixel size in µm"]
    if data.ndim == 2:
        return _stack(data, "YX", (), path, fmt, notes, rgb=False, stored_as_rgb=False)
    samples = data.shape[-1]
    if data.ndim != 3 or samples not in (2, 3, 4):
        raise InputError(f"'{path}' decodes to an array of shape {data.shape}, which is not a 2D image.")
    if samples == 2:  # grey + alpha
        notes.append("grey image with an alpha channel: the alpha channel is ignored")
        return _stack(data[..., 0], "YX", (), path, fmt, notes, rgb=False, stored_as_rgb=False)
    colours = np.moveaxis(data, -1, 0)
    if samples == 4:
        notes.append("RGBA image: the alpha channel is ignored")
        colours = colours[:3]
    grey, axes, stored_as_rgb = grey_from_rgb(colours, "CYX", notes)
    if stored_as_rgb:
        return _stack(grey, axes, (), path, fmt, notes, rgb=False, stored_as_rgb=True)
    notes.append("RGB colour image: its colours are read as channels")
    return _stack(np.ascontiguousarray(colours), "CYX", RGB_NAMES[:3], path, fmt, notes,
                  rgb=True, stored_as_rgb=False)


def _stack(data, axes, channels, path, fmt, notes, *, rgb, stored_as_rgb) -> Stack:
    metadata = {"format": fmt, "file_axes": "YXS" if (rgb or stored_as_rgb) else "YX", "notes": notes,
                "rgb": rgb}
    if stored_as_rgb:
        metadata["stored_as_rgb"] = True
    return Stack(data=data, spacing=(np.nan, np.nan), axes=axes, channel_names=tuple(channels),
                 source=str(path), spacing_source="metadata", metadata=metadata)
