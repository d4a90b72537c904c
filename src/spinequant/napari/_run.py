"""The Run panel: analyse the selected image layer in a worker thread."""

from __future__ import annotations

import json

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                            QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from ..errors import SpinequantError
from ..validate import check_spacing

#: The stages :func:`spinequant.analyze` reports (its ``progress`` callback), in order.
ANALYSIS_STAGES = ("segment", "instances", "measure")
METHODS = ("lean2d_real", "lean2d", "classical")
ENGINES = ("auto", "torch", "onnx")


class AnalysisCancelled(Exception):
    """Raised in the worker at the next stage after Cancel was pressed."""


class _Relay(QObject):
    stage = Signal(str)


def layer_spacing(layer) -> tuple[float, ...] | None:
    """The voxel size of an image layer: its scale, unless that is napari's default of all ones
    (no voxel size known), or the ``spacing_um`` its metadata carries."""
    meta = getattr(layer, "metadata", {}) or {}
    if "spacing_um" in meta:
        return tuple(float(v) for v in meta["spacing_um"])
    scale = tuple(float(v) for v in layer.scale)
    return None if all(v == 1.0 for v in scale) else scale


def parse_spacing(text: str, ndim: int) -> tuple[float, ...]:
    """'0.5 0.094 0.094' (or with commas) as a checked spacing for an image of ``ndim`` axes."""
    try:
        values = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        values = ()
    return tuple(check_spacing(values or None, ndim=ndim, where="the voxel size field"))


