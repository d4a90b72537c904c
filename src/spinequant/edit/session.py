"""An editing session: spine labels and tables with an undo history.

Each edit changes the spine labels through :mod:`spinequant.edit.ops` (or takes labels
painted by hand), re-measures only the spines whose voxels changed with the same
:func:`~spinequant.morphology.measure_spines` call :func:`~spinequant.analyze` makes,
refreshes the table-wide columns (nearest-neighbour distance) and the dendrite table, and
records what it did. :meth:`EditSession.save` writes a result folder like
``spinequant analyze`` does, with ``run.json`` marking the edits.

>>> session = EditSession.from_result(result)                           # doctest: +SKIP
>>> session.delete([3]); session.merge([5, 6]); session.undo()          # doctest: +SKIP
>>> session.save("results/sample_edited")                               # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_path
from .._json import to_json
from ..errors import InputError
from ..morphology import SPINE_TYPES, dendrite_skeleton, measure_dendrites, measure_spines
from ..morphology.spines import nearest_neighbour_distance
from . import ops

#: The rule a type set by hand is recorded with (column ``type_rule``).
MANUAL_RULE = "set by hand"


@dataclass
class _Step:
    """What one edit changed, enough to take it back."""

    name: str
    flat: np.ndarray           # changed voxels (flat indices)
    before: np.ndarray         # their spine ids before the edit
    after: np.ndarray          # ... and after
    spines: pd.DataFrame       # the spine table before the edit
    dendrites: pd.DataFrame
    overrides: dict
    record: dict


@dataclass
class EditSession:
    """Spine labels, their tables and an undo history (see the module's description).

    Build one with :meth:`from_result`. ``spine_labels`` always matches ``spines``: every id
    in the labels has one row, measured from those labels.
    """

    result: object                       # the AnalysisResult being corrected
    spine_labels: np.ndarray
    spines: pd.DataFrame
    dendrites: pd.DataFrame
    overrides: dict = field(default_factory=dict)   # id -> {"type": ..} / {"dendrite_id": ..}
    history: list = field(default_factory=list)
    log: list = field(default_factory=list)
    _skeleton: object = None

    @classmethod
    def from_result(cls, result) -> "EditSession":
        """A session over an :class:`~spinequant.pipeline.analyze.AnalysisResult` (not changed)."""
        return cls(result=result, spine_labels=np.array(result.spine_labels, copy=True),
                   spines=result.spines.copy(), dendrites=result.dendrites.copy())

    # --- the edits -------------------------------------------------------------------------
    def delete(self, ids) -> list[int]:
        """Delete the spines ``ids``; returns the touched ids."""
        return self.set_labels(ops.delete_spines(self.spine_labels, ids), "delete", ids=ids)

    def merge(self, ids) -> list[int]:
        """Merge the spines ``ids`` into the one with the smallest id."""
        conf = self._confidence_of(ids)
        return self.set_labels(ops.merge_spines(self.spine_labels, ids), "merge", ids=ids,
                               confidence={min(int(i) for i in ids): max(conf) if conf else np.nan})

    def split_seeds(self, spine_id: int, seeds) -> list[int]:
        """Split one spine at the narrowest place between seed points (voxel indices)."""
        labels = ops.split_spine_by_seeds(self.spine_labels, spine_id, seeds, self.spacing)
        return self.set_labels(labels, "split", ids=[spine_id], inherit=spine_id)

    def split_line(self, spine_id: int, start, end) -> list[int]:
        """Split one spine along a line drawn across it (voxel indices of its ends)."""
        labels = ops.split_spine_by_line(self.spine_labels, spine_id, start, end)
        return self.set_labels(labels, "split", ids=[spine_id], inherit=spine_id)

    def add(self, point, *, source: str = "spine map", fraction: float = 0.5,
            max_radius_um: float = 1.5) -> list[int]:
        """Add a spine grown from ``point`` in the spine map (``source="spine map"``) or the image."""
        if source not in ("spine map", "image"):
            raise InputError(f"Grow a new spine in 'spine map' or 'image', not {source!r}.")
        values = self.result.spine_prob if source == "spine map" else self.result.image
        if values is None:
            raise InputError("This result has no spine map (a result folder does not keep one); grow the "
                             "new spine in the image instead.")
        labels = ops.add_spine(self.spine_labels, point, values, self.spacing,
                               dendrite_labels=self.result.dendrite_labels, fraction=fraction,
                               max_radius_um=max_radius_um)
        return self.set_labels(labels, "add", point=[int(round(float(v))) for v in point], source=source)

    def set_type(self, ids, spine_type: str) -> list[int]:
        """Set the type of the spines ``ids`` by hand (kept through later re-measurements)."""
        if spine_type not in SPINE_TYPES:
            raise InputError(f"Unknown spine type {spine_type!r}; choose one of {', '.join(SPINE_TYPES)}.")
        return self._override(ids, "type", spine_type)

    def reattach(self, ids, dendrite_id: int) -> list[int]:
        """Attach the spines ``ids`` to dendrite ``dendrite_id`` (its position along that dendrite)."""
        known = set(self.dendrites["dendrite_id"].astype(int))
        if int(dendrite_id) not in known:
            raise InputError(f"No dendrite {dendrite_id}; the dendrite table lists {sorted(known)}.")
        return self._override(ids, "dendrite_id", int(dendrite_id))

    def set_labels(self, labels, name: str = "paint", *, inherit: int | None = None,
                   confidence: dict | None = None, **record) -> list[int]:
        """Take new spine labels (an edit above, or voxels painted or erased by hand).

        The spines whose voxels changed are re-measured; returns their ids (those that still
        exist and those that are gone). ``inherit`` gives new ids the confidence of that
        spine (a split), ``confidence`` sets it for given ids; other new spines get NaN.
        """
        labels = np.asarray(labels)
        if labels.shape != self.spine_labels.shape:
            raise InputError(f"The edited labels have shape {labels.shape}, the session {self.spine_labels.shape}.")
        flat = np.flatnonzero(labels.ravel() != self.spine_labels.ravel())
        before, after = self.spine_labels.ravel()[flat], labels.ravel()[flat]
        touched = sorted((set(np.unique(before).tolist()) | set(np.unique(after).tolist())) - {0})
        if not touched:
            return []
        step = _Step(name, flat, before, after, self.spines, self.dendrites, dict(self.overrides),
                     {"edit": name, **to_json(record), "spines": touched})
        self.spine_labels = labels.astype(self.spine_labels.dtype, copy=True)
        for gone in set(touched) - set(ops.spine_ids(labels).tolist()):
            self.overrides.pop(gone, None)
        self._remeasure(touched, inherit=inherit, confidence=confidence or {})
        self.history.append(step)
        self.log.append(step.record)
        return touched

    def undo(self) -> str | None:
        """Take back the last edit; returns its name (None when there is nothing to undo)."""
        if not self.history:
            return None
        step = self.history.pop()
        flat_labels = self.spine_labels.ravel()
        flat_labels[step.flat] = step.before
        self.spines, self.dendrites, self.overrides = step.spines, step.dendrites, step.overrides
        self.log.pop()
        return step.name

    # --- results ---------------------------------------------------------------------------
    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(self.result.spacing)

    def to_result(self):
        """The corrected :class:`~spinequant.pipeline.analyze.AnalysisResult`."""
        diagnostics = {**self.result.diagnostics, "edited": self.edit_record()}
        return replace(self.result, spine_labels=self.spine_labels.copy(), spines=self.spines.copy(),
                       dendrites=self.dendrites.copy(), diagnostics=diagnostics, timings={})

    def edit_record(self) -> dict:
        """What run.json records about the corrections."""
        return {"edited": True, "n_edits": len(self.log), "edits": list(self.log),
                "spines_before": int(len(self.result.spines)), "spines_after": int(len(self.spines))}

    def save(self, out_dir, *, source: dict | None = None, progress=None) -> Path:
        """Write the corrected result folder (the files ``spinequant analyze`` writes);
        ``run.json`` gets ``"edited"``: the list of edits."""
        from ..pipeline.analyze import save_result
        from ..pipeline.runinfo import RUN_FILE, read_run_json

        out = save_result(self.to_result(), out_dir, source=source, progress=progress)
        record = read_run_json(out)
        record["edited"] = self.edit_record()
        with atomic_path(Path(out) / RUN_FILE) as tmp:
            Path(tmp).write_text(json.dumps(to_json(record), indent=2), encoding="utf-8")
        return out

    def save_training(self, folder) -> Path:
        """Write the corrected labels as one training stack (the layout ``spinequant train``
        reads: image.tif, labels_semantic.tif, labels_spines.tif, labels_dendrites.tif, and the
        head centre of every spine in spine_heads.csv for point-head networks)."""
        from ..groundtruth.layout import write_training_stack

        return write_training_stack(folder, self.result.image, self.spacing, self.spine_labels,
                                    self.result.dendrite_labels, heads=self.spines,
                                    provenance={"source": "spinequant result corrected by hand",
                                                "method": self.result.config.method,
                                                **self.edit_record()})

    # --- internals -------------------------------------------------------------------------
    def _skeleton_of_dendrites(self):
        if self._skeleton is None:
            self._skeleton = dendrite_skeleton(self.result.dendrite_labels, self.spacing,
                                               config=self.result.config.morphology)
        return self._skeleton

    def _confidence_of(self, ids) -> list[float]:
        if "confidence" not in self.spines:
            return []
        rows = self.spines[self.spines["id"].isin([int(i) for i in ids])]
        return [float(c) for c in rows["confidence"] if np.isfinite(c)]

    def _remeasure(self, touched: list[int], *, inherit, confidence: dict) -> None:
        cfg = self.result.config.morphology
        alive = [t for t in touched if t in set(ops.spine_ids(self.spine_labels).tolist())]
        subset = np.where(np.isin(self.spine_labels, alive), self.spine_labels, 0)
        # Other spines' voxels are not dendrite, as when the whole table is measured.
        dendrites = np.where(self.spine_labels > 0, 0, self.result.dendrite_labels)
        new = measure_spines(subset, dendrites, self.spacing, image=self.result.image, config=cfg,
                             skeleton=self._skeleton_of_dendrites())
        old = self.spines.set_index("id")
        if "confidence" in self.spines:
            conf = {int(i): float(old["confidence"].get(i, np.nan)) for i in alive}
            for i in alive:
                if i not in old.index:
                    conf[i] = float(old["confidence"].get(inherit, np.nan)) if inherit else np.nan
            conf.update({int(k): v for k, v in confidence.items()})
            new.insert(1, "confidence", [conf[int(i)] for i in new["id"]])
        kept = self.spines[~self.spines["id"].isin(touched)]
        table = pd.concat([kept, new[self.spines.columns]] if len(kept) else [new[self.spines.columns]],
                          ignore_index=True)
        table = table.sort_values("id", kind="stable").reset_index(drop=True)
        table = table.astype(self.spines.dtypes.to_dict())
        table["nn_distance_um"] = nearest_neighbour_distance(table)
        self.spines = self._apply_overrides(table)
        self.dendrites = measure_dendrites(self.result.dendrite_labels, self.spacing, spines=self.spines,
                                           config=cfg, skeleton=self._skeleton_of_dendrites())

    def _override(self, ids, column: str, value) -> list[int]:
        ids = [int(i) for i in np.atleast_1d(ids)]
        missing = sorted(set(ids) - set(self.spines["id"].astype(int)))
        if missing:
            raise InputError(f"No spine with id {', '.join(map(str, missing))}.")
        step = _Step(f"set {column}", np.zeros(0, np.int64), np.zeros(0), np.zeros(0), self.spines,
                     self.dendrites, dict(self.overrides),
                     {"edit": "retype" if column == "type" else "reattach", column: value, "spines": ids})
        for i in ids:
            self.overrides[i] = {**self.overrides.get(i, {}), column: value}
        self.spines = self._apply_overrides(self.spines.copy())
        self.dendrites = measure_dendrites(self.result.dendrite_labels, self.spacing, spines=self.spines,
                                           config=self.result.config.morphology,
                                           skeleton=self._skeleton_of_dendrites())
        self.history.append(step)
        self.log.append(step.record)
        return ids

    def _apply_overrides(self, table: pd.DataFrame) -> pd.DataFrame:
        axes = [c for c in ("base_z_um", "base_y_um", "base_x_um") if c in table]
        for sid, change in self.overrides.items():
            row = table.index[table["id"] == sid]
            if not len(row):
                continue
            if "type" in change:
                table.loc[row, ["type", "type_rule"]] = [change["type"], MANUAL_RULE]
            if "dendrite_id" in change:
                did = change["dendrite_id"]
                base = table.loc[row[0], axes].to_numpy(float)
                table.loc[row, "dendrite_id"] = did
                table.loc[row, "position_um"] = float(self._skeleton_of_dendrites().position_of(base, did)[0])
        return table
