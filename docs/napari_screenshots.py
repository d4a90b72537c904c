"""Make the screenshots of docs/napari.md from a running napari viewer.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/napari_screenshots.py

Opens the sample through the plugin's sample data, analyses it with the Spines widget's Run
tab (in its worker thread), inspects and corrects spines, saves the result and the training
data, fine-tunes for one short epoch, and opens the saved folder with the plugin's reader; each step is saved as docs/images/napari_<step>.png.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).parent / "images"


def wait(condition, timeout=300.0):
    start = time.time()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.time() - start > timeout:
            raise TimeoutError
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)


def shot(viewer, name):
    wait(lambda: True)
    viewer.screenshot(str(OUT / f"napari_{name}.png"), canvas_only=False)
    print("wrote", OUT / f"napari_{name}.png")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    viewer = napari.Viewer(title="spinequant")
    viewer.window._qt_window.resize(1500, 900)
    viewer.open_sample("spinequant", "sample")
    dock, widget = viewer.window.add_plugin_dock_widget("spinequant", "Spines")
    wait(lambda: True)
    viewer.window._qt_window.resizeDocks([dock], [520], Qt.Horizontal)
    run = widget.run_panel
    run.run()
    wait(lambda: run.run_button.isEnabled())
    widget.tabs.setCurrentWidget(run)
    run.stages_box.setCurrentWidget(run.stages_box.widget(list(run.stage_forms).index("morphology")))
    viewer.layers["spines"].visible = True
    viewer.reset_view()
    viewer.scene.camera.zoom *= 1.6
    shot(viewer, "run")

    inspect = widget.inspect_panel
    widget.tabs.setCurrentWidget(inspect)
    inspect.colour_box.setCurrentText("volume_um3")
    inspect.table.selectRow(3)
    viewer.scene.camera.zoom *= 2.0
    shot(viewer, "inspect")

    correct = widget.correct_panel
    widget.tabs.setCurrentWidget(correct)
    inspect.colour_box.setCurrentText("type")
    session = widget.session
    sid = int(session.spines.sort_values("volume_um3")["id"].iloc[-1])     # the largest spine
    vox = np.argwhere(session.spine_labels == sid)
    plane = np.bincount(vox[:, 0]).argmax()                  # the plane where it is largest
    vox = vox[vox[:, 0] == plane]
    widget.focus_spine(sid)
    viewer.dims.set_point(0, plane * session.spacing[0])
    viewer.scene.camera.zoom *= 2.0
    correct.place_points()
    seeds = np.array([vox[vox[:, 1].argmin()], vox[vox[:, 1].argmax()]], float)
    viewer.layers["edit points"].data = seeds
    shot(viewer, "correct_points")
    correct.split()
    inspect.colour_box.setCurrentText("spine id")
    viewer.layers.selection.active = viewer.layers["spines"]
    shot(viewer, "correct_split")

    folder = Path(tempfile.mkdtemp()) / "sample"
    worker = correct.save(folder)
    wait(lambda: not worker.is_running and "Saved" in correct.status.text())
    shot(viewer, "save")

    worker = correct.save_training(folder.parent / "training" / "sample")
    wait(lambda: not worker.is_running and "Saved" in correct.status.text())
    trainer = widget.train_panel
    widget.tabs.setCurrentWidget(trainer)
    trainer.model_dir.setText(str(folder.parent / "model"))
    trainer.epochs.setValue(1), trainer.steps.setValue(2), trainer.batch.setValue(4)
    worker = trainer.start()
    wait(lambda: not worker.is_running and "Model written" in trainer.status.text(), timeout=600)
    shot(viewer, "train")
    viewer.close()

    viewer = napari.Viewer(title="napari results/sample/")
    viewer.window._qt_window.resize(1500, 900)
    viewer.open(str(folder), plugin="spinequant")
    viewer.dims.ndisplay = 3
    viewer.layers["dendrites"].visible = False
    viewer.scene.camera.angles = (0, 30, 80)
    viewer.reset_view()
    shot(viewer, "open")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
