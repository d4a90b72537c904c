"""Data shipped with spinequant: a real two-photon stack of a spiny dendrite (``sample``) and a
real light-sheet volume of neuronal somata (``sample-cells``)."""

from __future__ import annotations

from dataclasses import replace
from importlib import resources

from ..stack import Stack

SAMPLE_SPACING_UM = (0.5, 0.094, 0.094)
SAMPLE_ATTRIBUTION = (
    "Crop of the DeepD3 benchmark two-photon stack (Fernholz et al. 2024, PLOS Comput Biol "
    "20:e1011774; CC-BY-4.0), distributed in the splinebox examples (BSD-3-Clause)."
)
#: Name that the command line accepts in place of a file path for the sample stack.
SAMPLE_NAME = "sample"


def sample_path():
    """Path of the shipped sample TIFF (an ImageJ TIFF carrying its voxel size)."""
    return resources.files(__package__) / "deepd3_benchmark_crop.tif"


def sample_stack() -> Stack:
    """The real sample stack: 23 × 178 × 308 voxels (Z, Y, X), spacing (0.5, 0.094, 0.094) µm.

    Examples
    --------
    >>> from spinequant.data import sample_stack
    >>> stack = sample_stack()
    >>> stack.data.shape, stack.spacing
    ((23, 178, 308), (0.5, 0.094, 0.094))
    """
    from ..io import read_stack

    stack = read_stack(sample_path())
    return replace(stack, spacing=SAMPLE_SPACING_UM, spacing_source="sample",
                   metadata={**stack.metadata, "attribution": SAMPLE_ATTRIBUTION})


#: Name that ``spinequant cells`` accepts in place of a file path for the cell sample volume.
CELLS_SAMPLE_NAME = "sample-cells"
#: Not recorded in the source file; the step and pixel size CellSeg3D's paper gives for its
#: mesoSPIM volumes (Achard et al. 2024, Methods), see ATTRIBUTION.md.
CELLS_SAMPLE_SPACING_UM = (5.0, 5.26, 5.26)
CELLS_SAMPLE_ATTRIBUTION = (
    "c5image.tif of the napari-cellseg3d 0.2.4 examples (Achard, Vidal, Mathis; MIT licence), "
    "a mesoSPIM light-sheet crop from IDR project 853; voxel size assumed, not recorded."
)


def cells_sample_path():
    """Path of the shipped cell sample (ImageJ TIFF, 124 × 86 × 94 voxels, uint16)."""
    return resources.files(__package__) / "cellseg3d_c5image.tif"
