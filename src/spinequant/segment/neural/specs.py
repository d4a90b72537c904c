"""Architecture dicts (as a model card records them) and the tile geometry they imply.

Plain dicts and integers, no torch: an ONNX Runtime run needs them but not PyTorch. The
networks themselves are built from these dicts in :mod:`.architectures`.
"""

from __future__ import annotations

from typing import Any

#: Architectures by name, with their defaults. ``deepd3_*`` reproduce DeepD3's sizes.
PRESETS: dict[str, dict[str, Any]] = {
    "deepd3_32": {"kind": "dual_unet2d", "base_filters": 32, "depth": 4},
    "deepd3_16": {"kind": "dual_unet2d", "base_filters": 16, "depth": 4},
    "deepd3_8": {"kind": "dual_unet2d", "base_filters": 8, "depth": 4},
    "lean2d": {"kind": "dual_unet2d", "base_filters": 16, "depth": 3, "separable": True,
               "space_to_depth": 2, "z_context": 1},
    "lean2d_points": {"kind": "dual_unet2d", "base_filters": 16, "depth": 3, "separable": True,
                      "space_to_depth": 2, "z_context": 1, "point_head": True},
    "lean2d_points_deep": {"kind": "dual_unet2d", "base_filters": 16, "depth": 4,
                           "separable": True, "space_to_depth": 2, "z_context": 1,
                           "point_head": True},
    # filters shared over quarter turns and mirror images: 4 fields x 8 orientations
    "lean2d_points_p4m": {"kind": "dual_unet2d", "base_filters": 32, "depth": 3, "separable": True,
                          "space_to_depth": 2, "z_context": 1, "point_head": True, "symmetry": "p4m"},
    "unet3d": {"kind": "unet3d", "base_filters": 8, "depth": 3, "aniso_stages": 2},
}


def architecture(name_or_spec: str | dict) -> dict[str, Any]:
    """The full architecture dict (defaults filled in) for a preset name or a partial dict."""
    spec = dict(PRESETS[name_or_spec]) if isinstance(name_or_spec, str) else dict(name_or_spec)
    defaults = _DEFAULTS[spec["kind"]]
    return {**defaults, **spec}


_DEFAULTS = {
    "dual_unet2d": {"kind": "dual_unet2d", "base_filters": 32, "depth": 4, "separable": False,
                    "space_to_depth": 1, "z_context": 0, "padding_mode": "zeros",
                    "point_head": False, "symmetry": "none"},
    "unet3d": {"kind": "unet3d", "base_filters": 16, "depth": 4, "aniso_stages": 2,
               "padding_mode": "reflect"},
    # Not in PRESETS: trained by scripts/train_heads3d.py, not by ``spinequant train``.
    "heads3d": {"kind": "heads3d", "filters": [24, 48, 96], "space_to_depth": 4},
}

#: Kinds that see a block of planes (tile_depth) rather than one plane per tile.
KINDS_3D = ("unet3d", "heads3d")


def multiple_of(spec: dict) -> int:
    """Tile edges (y, x) must be a multiple of this for the network's pooling."""
    spec = architecture(spec)
    if spec["kind"] == "heads3d":            # two poolings in y/x
        return 4 * spec["space_to_depth"]
    return 2 ** spec["depth"] * spec.get("space_to_depth", 1)


def n_outputs(spec: dict) -> int:
    """Maps a network returns: dendrite, spine and, with a point head, spine-head centres; a
    ``heads3d`` network the head map alone."""
    spec = architecture(spec)
    if spec["kind"] == "heads3d":
        return 1
    return 3 if spec.get("point_head") else 2


def is_3d(spec: dict) -> bool:
    """Whether the network sees blocks of ``tile_depth`` planes (else one plane per tile)."""
    return architecture(spec)["kind"] in KINDS_3D


def z_multiple_of(spec: dict) -> int:
    """Tile depth (z) must be a multiple of this (3D networks only)."""
    spec = architecture(spec)
    if spec["kind"] == "heads3d":            # one pooling in z
        return 2
    if spec["kind"] != "unet3d":
        return 1
    return 2 ** max(0, spec["depth"] - spec["aniso_stages"])
