"""The Run panel: analyse the selected image layer in a worker thread."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                            QProgressBar, QPushButton, QScrollArea, QToolBox, QVBoxLayout, QWidget)

from ..errors import Cancelled, SpinequantError
from ..validate import check_spacing
from ._forms import ConfigForm, stage_config_classes

#: The stages :func:`spinequant.analyze` reports (its ``progress`` callback), in order.
ANALYSIS_STAGES = ("segment", "instances", "measure")
METHODS = ("lean2d_real", "lean2d", "classical")
ENGINES = ("auto", "torch", "onnx")
#: How a point-head network's spines are scored (``AnalyzeConfig.confidence``).
CONFIDENCES = ("auto", "head_map")
#: Orientations a network's maps are averaged over (``AnalyzeConfig.orientations``; auto: 8 in 2D, 1 in 3D
#: or for a network whose filters are shared over the orientations).
ORIENTATIONS = ("auto", "1", "4", "8")
#: Steps of the progress bar per stage.
BAR_STEPS = 1000


#: Stage configs the Run tab shows no form for: the two-channel ratio needs a tagged channel,
#: which the tab does not take (a run.json's ratio settings are kept as loaded).
STAGES_WITHOUT_FORM = ("ratio",)

class _Relay(QObject):
    stage = Signal(str, float)


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
    """Image layer, voxel size, method, engine, confidence and its minimum, stage configs; Run/Cancel."""

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
        self.confidence = QComboBox()
        self.confidence.addItems(CONFIDENCES)
        self.confidence.setToolTip("auto: the model's learnt confidence (every candidate measured, then "
                                   "scored); head_map: the calibrated head-map peak alone")
        self.min_confidence = QDoubleSpinBox()
        self.min_confidence.setDecimals(3)          # the shipped default, 0.375, needs three
        self.min_confidence.setRange(-0.05, 1.0)
        self.min_confidence.setSingleStep(0.05)
        self.min_confidence.setSpecialValueText("model default")
        self.min_confidence.setValue(-0.05)
        self.orientations = QComboBox()
        self.orientations.addItems(ORIENTATIONS)
        self.orientations.setToolTip("networks: average the maps over the image as given (1), with its mirror "
                                     "images (4) or its quarter turns too (8); auto: 8 for a 2D image, 1 for a stack "
                                     "or a network with filters shared over the orientations (p4m)")
        self._base = None                   # a configuration loaded from a run.json
        self.stage_forms, self.stages_box = self._stage_forms()
        self._show_method_instances()
        self.load_button = QPushButton("Load settings from a run.json...")
        self.load_button.clicked.connect(lambda: self.load_settings())
        form = QFormLayout()
        form.addRow("image layer", self.layer_box)
        form.addRow("voxel size (µm)", self.voxel)
        form.addRow("method", self.method)
        form.addRow("engine", self.engine)
        form.addRow("confidence", self.confidence)
        form.addRow("min. confidence", self.min_confidence)
        form.addRow("orientations", self.orientations)
        self.run_button = QPushButton("Analyse")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.open_button = QPushButton("Open a result folder to correct...")
        self.open_button.clicked.connect(lambda: self.open_result())
        self.progress = QProgressBar()
        self.progress.setRange(0, BAR_STEPS * len(ANALYSIS_STAGES))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("stage settings (the fields of the stage configs, as in run.json)"))
        layout.addWidget(self.stages_box, stretch=1)
        layout.addWidget(self.load_button)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.open_button)
        layout.addWidget(self.status)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.layer_box.currentTextChanged.connect(self._on_layer)
        self.method.currentTextChanged.connect(self._show_method_instances)
        self.min_confidence.valueChanged.connect(self._show_method_instances)
        self.confidence.currentTextChanged.connect(self._show_method_instances)
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
        self._show_method_instances()

    def _layer_ndim(self) -> int:
        """2 for a 2D image layer (a plane or a projection), else 3."""
        name = self.layer_box.currentText()
        if name not in self.owner.viewer.layers:
            return 3
        return 2 if self.owner.viewer.layers[name].data.ndim == 2 else 3

    def _stage_forms(self):
        """A form per stage config of AnalyzeConfig (classical, instances, morphology), in a
        tool box; instances may follow the method's own defaults."""
        from ..pipeline.analyze import AnalyzeConfig

        forms, box = {}, QToolBox()
        for name, cls in stage_config_classes(AnalyzeConfig).items():
            if name in STAGES_WITHOUT_FORM:
                continue
            form = ConfigForm(cls)
            page = QWidget()
            column = QVBoxLayout(page)
            if name == "instances":
                self.method_instances = QCheckBox("the method's defaults (the fields show them)")
                self.method_instances.setChecked(True)
                self.method_instances.toggled.connect(lambda on: self._show_method_instances())
                column.addWidget(self.method_instances)
            column.addWidget(form)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(page)
            box.addItem(scroll, name)
            forms[name] = form
        return forms, box

    def _show_method_instances(self, *_):
        """While the instance settings follow the method, show the method's and lock them."""
        form = getattr(self, "stage_forms", {}).get("instances")
        if form is None:
            return
        follow = self.method_instances.isChecked()
        form.setEnabled(not follow)
        if follow:
            from ..pipeline.analyze import AnalyzeConfig, resolve_config

            conf = self.min_confidence.value()
            try:   # as the run will resolve them: a calibrated head threshold included
                form.set_value(resolve_config(AnalyzeConfig(
                    method=self.method.currentText(), confidence=self.confidence.currentText(),
                    min_confidence=None if conf < 0 else round(conf, 4)), ndim=self._layer_ndim()).instances)
            except SpinequantError:
                pass            # a model folder being typed in: shown when it exists

    def config(self):
        """The :class:`~spinequant.pipeline.analyze.AnalyzeConfig` the fields describe (an
        :class:`InputError` with the config's own message when a field is not valid)."""
        from ..pipeline.analyze import AnalyzeConfig

        conf = self.min_confidence.value()
        stages = {name: form.value() for name, form in self.stage_forms.items()}
        if self.method_instances.isChecked():
            stages["instances"] = None
        values = {"method": self.method.currentText(), "engine": self.engine.currentText(),
                  "confidence": self.confidence.currentText(), "min_confidence": None if conf < 0 else round(conf, 4),
                  "orientations": None if self.orientations.currentText() == "auto" else int(self.orientations.currentText()),
                  **stages}
        return replace(self._base or AnalyzeConfig(), **values)

    def load_settings(self, path=None):
        """Fill the fields from a run's ``run.json`` (its ``config``), or from a JSON file holding
        just such a config; the run's export settings are kept for it too."""
        from pathlib import Path

        from qtpy.QtWidgets import QFileDialog

        from ..errors import InputError
        from ..pipeline.analyze import AnalyzeConfig

        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "run.json of a spinequant result", "", "JSON (*.json)")
            if not path:
                return None
        try:
            try:
                record = json.loads(Path(path).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InputError(f"Cannot read settings from '{path}' ({exc}); choose a result's run.json.") from None
            config = AnalyzeConfig.from_dict(record.get("config", record) if isinstance(record, dict) else None)
        except SpinequantError as exc:
            self.status.setText(str(exc))
            return None
        self._base = config
        self.method.setCurrentText(config.method)
        self.engine.setCurrentText(config.engine)
        self.confidence.setCurrentText(config.confidence)
        self.min_confidence.setValue(-0.05 if config.min_confidence is None else config.min_confidence)
        self.orientations.setCurrentText("auto" if config.orientations is None else str(config.orientations))
        for name, form in self.stage_forms.items():
            value = getattr(config, name)
            if name == "instances":
                self.method_instances.setChecked(value is None)
            if value is not None:
                form.set_value(value)
        self.status.setText(f"Settings loaded from {path}.")
        return config

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
        self.cancelled_at = None

        def progress(stage, fraction):
            if self._cancel:
                self.cancelled_at = (stage, fraction)
                raise Cancelled
            self._relay.stage.emit(stage, fraction)

        @thread_worker(ignore_errors=True)
        def job():
            try:
                return analyze(image, spacing=spacing, config=config, progress=progress)
            except Cancelled:
                return None      # nothing to show: the viewer stays as it was

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
        """Stop the analysis at its next progress report (a batch of network tiles, a step, a
        few spines): nothing is shown."""
        self._cancel = True
        self.status.setText("Cancelling...")

    def _on_stage(self, stage: str, fraction: float):
        if stage in ANALYSIS_STAGES:
            self.progress.setValue(int(BAR_STEPS * (ANALYSIS_STAGES.index(stage) + fraction)))
            if not self._cancel:
                self.status.setText(f"{stage}... {100 * fraction:.0f}%")

    def _on_result(self, result):
        if result is None or self._cancel:
            stage, fraction = self.cancelled_at or ("", 0)
            self.progress.setValue(0)
            self.status.setText(f"Cancelled during {stage} ({100 * fraction:.0f}%); nothing changed."
                                if stage else "Cancelled; nothing changed.")
            return
        self.progress.setValue(self.progress.maximum())
        self.owner.show_result(result, with_image=False)
        warnings = result.diagnostics.get("warnings") or []
        self.status.setText(f"{len(result.spines)} spines on {len(result.dendrites)} dendrite(s)."
                            + "".join(f"\n{w}" for w in warnings))

    def _on_error(self, exc):
        self.progress.setValue(0)
        self.status.setText(f"Failed: {exc}")

    def _on_finished(self):
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
