"""The Inspect panel: the spine table linked both ways with the viewer, colours, density and
a histogram."""

from __future__ import annotations

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QAbstractItemView, QComboBox, QFormLayout, QLabel, QTableWidget, QTableWidgetItem,
                            QVBoxLayout, QWidget)

from ._layers import TYPE_COLOURS

#: The colour-by choice that gives every spine its own label colour (napari's default).
SPINE_ID = "spine id"


def column_colours(table: pd.DataFrame, column: str) -> np.ndarray:
    """One RGBA colour per row: the type's colour, or a column's value on viridis (NaN grey)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgba

    if column == "type":
        return np.array([to_rgba(TYPE_COLOURS.get(t, "white")) for t in table["type"]]).reshape(-1, 4)
    values = table[column].to_numpy(float)
    finite = np.isfinite(values)
    lo, hi = (np.nanmin(values), np.nanmax(values)) if finite.any() else (0.0, 1.0)
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    out = colormaps["viridis"](np.nan_to_num(scaled))
    out[~finite] = (0.5, 0.5, 0.5, 1.0)
    return out.reshape(-1, 4)


class InspectPanel(QWidget):
    def __init__(self, owner):
        super().__init__()
        self.owner = owner
        self._updating = False
        self.colour_box = QComboBox()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.table = QTableWidget()
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.figure, self.canvas = _histogram_canvas()
        form = QFormLayout()
        form.addRow("colour by", self.colour_box)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, stretch=3)
        layout.addWidget(self.canvas, stretch=2)
        self.colour_box.currentTextChanged.connect(self._on_colour)

    # --- filling -----------------------------------------------------------------------------
    def refresh(self):
        """Show the session's spine and dendrite tables."""
        session = self.owner.session
        spines = session.spines
        self._updating = True
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setColumnCount(len(spines.columns))
        self.table.setRowCount(len(spines))
        self.table.setHorizontalHeaderLabels([str(c) for c in spines.columns])
        for r, row in enumerate(spines.itertuples(index=False)):
            for c, value in enumerate(row):
                item = QTableWidgetItem()
                if isinstance(value, (bool, np.bool_)) or isinstance(value, str):
                    item.setData(Qt.DisplayRole, str(value))
                else:
                    value = float(value)
                    item.setData(Qt.DisplayRole, value if value.is_integer() or np.isnan(value) else round(value, 3))
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self._updating = False
        columns = ["type", SPINE_ID] + [c for c in spines.columns if c not in ("id", "type", "type_rule")
                              and pd.api.types.is_numeric_dtype(spines[c]) and spines[c].dtype != bool]
        current = self.colour_box.currentText() or "type"
        self.colour_box.blockSignals(True)
        self.colour_box.clear()
        self.colour_box.addItems(columns)
        self.colour_box.setCurrentText(current if current in columns else "type")
        self.colour_box.blockSignals(False)
        lines = [f"{len(spines)} spines"]
        for d in session.dendrites.itertuples(index=False):
            lines.append(f"dendrite {d.dendrite_id}: {d.length_um:.1f} µm, {d.n_spines} spines, "
                         f"density {d.density_per_um:.2f} per µm")
        self.summary.setText("\n".join(lines))
        self._on_colour(self.colour_box.currentText())

    def _on_colour(self, column: str):
        if not column or self.owner.session is None:
            return
        self.owner.colour_by(column)
        self._draw_histogram(column)

    def _draw_histogram(self, column: str):
        spines = self.owner.session.spines
        self.figure.clear()
        ax = self.figure.add_subplot(111)
        if column in ("type", SPINE_ID):
            counts = spines["type"].value_counts()
            ax.bar(counts.index.astype(str), counts.to_numpy(),
                   color=[TYPE_COLOURS.get(t, "grey") for t in counts.index])
            ax.set_ylabel("spines")
        else:
            values = spines[column].to_numpy(float)
            ax.hist(values[np.isfinite(values)], bins=20, color="#4363d8")
            ax.set_xlabel(column)
            ax.set_ylabel("spines")
        self.figure.tight_layout()
        self.canvas.draw_idle()

    # --- linking -----------------------------------------------------------------------------
    def selected_ids(self) -> list[int]:
        """Spine ids of the selected rows, in the table's order."""
        id_col = self._id_column()
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [int(float(self.table.item(r, id_col).data(Qt.DisplayRole))) for r in rows]

    def select_ids(self, ids):
        """Select the rows of ``ids`` (as a click in the viewer does) without moving the view."""
        id_col = self._id_column()
        self._updating = True
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QAbstractItemView.MultiSelection)
        for r in range(self.table.rowCount()):
            if int(float(self.table.item(r, id_col).data(Qt.DisplayRole))) in set(ids):
                self.table.selectRow(r)
                self.table.scrollToItem(self.table.item(r, id_col))
        self.table.setSelectionMode(mode)
        self._updating = False

    def _id_column(self) -> int:
        return list(self.owner.session.spines.columns).index("id")

    def _on_selection(self):
        if self._updating:
            return
        ids = self.selected_ids()
        if ids:
            self.owner.focus_spine(ids[-1])


def _histogram_canvas():
    from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2), dpi=80)
    return figure, FigureCanvasQTAgg(figure)
