"""Settings of a chunked run (:func:`spinequant.scale.analyze_chunked`)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_fields, config_from_dict

#: Block edges and halos are multiples of this many pixels in y/x: the network's pooling
#: grid (space-to-depth 2 x three poolings = 16 px) and the classical shaft grid then fall on
#: the same pixels in a block as in the whole volume.
ALIGN_PX = 16


@dataclass(frozen=True)
class ScaleConfig:
    """How a volume is cut into blocks.

    chunk_px : edge of a block's core in y and x (pixels; rounded up to a multiple of
        :data:`ALIGN_PX`). Blocks span the whole z extent: microscopy stacks are thin in z
        (tens to a few hundred planes) and wide in y/x, and the network sees whole planes.
    maps_halo_um, objects_halo_um : context around each core (µm) when the maps and the spine
        objects are made; ``None`` derives them from the method
        (:func:`spinequant.scale.blocks.maps_halo_um`, :func:`~spinequant.scale.blocks.objects_halo_um`).
    whole_export_max_voxels : up to this many voxels the result folder is written as in memory
        (label TIFFs, ROI set, meshes, report; the labels and image are loaded whole, about
        10 bytes a voxel); above, only the tables, SWC and ``results.ome.zarr`` (written chunk
        by chunk), and run.json says what was left out (:mod:`spinequant.scale.export`).
        2**28 voxels: a 2.7 GB load, and label TIFFs of about 1 GB each.
    skeleton_max_voxels : a dendrite whose bounding box holds more voxels than this has its
        skeleton thinned tile by tile (:mod:`spinequant.scale.tiled_skeleton`), each tile with
        its margin about this size, instead of on the whole box (about 10 bytes a voxel either
        way, so about 1.3 GB at most for 2**27; docs/scale.md). The window of a 1024-px block
        with 48 planes (128 M voxels with the network maps' 304-px halo) stays on the whole-box path.
    """

    chunk_px: int = 1024
    maps_halo_um: float | None = None
    objects_halo_um: float | None = None
    whole_export_max_voxels: int = 2 ** 28
    skeleton_max_voxels: int = 2 ** 27

    def __post_init__(self):
        check_fields(self, ranges={"chunk_px": (ALIGN_PX, None, False, True),
                                   "whole_export_max_voxels": (0, None, False, True),
                                   "skeleton_max_voxels": (1, None, False, True)})

    @classmethod
    def from_dict(cls, values: dict | None) -> "ScaleConfig":
        return config_from_dict(cls, values)
