"""Settings of the classical cell segmentation (Voronoi-Otsu labelling), all lengths in µm."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import check_fields, config_from_dict

#: How touching cells are split between their seeds.
SPLITS = ("voronoi", "intensity")


@dataclass(frozen=True)
class CellConfig:
    """Voronoi-Otsu labelling (CellSeg3D's instance method, after clEsperanto) in µm.

    spot_sigma_um : Gaussian sigma (one value, or z, y, x) of the image whose local maxima
        seed one cell each; 2 µm suited cell radii of 3-9.5 µm on the phantoms. Larger merges
        touching cells, smaller splits a cell in two.
    outline_sigma_um : Gaussian sigma of the image that Otsu's threshold cuts into foreground
        and background; sets how smooth the outlines are.
    threshold_factor : the foreground is the outline image above Otsu's threshold times this
        (1 = Otsu's own).
    spot_radius_um : a seed is a maximum of the spot image within this distance (an
        ellipsoid in voxels); 0 means its 26 neighbours, as clEsperanto does.
    split : ``"voronoi"`` gives each foreground voxel to the nearest seed in µm (flooding from
        the seeds inside the foreground, so every cell stays in one piece); ``"intensity"``
        floods the inverted spot image from the seeds (a seeded watershed: borders in the
        dimmest valley between cells).
    min_volume_um3 : objects smaller than this are removed (noise, cut-off cell caps).

    The defaults were chosen on phantom seeds 0-1 of both presets (spot sigma 1.5-4 µm,
    outline sigma 0.5-2 µm, both splits): spot sigma 2 µm found the most cells; outline sigma
    0.5 µm gave the best Dice (confocal 0.96 vs 0.93 at 1 µm, whose smoother outline made balls
    11-15 % too large). Re-check with ``python benchmarks/cells.py`` (held-out seeds).
    flatten_sigma_um : when set, uneven illumination is evened out first: the image (less its
        1st percentile, the dark level) is divided by its own Gaussian blur of this sigma, a
        few cell diameters (on the light-sheet phantoms 30 µm for 11-19 µm cells). None (the
        default) segments the image as it is, as CellSeg3D does.
    method : ``"classical"`` (Otsu's threshold gives the foreground) or a cell network whose
        foreground probability above ``probability_threshold`` does: a shipped model
        (``segresnet_nuclei``) or the path of a model trained with ``spinequant train --cells``. Seeds and the split are the same for every method.
    probability_threshold : a number in [0, 1], ``"otsu"`` (Otsu's threshold of the
        probability map) or ``"auto"``: for the supervised networks the threshold in the model
        card's ``calibration`` (the shipped model's was chosen on a validation phantom) or else
        0.5; Otsu for WNet3D, whose class map is not a calibrated probability (CellSeg3D
        thresholds it too).
    """

    spot_sigma_um: float | tuple[float, float, float] = 2.0
    outline_sigma_um: float | tuple[float, float, float] = 0.5
    threshold_factor: float = 1.0
    spot_radius_um: float = 0.0
    split: str = "voronoi"
    min_volume_um3: float = 30.0
    flatten_sigma_um: float | None = None
    method: str = "classical"
    probability_threshold: float | str = "auto"

    def __post_init__(self):
        check_fields(self, choices={"split": SPLITS, "probability_threshold": ("auto", "otsu")},
                     ranges={"threshold_factor": (0, None, True, False), "flatten_sigma_um": (0, None, True, False),
                             "probability_threshold": (0, 1, False, False)})

    @classmethod
    def from_dict(cls, values: dict | None) -> "CellConfig":
        return config_from_dict(cls, values)


@dataclass(frozen=True)
class CellChunkConfig:
    """How a chunked cell run (:func:`spinequant.cells.chunked.analyze_cells_chunked`) cuts
    the volume into blocks (whole z, a grid in y/x, as :mod:`spinequant.scale`).

    chunk_px : edge of a block's core in y and x (pixels; rounded up to a multiple of 16).
    max_cell_diameter_um : the largest cell the run must keep whole; sets the halo
        (:func:`~spinequant.cells.chunked.cell_halo_um`). Cells owned by a block that touch
        its window's inner edge are counted in run.json (``cells_clipped_by_halo``).
    halo_um : the halo around each core in µm; None derives it from the cell config and
        ``max_cell_diameter_um``.
    whole_export_max_voxels : up to this many voxels the result folder is the in-memory one
        (label TIFF, report); above, only cells.csv, results.ome.zarr (chunk by chunk) and
        run.json, as for spines (:mod:`spinequant.scale.export`).
    """

    chunk_px: int = 512
    max_cell_diameter_um: float = 25.0
    halo_um: float | None = None
    whole_export_max_voxels: int = 2 ** 28

    def __post_init__(self):
        check_fields(self, ranges={"chunk_px": (16, None, False, True),
                                   "max_cell_diameter_um": (0, None, True, False),
                                   "halo_um": (0, None, False, False),
                                   "whole_export_max_voxels": (0, None, False, True)})

    @classmethod
    def from_dict(cls, values: dict | None) -> "CellChunkConfig":
        return config_from_dict(cls, values)
