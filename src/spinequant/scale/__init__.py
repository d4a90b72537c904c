"""Chunked analysis of volumes larger than memory (issue #15).

A (Z, Y, X) volume is cut into blocks in y/x (whole z; :mod:`.blocks`); each block is
segmented with a halo and its core's maps written to Zarr (:mod:`.maps`); spine objects are
built block by block on the stored maps, each kept by the block that owns its centre, and
dendrites stitched across block faces into global ids (:mod:`.objects`);
:func:`analyze_chunked` measures them and writes the usual result folder. See docs/scale.md.
"""

from .analyze import WORK_DIR, analyze_chunked, chunked_labels
from .volume import open_volume
from .blocks import Block, block_grid, halo_px, maps_halo_um, objects_halo_um, receptive_field_px
from .config import ScaleConfig
from .maps import volume_levels, write_block_maps

__all__ = ["analyze_chunked", "chunked_labels", "open_volume", "ScaleConfig", "Block", "block_grid",
           "halo_px", "maps_halo_um", "objects_halo_um", "receptive_field_px", "volume_levels",
           "write_block_maps", "WORK_DIR"]
