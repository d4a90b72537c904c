"""PNG and JPEG images: 2D, decoded with imagecodecs. They carry no pixel size in µm.

PNG's ``pHYs`` chunk and JPEG's JFIF density describe a print size (dots per inch or metre),
never the microscope's pixel, so they are not read: the pixel size must be given.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import IncompleteDataWarning, InputError
from ..stack import Stack
from .axes import RGB_NAMES, grey_from_rgb

#: Suffix -> format name of the files this module reads.
RASTER_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def open_raster(path: str | os.PathLike, *, allow_incomplete: bool = False) -> Stack:
    """Read a PNG or JPEG file as a 2D :class:`Stack` (axes ``YX``, or ``CYX`` for true colour).

    A grey image stored as RGB(A) with equal channels becomes one grey plane
    (``metadata["stored_as_rgb"]``); an alpha channel is dropped. ``spacing`` is (nan, nan).
    A truncated JPEG raises :class:`InputError` unless ``allow_incomplete`` (then it is read
    with an :class:`IncompleteDataWarning`).
    """
    import imagecodecs

    path = Path(path)
    fmt = RASTER_FORMATS.get(path.suffix.lower(), "image")
    codec = imagecodecs.png_decode if fmt == "PNG" else imagecodecs.jpeg8_decode
    raw = path.read_bytes()
    incomplete = _truncated_jpeg(path, allow_incomplete) if fmt == "JPEG" and jpeg_truncated(raw) else None
    try:
        data = np.asarray(codec(raw))
    except Exception as exc:  # the codecs raise their own error types for damaged files
        raise InputError(
            f"'{path}' cannot be decoded as a {fmt} image ({exc}): it is damaged, incomplete or "
            f"another format with a {path.suffix} ending. Copy the file again, or save the image "
            f"again (Fiji: File > Save As > Tiff)."
        ) from None
    stack = _image_stack(data, path, fmt)
    if incomplete:
        stack.metadata["incomplete"] = incomplete
        stack.metadata["notes"].append(f"INCOMPLETE FILE read with --allow-incomplete: {incomplete}")
    return stack


def _image_stack(data: np.ndarray, path: Path, fmt: str) -> Stack:
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


def jpeg_truncated(raw: bytes) -> bool:
    """Whether JPEG data stop before their end-of-image marker (FF D9).

    libjpeg decodes such a file without an error, filling the missing rows with grey. The
    marker cannot occur inside the compressed data (an FF byte there is followed by 00).
    """
    return raw.rfind(b"\xff\xd9") < raw.rfind(b"\xff\xda")


def _truncated_jpeg(path: Path, allow_incomplete: bool) -> str:
    message = (f"'{path}' is truncated: its JPEG data stop before the end of the image, so the "
               f"lower part of the image is missing (it would be read as flat grey).")
    if not allow_incomplete:
        raise InputError(
            f"{message} Copy the file again, or save the image again (Fiji: File > Save As > Tiff). "
            f"To analyse the part that is there, run the command again with --allow-incomplete "
            f"(in Python: allow_incomplete=True)."
        )
    warnings.warn(f"{message} It is read anyway (--allow-incomplete); results in the grey part mean "
                  f"nothing.", IncompleteDataWarning, stacklevel=4)
    return message


def _stack(data, axes, channels, path, fmt, notes, *, rgb, stored_as_rgb) -> Stack:
    metadata = {"format": fmt, "file_axes": "YXS" if (rgb or stored_as_rgb) else "YX", "notes": notes,
                "rgb": rgb}
    if stored_as_rgb:
        metadata["stored_as_rgb"] = True
    return Stack(data=data, spacing=(np.nan, np.nan), axes=axes, channel_names=tuple(channels),
                 source=str(path), spacing_source="metadata", metadata=metadata)
