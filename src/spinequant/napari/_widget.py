"""The plugin's dock widget: Run, Inspect, Correct and Train tabs over one editing session."""

from __future__ import annotations

import napari
import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QTabWidget, QVBoxLayout, QWidget

from ..edit import EditSession
from ._correct import CorrectPanel
from ._inspect import SPINE_ID, InspectPanel, column_colours
from ._layers import HEADS, SPINES, head_points, result_layers
from ._run import RunPanel
from ._train import TrainPanel


class SpinesWidget(QWidget):
    """Analyse the selected image, inspect the spine table, correct spines and save.

    ``viewer`` may be a :class:`napari.Viewer` or a bare :class:`napari.components.ViewerModel`
    (the tests drive it without a rendering canvas).
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self.viewer = viewer
        self.session: EditSession | None = None
        self.run_panel = RunPanel(self)
        self.inspect_panel = InspectPanel(self)
        self.correct_panel = CorrectPanel(self)
        self.train_panel = TrainPanel(self)
        self.tabs = QTabWidget()
        for panel, name in ((self.run_panel, "Run"), (self.inspect_panel, "Inspect"),
                            (self.correct_panel, "Correct"), (self.train_panel, "Train")):
            self.tabs.addTab(panel, name)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        viewer.mouse_drag_callbacks.append(self._on_click)

    @property
    def ndim(self) -> int:
        return self.session.spine_labels.ndim if self.session else 3

    # --- results -----------------------------------------------------------------------------
    def show_result(self, result, *, with_image: bool = True):
        """Start a session over ``result`` and show it as layers (replacing earlier ones);
        ``with_image=False`` when the analysed image is a layer already."""
        from napari.layers import Layer

        from ._layers import IMAGE

        self.session = EditSession.from_result(result)
        for data, meta, kind in result_layers(result):
            if meta["name"] == IMAGE and not with_image:
                continue
            name = meta["name"]
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            self.viewer.add_layer(Layer.create(data, meta, kind))
        self.viewer.layers[SPINES].events.paint.connect(self._on_paint)
        # A result opened from a folder keeps no maps: added spines grow in the image.
        self.correct_panel.grow_in.setCurrentText("spine map" if result.spine_prob is not None else "image")
        self.refresh()
        self.tabs.setCurrentWidget(self.inspect_panel)

    def refresh(self):
        """Show the session's labels and tables again after an edit."""
        s = self.session
        self.viewer.layers[SPINES].data = s.spine_labels.copy()
        heads = self.viewer.layers[HEADS]
        heads.data = head_points(s.spines, s.spacing)
        heads.features = s.spines.reset_index(drop=True)
        self.inspect_panel.refresh()

    def colour_by(self, column: str):
        """Colour the spine heads and the spine labels by ``column`` of the spine table."""
        from napari.utils.colormaps import DirectLabelColormap, label_colormap

        spines = self.session.spines
        if column == SPINE_ID:
            self.viewer.layers[HEADS].face_color = "white"
            self.viewer.layers[SPINES].colormap = label_colormap()
            return
        colours = column_colours(spines, column)
        self.viewer.layers[HEADS].face_color = colours if len(colours) else "white"
        mapping = {None: np.zeros(4), 0: np.zeros(4)}
        mapping.update({int(i): c for i, c in zip(spines["id"], colours)})
        self.viewer.layers[SPINES].colormap = DirectLabelColormap(color_dict=mapping)

    # --- selection, both ways ----------------------------------------------------------------
    def selected_ids(self) -> list[int]:
        ids = self.inspect_panel.selected_ids()
        if not ids and SPINES in self.viewer.layers:
            label = int(self.viewer.layers[SPINES].selected_label)
            ids = [label] if self.session is not None and label in set(self.session.spines["id"]) else []
        return ids

    def focus_spine(self, spine_id: int):
        """Centre the view on a spine's head (its plane in a 2D view) and select it."""
        row = self.session.spines[self.session.spines["id"] == spine_id]
        if not len(row):
            return
        world = head_points(row, self.session.spacing)[0] * np.asarray(self.session.spacing)
        if len(world) == 3 and self.viewer.dims.ndisplay == 2:
            self.viewer.dims.set_point(0, world[0])
        camera = self.viewer.scene.camera if hasattr(self.viewer, "scene") else self.viewer.camera
        camera.center = tuple(world) if self.viewer.dims.ndisplay == 3 else tuple(world[-2:])
        self.viewer.layers[SPINES].selected_label = int(spine_id)
        heads = self.viewer.layers[HEADS]
        heads.selected_data = set(np.flatnonzero(self.session.spines["id"].to_numpy() == spine_id).tolist())

    def spine_at(self, position) -> int:
        """The spine id under a world position (0 for none)."""
        layer = self.viewer.layers[SPINES]
        value = layer.get_value(position, world=True)
        return int(value) if value is not None and np.isfinite(value) else 0

    def _on_click(self, viewer, event):
        """A click on a spine selects its table row (when not painting or placing points)."""
        if self.session is None or SPINES not in self.viewer.layers:
            return
        if self.viewer.layers[SPINES].mode not in ("pan_zoom",):
            return
        spine_id = self.spine_at(event.position)
        if spine_id:
            self.inspect_panel.select_ids([spine_id])
            self.viewer.layers[SPINES].selected_label = spine_id

    def _on_paint(self, event=None):
        # napari emits the event before it has written the stroke: take it in once it has.
        QTimer.singleShot(0, self.correct_panel.apply_paint)
