"""The Train panel: fine-tune a network on saved training data, in a worker thread."""

from __future__ import annotations

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                            QPushButton, QSpinBox, QVBoxLayout, QWidget)

from ..errors import Cancelled

#: Shipped models to start from.
BASE_MODELS = ("lean2d_real", "lean2d")


class _Relay(QObject):
    step = Signal(int, int, object)       # epoch, step (from 1), the epoch's metrics or None


class TrainPanel(QWidget):
    """Data folder (stacks saved with 'Save training data...'), model folder, base model,
    epochs, steps per epoch, batch size, time limit; Fine-tune."""

    def __init__(self, owner):
        from ..segment.neural import TrainConfig

        super().__init__()
        self.owner = owner
        self.worker = None
        self.data_dir = QLineEdit()
        self.data_dir.setPlaceholderText("folder holding one sub-folder per saved stack")
        self.model_dir = QLineEdit()
        self.model_dir.setPlaceholderText("folder for the fine-tuned model")
        self.base = QComboBox()
        self.base.setEditable(True)
        self.base.addItems(BASE_MODELS)
        self.epochs = _spin(1, 1000, 5)
        self.steps = _spin(1, 10_000, TrainConfig.steps_per_epoch)
        self.batch = _spin(1, 256, TrainConfig.batch_size)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.5, 10_000)
        self.minutes.setValue(30)
        form = QFormLayout()
        for label, field in (("training data", self.data_dir), ("model folder", self.model_dir),
                             ("start from", self.base), ("epochs", self.epochs), ("steps per epoch", self.steps),
                             ("batch size", self.batch), ("at most (min)", self.minutes)):
            form.addRow(label, field)
        self.train_button = QPushButton("Fine-tune")
        self.train_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self._cancel = False
        self._relay = _Relay()
        self._relay.step.connect(self._on_step)
        self.epochs_done: list[dict] = []
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("Save corrected results with 'Save training data...' into sub-folders of one "
                             "folder, then fine-tune on it. Training stops after the time limit at the latest.")
        self.status.setWordWrap(True)
        self.history = QLabel("")
        self.history.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.history)
        layout.addWidget(self.status)
        layout.addStretch()

    def start(self):
        """Fine-tune in a worker thread; the Run tab then uses the new model."""
        from dataclasses import replace

        from napari.qt.threading import thread_worker

        from ..errors import SpinequantError
        from ..pipeline.training import train_model
        from ..segment.neural import TrainConfig, load_training_data

        data, out, base = self.data_dir.text().strip(), self.model_dir.text().strip(), self.base.currentText()
        if not data or not out:
            self.status.setText("Give the training-data folder and a folder for the model.")
            return None
        # Fine-tuning: a tenth of the learning rate of training from scratch, as `spinequant train --from`.
        config = replace(TrainConfig(), epochs=self.epochs.value(), steps_per_epoch=self.steps.value(),
                         batch_size=self.batch.value(), learning_rate=TrainConfig.learning_rate / 10,
                         max_minutes=self.minutes.value())

        self._cancel = False
        self.epochs_done = []

        def progress(epoch, step, metrics):
            if self._cancel:
                raise Cancelled
            self._relay.step.emit(epoch, step, metrics)

        @thread_worker(ignore_errors=True)
        def job():
            samples = load_training_data(data)
            try:
                return train_model(samples, out_dir=out, config=config, init=base, progress=progress,
                                   description=f"fine-tuned in napari on {data}")
            except Cancelled:
                return None

        self.worker = job()
        self.worker.returned.connect(self._on_done)
        self.worker.errored.connect(lambda exc: self.status.setText(
            f"Not trained: {exc}" if isinstance(exc, SpinequantError) else f"Training failed: {exc!r}"))
        self.worker.finished.connect(self._on_finished)
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, config.epochs * config.steps_per_epoch)
        self.progress.setValue(0)
        self.history.setText("")
        self.status.setText(f"Fine-tuning {base} on {data}...")
        self.worker.start()
        return self.worker

    def cancel(self):
        """Stop after the running training step; the best model of the finished epochs stays."""
        self._cancel = True
        self.status.setText("Cancelling...")

    def _on_step(self, epoch: int, step: int, metrics):
        self.progress.setValue((epoch - 1) * self.steps.value() + step)
        if metrics is None:
            if not self._cancel:
                self.status.setText(f"Fine-tuning: epoch {epoch}/{self.epochs.value()}, step {step}/{self.steps.value()}")
            return
        from ..segment.neural.train import iou_text

        self.epochs_done.append(metrics)
        self.history.setText("\n".join(
            f"epoch {m['epoch']}: train loss {m['train_loss']:.3f}, validation loss {m['val_loss']:.3f}, "
            f"spine IoU {iou_text(m['spine_iou'])}" for m in self.epochs_done))

    def _on_done(self, trained):
        if trained is None:
            kept = (f"the best model of the {len(self.epochs_done)} finished epoch(s) is in "
                    f"{self.model_dir.text().strip()} (Fine-tune again to resume)"
                    if self.epochs_done else "no epoch had finished: no model was written")
            self.status.setText(f"Cancelled; {kept}.")
            return
        from ..segment.neural.train import iou_text

        v = trained.card.validation
        self.owner.run_panel.method.setCurrentText(self.model_dir.text().strip())
        self.status.setText(f"Model written to {self.model_dir.text().strip()} (epoch {v.get('epoch')}: "
                            f"validation loss {v.get('val_loss', float('nan')):.3f}, dendrite IoU "
                            f"{iou_text(v.get('dendrite_iou'))}, spine IoU {iou_text(v.get('spine_iou'))}); "
                            f"the Run tab now uses it. "
                            + trained.summary())

    def _on_finished(self):
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)


def _spin(lo: int, hi: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    return box
