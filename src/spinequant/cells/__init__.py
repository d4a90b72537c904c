"""Neuronal cells and nuclei in 3D: classical segmentation (Voronoi-Otsu labelling in µm) or a
3D network's foreground (SegResNet, SwinUNETR, WNet3D: :mod:`.networks`, :mod:`.train`,
:mod:`.predict`; need torch and MONAI), a table of cells, density per mm³, exports and a
report (``spinequant cells``).

>>> from spinequant.cells import analyze_cells
>>> from spinequant.synth.cells import make_cell_phantom
>>> ph = make_cell_phantom("nuclei_confocal", seed=0, shape=(24, 64, 64))
>>> result = analyze_cells(ph.image, spacing=ph.spacing)
>>> result.summary["n_cells"] == len(result.cells)
True
"""

from __future__ import annotations

from .config import SPLITS, CellConfig
from .measure import CELL_COLUMNS, measure_cells, summarize_cells
from .pipeline import CellResult, analyze_cells, analyze_cells_file, save_cells
from .voronoi_otsu import cells_from_probability, voronoi_otsu

__all__ = ["CellConfig", "SPLITS", "voronoi_otsu", "cells_from_probability", "measure_cells", "summarize_cells", "CELL_COLUMNS",
           "CellResult", "analyze_cells", "analyze_cells_file", "save_cells"]
