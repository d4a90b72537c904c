"""Read a result folder written by ``spinequant analyze`` (or an edited one) back into memory,
so that it can be shown and corrected again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError

#: The files a result folder must hold to be loaded (run.json marks it complete).
REQUIRED = ("run.json", "spines.csv", "dendrites.csv", "labels_spines.tif", "labels_dendrites.tif")


def is_result_folder(path) -> bool:
    """Whether ``path`` is a complete spinequant result folder."""
    path = Path(path)
    return path.is_dir() and all((path / name).exists() for name in REQUIRED)


def load_result(folder):
    """The :class:`~spinequant.pipeline.analyze.AnalysisResult` saved in ``folder``.

    The image comes from ``results.ome.zarr`` (the analysed voxels); the maps are not saved
    with a result, so ``spine_prob`` and ``dendrite_prob`` are None (a spine added by hand is
    then grown in the image). ``diagnostics`` is run.json's, with its ``edited`` record.
    """
    from ..io import read_stack
    from ..io.omezarr import open_zarr
    from ..io.swc import read_swc
    from ..pipeline.analyze import AnalysisResult, AnalyzeConfig
    from ..pipeline.runinfo import read_run_json

    folder = Path(folder)
    missing = [name for name in REQUIRED if not (folder / name).exists()]
    if missing:
        raise InputError(f"'{folder}' is not a complete spinequant result folder: {', '.join(missing)} "
                         f"missing. Open the folder that `spinequant analyze --out` wrote.")
    run = read_run_json(folder)
    if run is None:
        raise InputError(f"'{folder}/run.json' cannot be read; run the analysis again.")
    spacing = tuple(float(v) for v in run["input"]["spacing_um"])
    zarr_path = folder / "results.ome.zarr"
    if not (zarr_path / "0").exists():
        raise InputError(f"'{folder}' has no image (results.ome.zarr); it was written with the Zarr export "
                         f"switched off. Analyse again with it on to correct this result.")
    image = np.asarray(open_zarr(zarr_path).data)
    spine_labels = np.asarray(read_stack(folder / "labels_spines.tif").data)
    dendrite_labels = np.asarray(read_stack(folder / "labels_dendrites.tif").data)
    image, spine_labels, dendrite_labels = (a.reshape(a.shape[-len(spacing):])
                                            for a in (image, spine_labels, dendrite_labels))
    swc = folder / "dendrites.swc"
    centrelines = read_swc(swc) if swc.exists() else pd.DataFrame()
    diagnostics = dict(run.get("diagnostics") or {})
    if run.get("edited"):
        diagnostics["edited_before"] = run["edited"]
    return AnalysisResult(
        image=image, spacing=spacing, dendrite_prob=None, spine_prob=None, spine_labels=spine_labels,
        dendrite_labels=dendrite_labels, spines=pd.read_csv(folder / "spines.csv"),
        dendrites=pd.read_csv(folder / "dendrites.csv"), centrelines=centrelines,
        config=AnalyzeConfig.from_dict(run.get("config")), diagnostics=diagnostics)
