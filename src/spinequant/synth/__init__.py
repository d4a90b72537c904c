"""Synthetic spiny-dendrite stacks with exact ground truth (for tests, training, benchmarks).

>>> from spinequant.synth import make_phantom, write_phantom
>>> ph = make_phantom("two_photon", seed=0, shape=(16, 96, 96))
>>> int(ph.semantic.max()) <= 2
True
"""

from __future__ import annotations

from .cells import CELL_PRESETS, CellPhantom, CellPhantomConfig, make_cell_phantom, write_cell_phantom
from .config import DistractorConfig, ImagingConfig, ShaftConfig, SpineConfig, SynthConfig, with_overrides
from .phantom import TRUTH_COLUMNS, Phantom, make_phantom
from .presets import PRESETS, REALISTIC, get_preset
from .projection import TRUTH_COLUMNS_2D, project_phantom
from .spines import SIZE_DISTRIBUTIONS, SPINE_TYPES
from .writer import write_phantom

__all__ = ["make_phantom", "project_phantom", "write_phantom", "Phantom", "PRESETS", "REALISTIC", "get_preset", "SynthConfig",
           "ShaftConfig", "SpineConfig", "DistractorConfig", "ImagingConfig", "with_overrides",
           "TRUTH_COLUMNS", "TRUTH_COLUMNS_2D", "SPINE_TYPES", "SIZE_DISTRIBUTIONS",
           "make_cell_phantom", "write_cell_phantom", "CellPhantom", "CellPhantomConfig", "CELL_PRESETS"]
