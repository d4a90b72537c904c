"""The Train panel: fine-tune a network on saved training data, in a worker thread."""

from __future__ import annotations

from qtpy.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                            QSpinBox, QVBoxLayout, QWidget)

#: Shipped models to start from.
BASE_MODELS = ("lean2d_real", "lean2d")


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
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("Save corrected results with 'Save training data...' into sub-folders of one "
                             "folder, then fine-tune on it. Training stops after the time limit at the latest.")
        self.status.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.train_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()

    def start(self):
        """Fine-tune in a worker thread; the Run tab then uses the new model."""
        from dataclasses import replace

        from napari.qt.threading import thread_worker

        from ..errors import SpinequantError
        from ..segment.neural import TrainConfig, load_training_data, train

        data, out, base = self.data_dir.text().strip(), self.model_dir.text().strip(), self.base.currentText()
        if not data or not out:
            self.status.setText("Give the training-data folder and a folder for the model.")
            return None
        # Fine-tuning: a tenth of the learning rate of training from scratch, as `spinequant train --from`.
        config = replace(TrainConfig(), epochs=self.epochs.value(), steps_per_epoch=self.steps.value(),
                         batch_size=self.batch.value(), learning_rate=TrainConfig.learning_rate / 10,
                         max_minutes=self.minutes.value())

        @thread_worker(ignore_errors=True)
        def job():
            samples = load_training_data(data)
            return train(samples, out_dir=out, config=config, init=base, progress=False,
                         description=f"fine-tuned in napari on {data}")[1]

        self.worker = job()
        self.worker.returned.connect(self._on_done)
        self.worker.errored.connect(lambda exc: self.status.setText(
            f"Not trained: {exc}" if isinstance(exc, SpinequantError) else f"Training failed: {exc!r}"))
        self.worker.finished.connect(self._on_finished)
        self.train_button.setEnabled(False)
        self.progress.setRange(0, 0)          # busy: training reports no steps to the widget
        self.status.setText(f"Fine-tuning {base} on {data}...")
        self.worker.start()
        return self.worker

    def _on_done(self, card):
        v = card.validation
        self.owner.run_panel.method.setCurrentText(self.model_dir.text().strip())
        self.status.setText(f"Model written to {self.model_dir.text().strip()} (epoch {v.get('epoch')}: "
                            f"validation loss {v.get('val_loss', float('nan')):.3f}, dendrite IoU "
                            f"{v.get('dendrite_iou', float('nan')):.3f}, spine IoU "
                            f"{v.get('spine_iou', float('nan')):.3f}); the Run tab now uses it.")

    def _on_finished(self):
        self.train_button.setEnabled(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(1)


def _spin(lo: int, hi: int, value: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    return box
