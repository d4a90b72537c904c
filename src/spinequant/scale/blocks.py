"""Cutting a (Z, Y, X) volume into blocks in y and x, each with a halo of context.

Blocks span the whole z extent: microscopy stacks are thin in z (tens to a few hundred
planes, 0.3-1 µm apart) and wide in y/x, so a y/x grid alone keeps blocks small, and a
network that reads planes with their neighbours as context needs nothing more in z.

Each block has a *core* (its share of the volume; the cores tile it without overlap) and a
*window*: the core widened by a halo on every side (clipped at the volume's border). Work is
done on the window and only the core is kept, so the halo must hold everything that can
change a core voxel's result:

- **maps** (:func:`maps_halo_um`): for a network, one tile (plus 2 px): a block runs the
  whole volume's tiles that lie inside its window, so the window must hold every tile that
  covers a core voxel. lean2d_real's tiles are at most 288 px at its 0.094 µm grid, so
  290 px = **27.3 µm** on each side (304 px once aligned). (Its receptive field,
  :func:`receptive_field_px`, is 220 px; a halo of half of it was enough for the context, but
  not for the blocks' maps to equal the whole volume's: each tile is seen with zero padding,
  so a map depends on where the tiles fall.) For the classical method, the reach
  of its background estimate (an opening and a mean over ``background_scale_um``, 1.5 x 10 µm)
  plus the longest spine its shaft analysis prunes (``max_spine_length_um``, 4 µm): **19 µm**.
- **spine objects** (:func:`objects_halo_um`): an object is kept by the block that owns its
  centre, so the window must hold the whole object around that centre (the longest spine,
  :data:`MAX_SPINE_LENGTH_UM` = 4 µm), the dendrite it must lie near
  (``max_distance_to_dendrite_um``, 3 µm for lean2d_real) and the bright gaps dendrite pieces
  are bridged over (``bridge_gap_um``, 2.5 µm): **9.5 µm** for lean2d_real, 7.5 µm for the
  classical method (1 µm to the dendrite).

Halos are rounded up to whole multiples of :data:`~spinequant.scale.config.ALIGN_PX` pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError
from .config import ALIGN_PX

#: The longest dendritic spines (µm from base to tip), as the classical method's
#: ``max_spine_length_um``; a spine object reaches at most this far from its centre.
MAX_SPINE_LENGTH_UM = 4.0


@dataclass(frozen=True)
class Block:
    """One block: its index in the grid, its core and its window (y and x slices of the volume)."""

    index: tuple[int, int]
    core: tuple[slice, slice]
    window: tuple[slice, slice]

    @property
    def name(self) -> str:
        return f"{self.index[0]}_{self.index[1]}"

    @property
    def core_in_window(self) -> tuple[slice, slice]:
        """The core as slices of the window."""
        return tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(self.core, self.window))

    @property
    def window_shape(self) -> tuple[int, int]:
        return tuple(w.stop - w.start for w in self.window)


def aligned(px: float) -> int:
    """``px`` rounded up to a multiple of :data:`ALIGN_PX`."""
    return int(math.ceil(max(px, 0) / ALIGN_PX) * ALIGN_PX)


def halo_px(halo_um: float, spacing) -> int:
    """A halo in µm as whole pixels in y/x (the finer of the two), aligned."""
    return aligned(halo_um / min(float(spacing[1]), float(spacing[2])))


def block_grid(shape, *, chunk_px: int, halo: int, align: int = 1) -> list[Block]:
    """The blocks of a (Z, Y, X) ``shape``: cores ``chunk_px`` wide in y/x (the last ones
    smaller), windows ``halo`` pixels wider on each side, clipped to the volume. Windows start
    at multiples of ``align`` (a little more halo before the core), so that grids a method
    lays from a window's first pixel fall where they fall in the whole volume.

    Examples
    --------
    >>> blocks = block_grid((8, 100, 60), chunk_px=48, halo=16)
    >>> [(b.name, b.core[0].start, b.core[0].stop, b.window[0].start, b.window[0].stop) for b in blocks[:3]]
    [('0_0', 0, 48, 0, 64), ('0_1', 0, 48, 0, 64), ('1_0', 48, 96, 32, 100)]
    """
    if len(shape) != 3:
        raise InputError(f"Chunked analysis needs a 3D (Z, Y, X) volume; got shape {tuple(shape)}.")
    if chunk_px < ALIGN_PX:
        raise InputError(f"The chunk size must be at least {ALIGN_PX} pixels; got {chunk_px}.")
    _, ny, nx = shape
    blocks = []
    for by, y0 in enumerate(range(0, ny, chunk_px)):
        for bx, x0 in enumerate(range(0, nx, chunk_px)):
            core = (slice(y0, min(y0 + chunk_px, ny)), slice(x0, min(x0 + chunk_px, nx)))
            window = tuple(slice(max((c.start - halo) // align * align, 0), min(c.stop + halo, n))
                           for c, n in zip(core, (ny, nx)))
            blocks.append(Block((by, bx), core, window))
    return blocks


def receptive_field_px(architecture: dict) -> int:
    """Receptive field (pixels in y/x, at the model's grid) of a network architecture.

    A dual 2D U-Net: space-to-depth ``s``, then per encoder level two 3 x 3 convolutions and a
    2 x 2 pooling, two convolutions in the latent space, and per decoder level a bilinear
    upsampling and two convolutions; each 3 x 3 convolution at stride ``j`` widens the field
    by 2 j. Other architectures: their tile size (they see no further than one tile).

    >>> receptive_field_px({"kind": "dual_unet2d", "depth": 3, "space_to_depth": 2})
    220
    """
    if architecture.get("kind") != "dual_unet2d":
        return int(architecture.get("tile_size", 256))
    s, depth = int(architecture.get("space_to_depth", 1)), int(architecture["depth"])
    field, jump = s, s
    for _ in range(depth):                   # encoder: two convolutions, then pooling
        field += 4 * jump + jump
        jump *= 2
    field += 4 * jump                        # latent space
    for _ in range(depth):                   # decoder: upsampling, then two convolutions
        field += jump
        jump //= 2
        field += 4 * jump
    return field


def maps_halo_um(method: str, classical_config=None) -> float:
    """Context (µm) a block needs around its core for its maps to equal the whole volume's."""
    from ..segment import CLASSICAL

    if method == CLASSICAL:
        from ..segment.classical import ClassicalConfig

        cfg = classical_config or ClassicalConfig()
        return 1.5 * cfg.background_scale_um + cfg.max_spine_length_um
    from ..segment.neural.card import read_card

    card = read_card(method)
    return network_halo_px(card.tile_size) * float(card.voxel_size_um[1])


def network_halo_px(tile_size: int) -> int:
    """Context (pixels at the model's grid) a block needs for a network's maps: a block runs
    the whole volume's tiles that lie inside its window (:func:`~spinequant.segment.neural.
    tiling.sliding_window` with ``grid=``), so the window must hold every tile that covers a
    core voxel, which reaches at most one tile edge less a pixel past the core, plus one
    pixel for the linear resampling to and from the model grid, and one to spare.

    >>> network_halo_px(288)
    290
    """
    return int(tile_size) + 2


def window_align(method: str, spacing, classical_config=None) -> int:
    """Pixels (y/x) a window's start must be a multiple of for ``method``'s results on it to
    equal the whole volume's: :data:`ALIGN_PX` (the network's pooling grid), and for the
    classical method also its background grid and its shaft grid (they start at a window's
    first pixel)."""
    from ..segment import CLASSICAL

    align = ALIGN_PX
    if method == CLASSICAL:
        from ..segment.classical import ClassicalConfig

        cfg = classical_config or ClassicalConfig()
        for s in spacing[1:]:
            align = math.lcm(align, max(1, int(cfg.background_scale_um / (4 * s))),
                             max(1, int(round(cfg.shaft_grid_um / s))))
    return align


def objects_halo_um(instance_config) -> float:
    """Context (µm) a block needs around its core for the spine objects it owns to be whole."""
    to_dendrite = instance_config.max_distance_to_dendrite_um or 0.0
    return MAX_SPINE_LENGTH_UM + to_dendrite + instance_config.bridge_gap_um
