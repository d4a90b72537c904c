"""Ground truth for training from the annotations labs already have.

Every converter writes the folder layout that ``spinequant train`` reads (:mod:`.layout`):

* :mod:`.meshes` — surface meshes (Imaris, Neurolucida 360; STL, PLY, OBJ) to voxel labels;
* :mod:`.repair` — the repairs of Vidaurre-Gallart et al. (2022): detached spines reconnected
  along the cheapest path through the image, dendrite holes closed, overlaps resolved;
* :mod:`.traces` — SWC traces and spine points to dendrite and spine masks;
* :mod:`.d3set` — DeepD3's ``.d3set`` training files, both ways;
* :mod:`.check` — what each stack of a training folder holds, and its problems.

Arrays are (z, y, x) with ``spacing`` (z, y, x) in µm.
"""

from __future__ import annotations

from .layout import write_training_stack
from .meshes import MeshConfig, load_mesh, mesh_to_mask, meshes_ground_truth, meshes_to_labels

__all__ = ["write_training_stack", "MeshConfig", "load_mesh", "mesh_to_mask", "meshes_to_labels",
           "meshes_ground_truth"]
