"""The Correct panel: buttons that call :class:`spinequant.edit.EditSession`; saving in a worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (QComboBox, QFileDialog, QGridLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout,
                            QWidget)

from ..errors import SpinequantError
from ..morphology import SPINE_TYPES

#: Layers the panel makes for the points and lines an edit needs.
EDIT_POINTS, SPLIT_LINE = "edit points", "split line"


class CorrectPanel(QWidget):
    def __init__(self, owner):
        super().__init__()
        self.owner = owner
        self.worker = None
        self.type_box = QComboBox()
        self.type_box.addItems(SPINE_TYPES)
        self.grow_in = QComboBox()
        self.grow_in.addItems(["spine map", "image"])     # where "Add spine at points" grows a spine
        self.dendrite_box = QSpinBox()
        self.dendrite_box.setRange(1, 10 ** 6)
        self.status = QLabel("Select spines in the table or click them in the viewer.")
        self.status.setWordWrap(True)
        grid = QGridLayout()
        buttons = [
            ("Delete selected", self.delete), ("Merge selected", self.merge),
            ("Place points", self.place_points), ("Draw split line", self.draw_line),
            ("Split (points or line)", self.split), ("Add spine at points", self.add),
            ("Set type", self.set_type), ("Re-attach to dendrite", self.reattach),
            ("Apply painted voxels", self.apply_paint), ("Undo", self.undo),
            ("Save result...", self.save), ("Save training data...", self.save_training),
        ]
        self.buttons = {}
        for k, (text, slot) in enumerate(buttons):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, s=slot: s())
            self.buttons[text] = button
            grid.addWidget(button, k // 2, k % 2)
        grid.addWidget(self.type_box, len(buttons) // 2, 0)
        grid.addWidget(self.dendrite_box, len(buttons) // 2, 1)
        grid.addWidget(QLabel("grow added spines in"), len(buttons) // 2 + 1, 0)
        grid.addWidget(self.grow_in, len(buttons) // 2 + 1, 1)
        layout = QVBoxLayout(self)
        help_text = QLabel("Points: two inside a spine split it; each one outside spines adds a spine "
                           "grown in the spine map. Paint or erase on the 'spines' layer, then apply.")
        help_text.setWordWrap(True)
        layout.addWidget(help_text)
        layout.addLayout(grid)
        layout.addWidget(self.status)
        layout.addStretch()

    # --- helpers -----------------------------------------------------------------------------
    def _edit(self, what: str, action):
        """Run one session edit, show what happened and refresh the layers and table."""
        if self.owner.session is None:
            self.status.setText("Analyse an image or open a result first.")
            return None
        try:
            touched = action(self.owner.session)
        except SpinequantError as exc:
            self.status.setText(str(exc))
            return None
        self.owner.refresh()
        self.status.setText(f"{what}: spine(s) {', '.join(map(str, touched))}." if touched else f"{what}: no change.")
        return touched

    def _selected(self) -> list[int]:
        return self.owner.selected_ids()

    def _layer(self, name: str, kind: str):
        viewer = self.owner.viewer
        if name not in viewer.layers:
            scale = self.owner.session.spacing if self.owner.session else None
            add = viewer.add_points if kind == "points" else viewer.add_shapes
            kwargs = {"size": 4, "face_color": "cyan"} if kind == "points" else {"edge_color": "cyan",
                                                                                  "edge_width": 1.0}
            add(name=name, ndim=self.owner.ndim, scale=scale, **kwargs)
        return viewer.layers[name]

    def _points(self) -> np.ndarray:
        viewer = self.owner.viewer
        return np.asarray(viewer.layers[EDIT_POINTS].data) if EDIT_POINTS in viewer.layers else np.zeros((0, 3))

    def _clear(self, name: str):
        if name in self.owner.viewer.layers:
            layer = self.owner.viewer.layers[name]
            layer.data = np.zeros((0, self.owner.ndim)) if name == EDIT_POINTS else []

    # --- the edits ---------------------------------------------------------------------------
    def delete(self):
        ids = self._selected()
        return self._edit("Deleted", lambda s: s.delete(ids))

    def merge(self):
        ids = self._selected()
        return self._edit("Merged", lambda s: s.merge(ids))

    def place_points(self):
        layer = self._layer(EDIT_POINTS, "points")
        layer.mode = "add"
        self.owner.viewer.layers.selection.active = layer

    def draw_line(self):
        layer = self._layer(SPLIT_LINE, "shapes")
        layer.mode = "add_line"
        self.owner.viewer.layers.selection.active = layer

    def split(self):
        """Split with the drawn line when there is one, else with the placed points."""
        viewer = self.owner.viewer
        if SPLIT_LINE in viewer.layers and len(viewer.layers[SPLIT_LINE].data):
            start, end = np.asarray(viewer.layers[SPLIT_LINE].data[-1])[[0, -1]]
            spine_id = self._spine_across(start, end)
            done = self._edit("Split", lambda s: s.split_line(spine_id, start, end))
            if done:
                self._clear(SPLIT_LINE)
            return done
        points = self._points()
        if len(points) < 2:
            self.status.setText("Place two points inside the spine to split (or draw a line across it).")
            return None
        labels = self.owner.session.spine_labels
        under = [int(labels[tuple(np.clip(np.round(p).astype(int), 0, np.array(labels.shape) - 1))])
                 for p in points]
        spine_id = next((u for u in under if u), 0)
        if not spine_id:
            self.status.setText("The points lie in no spine: place them inside the spine to split, in "
                                "the planes where it shows.")
            return None
        done = self._edit("Split", lambda s: s.split_seeds(spine_id, points))
        if done:
            self._clear(EDIT_POINTS)
        return done

    def _spine_across(self, start, end) -> int:
        """The spine a line crosses most (voxels under it in any plane), or the selected one."""
        from skimage.draw import line

        labels = self.owner.session.spine_labels
        rows, cols = line(*(int(round(v)) for v in start[-2:]), *(int(round(v)) for v in end[-2:]))
        keep = (rows >= 0) & (rows < labels.shape[-2]) & (cols >= 0) & (cols < labels.shape[-1])
        under = labels[..., rows[keep], cols[keep]].ravel()
        under = under[under > 0]
        if len(under):
            return int(np.bincount(under).argmax())
        selected = self._selected()
        return selected[0] if selected else 0

    def add(self):
        points = self._points()
        if not len(points):
            self.status.setText("Place a point on the spine to add (Place points), then Add.")
            return None
        source = self.grow_in.currentText()

        def grow(s):
            added = []
            for p in points:
                added += s.add(p, source=source)
            return added

        done = self._edit("Added", grow)
        if done:
            self._clear(EDIT_POINTS)
        return done

    def set_type(self):
        ids, kind = self._selected(), self.type_box.currentText()
        return self._edit(f"Type {kind}", lambda s: s.set_type(ids, kind))

    def reattach(self):
        ids, did = self._selected(), self.dendrite_box.value()
        return self._edit(f"Re-attached to dendrite {did}", lambda s: s.reattach(ids, did))

    def apply_paint(self):
        """Take the voxels painted or erased on the 'spines' layer."""
        from ._layers import SPINES

        data = np.asarray(self.owner.viewer.layers[SPINES].data)
        return self._edit("Painted", lambda s: s.set_labels(data, "paint"))

    def undo(self):
        if self.owner.session is None:
            return None
        name = self.owner.session.undo()
        self.owner.refresh()
        self.status.setText(f"Undid: {name}." if name else "Nothing to undo.")
        return name

    # --- saving ------------------------------------------------------------------------------
    def save(self, folder=None):
        """Write the corrected result folder (a worker thread; the viewer stays usable)."""
        return self._save(folder, "save", "Saved the corrected result to")

    def save_training(self, folder=None):
        """Write image and corrected labels in the layout `spinequant train` reads (and offer
        the folder holding them to the Train tab)."""
        worker = self._save(folder, "save_training", "Saved training data to")
        if worker is not None:
            worker.returned.connect(lambda out: self.owner.train_panel.data_dir.setText(str(Path(out).parent)))
        return worker

    def _save(self, folder, method: str, done_text: str):
        from napari.qt.threading import thread_worker

        if self.owner.session is None:
            self.status.setText("Analyse an image or open a result first.")
            return None
        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "Folder to write into")
            if not folder:
                return None
        session = self.owner.session

        @thread_worker(ignore_errors=True)
        def job():
            return getattr(session, method)(Path(folder))

        self.worker = job()
        self.worker.returned.connect(lambda out: self.status.setText(f"{done_text} {out}."))
        self.worker.errored.connect(lambda exc: self.status.setText(f"Not saved: {exc}"))
        self.status.setText(f"Writing {folder}...")
        self.worker.start()
        return self.worker
