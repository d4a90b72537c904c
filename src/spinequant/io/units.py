"""Length units as written by microscopy formats, converted to micrometres."""

from __future__ import annotations

from ..validate import tidy_length

_TO_UM = {
    "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0,
    "micrometre": 1.0, "\\u00b5m": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3,
    "mm": 1e3, "millimeter": 1e3, "millimetre": 1e3,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4,
    "m": 1e6, "meter": 1e6, "metre": 1e6,
    "å": 1e-4, "a": 1e-4, "angstrom": 1e-4,
    "pm": 1e-6, "picometer": 1e-6,
    "in": 25400.0, "inch": 25400.0,
}


def unit_to_um(unit: str | None) -> float | None:
    """Factor that turns a length in ``unit`` into µm, or ``None`` for unknown/pixel units."""
    if unit is None:
        return None
    key = str(unit).strip().lower()
    return _TO_UM.get(key)


def tidy(value: float) -> float:
    """Round away the error of storing a length as a TIFF rational (7 significant digits,
    as every voxel size is taken: :func:`~spinequant.validate.tidy_length`)."""
    return tidy_length(value)


def scaled(value: float, factor: float) -> float:
    """``value * factor`` without the last-digit noise of the unit conversion (12 significant digits).

    So 94 nm becomes exactly 0.094 µm, as the user wrote it.
    """
    return float(f"{float(value) * factor:.12g}")