class RunPanel(QWidget):
    """Image layer, voxel size, method, engine, minimum confidence, stage configs; Run/Cancel."""

    def __init__(self, owner):
        super().__init__()
        self.owner = owner
        self.worker = None
        self._cancel = False
        self._relay = _Relay()
        self._relay.stage.connect(self._on_stage)
        self.layer_box = QComboBox()
        self.voxel = QLineEdit()
        self.voxel.setPlaceholderText("z y x in µm, e.g. 0.5 0.094 0.094 (y x for a 2D image)")
        self.method = QComboBox()
        self.method.setEditable(True)       # a trained model's folder may be typed in
        self.method.addItems(METHODS)
        self.engine = QComboBox()
        self.engine.addItems(ENGINES)
        self.min_confidence = QDoubleSpinBox()
        self.min_confidence.setRange(-0.05, 1.0)
        self.min_confidence.setSingleStep(0.05)
        self.min_confidence.setSpecialValueText("model default")
        self.min_confidence.setValue(-0.05)
        self.stage_configs = QPlainTextEdit()
        self.stage_configs.setPlaceholderText('Stage configs as in run.json, e.g.\n'
                                              '{"morphology": {"rule_set": "risher"},\n "instances": null}')
        self.stage_configs.setMaximumHeight(80)
        form = QFormLayout()
        form.addRow("image layer", self.layer_box)
        form.addRow("voxel size (µm)", self.voxel)
        form.addRow("method", self.method)
        form.addRow("engine", self.engine)
        form.addRow("min. confidence", self.min_confidence)
        form.addRow("stage configs", self.stage_configs)
        self.run_button = QPushButton("Analyse")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.open_button = QPushButton("Open a result folder to correct...")
        self.open_button.clicked.connect(lambda: self.open_result())
        self.progress = QProgressBar()
        self.progress.setRange(0, len(ANALYSIS_STAGES))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.open_button)
        layout.addWidget(self.status)
        layout.addStretch()
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.layer_box.currentTextChanged.connect(self._on_layer)
        owner.viewer.layers.events.inserted.connect(self.refresh_layers)
        owner.viewer.layers.events.removed.connect(self.refresh_layers)
        self.refresh_layers()

    # --- fields ------------------------------------------------------------------------------
    def refresh_layers(self, *_):
        from napari.layers import Image

        from ._layers import DENDRITE_MAP, SPINE_MAP

        current = self.layer_box.currentText()
        names = [layer.name for layer in self.owner.viewer.layers
                 if isinstance(layer, Image) and layer.name not in (SPINE_MAP, DENDRITE_MAP)]
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(names)
        self.layer_box.blockSignals(False)
        if current in names:
            self.layer_box.setCurrentText(current)
        elif names:
            self.layer_box.setCurrentIndex(0)
            self._on_layer(names[0])

    def _on_layer(self, name: str):
        if name not in self.owner.viewer.layers:
            return
        spacing = layer_spacing(self.owner.viewer.layers[name])
        self.voxel.setText(" ".join(f"{v:g}" for v in spacing) if spacing else "")
        self.status.setText("" if spacing else "This layer has no voxel size: enter it (µm).")

    def config(self):
        """The :class:`~spinequant.pipeline.analyze.AnalyzeConfig` the fields describe."""
        from ..errors import InputError
        from ..pipeline.analyze import AnalyzeConfig

        text = self.stage_configs.toPlainText().strip()
        try:
            stages = json.loads(text) if text else {}
        except ValueError as exc:
            raise InputError(f"The stage configs are not valid JSON ({exc}); write them as in run.json's "
                             f"\"config\".") from None
        if not isinstance(stages, dict):
            raise InputError("The stage configs must be a JSON object, e.g. {\"morphology\": {\"rule_set\": \"risher\"}}.")
        conf = self.min_confidence.value()
        values = {"method": self.method.currentText(), "engine": self.engine.currentText(),
                  "min_confidence": None if conf < 0 else round(conf, 4), **stages}
        return AnalyzeConfig.from_dict(values)

    # --- running -----------------------------------------------------------------------------
    def run(self):
        """Start the analysis of the chosen layer in a worker thread."""
        from napari.qt.threading import thread_worker

        from ..pipeline.analyze import analyze

        name = self.layer_box.currentText()
        if name not in self.owner.viewer.layers:
            self.status.setText("Open an image first (File > Open, or File > Open Sample > spinequant).")
            return
        image = np.asarray(self.owner.viewer.layers[name].data)
        try:
            spacing = parse_spacing(self.voxel.text(), image.ndim)
            config = self.config()
        except SpinequantError as exc:
            self.status.setText(str(exc))
            return
        self._cancel = False

        def progress(stage):
            if self._cancel:
                raise AnalysisCancelled
            self._relay.stage.emit(stage)

        @thread_worker(ignore_errors=True)
        def job():
            return analyze(image, spacing=spacing, config=config, progress=progress)

        self.worker = job()
        self.worker.returned.connect(self._on_result)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(f"Analysing '{name}' ({config.method})...")
        self.worker.start()

    def open_result(self, folder=None):
        """Load a result folder (as `spinequant analyze` or Save wrote it) to inspect and correct."""
        from qtpy.QtWidgets import QFileDialog

        from ..edit.load import load_result

        if folder is None:
            folder = QFileDialog.getExistingDirectory(self, "spinequant result folder")
            if not folder:
                return
        try:
            result = load_result(folder)
        except SpinequantError as exc:
            self.status.setText(str(exc))
            return
        self.owner.show_result(result)
        self.status.setText(f"Opened {folder}: {len(result.spines)} spines.")

    def cancel(self):
        """Stop at the next stage: the result is dropped."""
        self._cancel = True
        self.status.setText("Cancelling after the current stage...")

    def _on_stage(self, stage: str):
        if stage in ANALYSIS_STAGES:
            self.progress.setValue(ANALYSIS_STAGES.index(stage))
            self.status.setText(f"{stage}...")

    def _on_result(self, result):
        if self._cancel:
            self.status.setText("Cancelled.")
            return
        self.progress.setValue(len(ANALYSIS_STAGES))
        self.owner.show_result(result, with_image=False)
        warnings = result.diagnostics.get("warnings") or []
        self.status.setText(f"{len(result.spines)} spines on {len(result.dendrites)} dendrite(s)."
                            + "".join(f"\n{w}" for w in warnings))

    def _on_error(self, exc):
        self.progress.setValue(0)
        self.status.setText("Cancelled." if isinstance(exc, AnalysisCancelled) else f"Failed: {exc}")

    def _on_finished(self):
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
