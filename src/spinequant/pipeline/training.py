"""Train or fine-tune a network on annotated stacks and calibrate its spine confidence on the
stacks it held out: what ``spinequant train`` and the napari Train tab run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..segment.neural import TrainConfig, train
from ..segment.neural.train import split_validation
from .calibrate import CalibrateConfig, calibrate_model


@dataclass
class TrainedModel:
    """A trained model's card; the calibration fitted on the held-out stacks (None when the
    network has no head map or could not be calibrated, ``calibration_note`` says why)."""

    card: Any
    calibration: dict | None
    calibration_note: str = ""

    def calibration_summary(self) -> str:
        """One sentence on the confidence calibration, for a person; empty when the network
        has nothing to calibrate."""
        c = self.calibration
        if c is None:
            return f"Spine confidence {self.calibration_note}." if self.calibration_note.startswith("not") else ""
        h = c["held_out"]
        found = (f"{h['images']} held-out image(s), {h['matched']} of {h['annotated_heads']} annotated heads "
                 f"among {h['candidates']} candidates")
        if c["method"] == "trees":
            ece = (f", calibration error {h['learnt_ece_cross_fitted']:.3f} (before its refit "
                   f"{h['learnt_ece_before_refit']:.3f})" if "learnt_ece_cross_fitted" in h else "")
            return (f"Spine confidence: the learnt confidence of the model fine-tuned from is kept, its "
                    f"probabilities refitted (F1 {h['learnt_f1']:.3f} on the {found}, against "
                    f"{h['head_map_f1']:.3f} by the head map alone{ece}); default minimum confidence "
                    f"{c['min_confidence']:g}.")
        ece = f", calibration error {c['ece_cross_fitted']:.3f}" if "ece_cross_fitted" in c else ""
        learnt = (f"; the learnt confidence of the model fine-tuned from scored lower there "
                  f"(F1 {h['learnt_f1']:.3f}) and was dropped" if "learnt_f1" in h else "")
        return (f"Spine confidence calibrated on the {found}{ece}; default minimum confidence "
                f"{c['min_confidence']:g} (F1 {c['f1_at_min_confidence']:.3f} there){learnt}.")


def train_model(samples, *, out_dir, config=None, init=None, resume: bool = True, progress=True,
                description: str = "", calibrate: CalibrateConfig | None = CalibrateConfig()) -> TrainedModel:
    """:func:`spinequant.segment.neural.train` on ``samples``, holding out the same stacks it
    would (:func:`~spinequant.segment.neural.train.split_validation`), then, for a network with
    a point head, :func:`~spinequant.pipeline.calibrate.calibrate_model` on those held-out
    stacks, so that the new model's ``confidence`` column is a probability again and its
    default minimum confidence is chosen by F1 (``calibrate=None`` skips it)."""
    from .analyze import has_point_head

    config = config or TrainConfig()
    fit, held_out = split_validation(samples, config.val_fraction)
    _, card = train(fit, out_dir=out_dir, config=config, init=init, resume=resume, val_samples=held_out,
                    progress=progress, description=description)
    if calibrate is None:
        return TrainedModel(card, None, "calibration not asked for")
    if not has_point_head(str(out_dir)):
        return TrainedModel(card, None, "the network has no spine-head map to calibrate")
    carried = init is not None and not card.calibration and carry_learnt_confidence(init, out_dir)
    try:
        result = calibrate_model(out_dir, held_out, config=calibrate)
    except InputError as exc:
        kept = (" It keeps the learnt confidence of the model it was fine-tuned from, unchecked on "
                "these images." if carried else "")
        return TrainedModel(card, None, f"not calibrated: {exc}{kept}")
    from ..segment.neural.card import read_card

    return TrainedModel(read_card(out_dir), result)


def carry_learnt_confidence(source, model) -> bool:
    """Give ``model`` (a folder written by training) the learnt confidence of ``source`` (the
    model it was fine-tuned from), if that has one: its trees file copied beside the card and
    its calibration entry, for :func:`calibrate_model` to keep or drop by measurement."""
    import shutil

    from .._atomic import atomic_path
    from ..segment.neural.card import read_card, resolve, update_card

    calibration = read_card(source).calibration or {}
    if calibration.get("method") != "trees":
        return False
    card_path, _ = resolve(model)
    with atomic_path(card_path.parent / calibration["file"]) as tmp:
        shutil.copyfile(resolve(source)[0].parent / calibration["file"], tmp)
    update_card(model, calibration=calibration)
    return True
