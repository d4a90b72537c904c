"""Train or fine-tune a network on annotated stacks and calibrate its spine confidence on the
stacks it held out: what ``spinequant train`` and the napari Train tab run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..segment.neural import TrainConfig, train
from ..segment.neural.card import read_card, update_card
from ..segment.neural.train import split_validation
from .calibrate import CalibrateConfig, calibrate_model


@dataclass
class TrainedModel:
    """A trained model's card; the calibration fitted on the held-out stacks (None when the
    network has no head map or could not be calibrated, ``calibration_note`` says why); what
    became of the 3D head network of the model fine-tuned from (``stack_heads_note``)."""

    card: Any
    calibration: dict | None
    calibration_note: str = ""
    stack_heads_note: str = ""

    def summary(self) -> str:
        """What a person is told after training besides the validation metrics: the spine
        confidence's calibration and whether the 3D head network was carried over."""
        return " ".join(t for t in (self.calibration_summary(), self.stack_heads_note) if t)

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
    if not has_point_head(str(out_dir)):
        return TrainedModel(card, None, "the network has no spine-head map to calibrate")
    stack_note = ""
    if init is not None and not card.stack_heads:
        stack_note = carry_stack_heads(init, out_dir, held_out, config=calibrate or CalibrateConfig())
    if calibrate is None:
        return TrainedModel(read_card(out_dir), None, "calibration not asked for", stack_note)
    carried = init is not None and not card.calibration and carry_learnt_confidence(init, out_dir)
    try:
        result = calibrate_model(out_dir, held_out, config=calibrate)
    except InputError as exc:
        kept = (" It keeps the learnt confidence of the model it was fine-tuned from, unchecked on "
                "these images." if carried else "")
        return TrainedModel(read_card(out_dir), None, f"not calibrated: {exc}{kept}", stack_note)
    return TrainedModel(read_card(out_dir), result, stack_heads_note=stack_note)


#: Annotated heads on held-out stacks below which the 3D partner is kept unchecked: on four
#: 32 x 160 x 160 phantoms a preset (73-283 heads) it gains +0.005 to +0.032 pooled, but from
#: -0.037 to +0.066 stack by stack (docs/neural.md, "Training and fine-tuning").
MIN_STACK_HEADS = 100


def carry_stack_heads(source, model, held_out, *, config: CalibrateConfig = CalibrateConfig()) -> str:
    """Give ``model`` (a folder written by training) the 3D head network that ``source`` (the
    model it was fine-tuned from) joins on stacks (its card's ``stack_heads``), and keep it only
    if, on the held-out annotated stacks that have depth, the joined head map detects at least as
    well as the fine-tuned network's own (detection F1 at the best minimum, as
    :func:`~spinequant.pipeline.calibrate.calibrate_model` chooses it). 2D images never run the
    3D network, and fewer than :data:`MIN_STACK_HEADS` heads cannot tell the two apart, so
    then it is kept unchecked. Returns a sentence for a person ("" when ``source`` names no 3D
    network)."""
    from .calibrate import head_map_f1

    entry = {k: v for k, v in (read_card(source).stack_heads or {}).items() if k in ("model", "weight", "finer_z")}
    if not entry:
        return ""
    names = entry["model"] + (f" ({entry['finer_z']['model']} for z steps of at most "
                              f"{entry['finer_z']['max_z_step_um']} µm)" if entry.get("finer_z") else "")
    stacks = [s for s in held_out if s.heads is not None and s.image.shape[0] > 1]
    n_heads = sum(len(s.heads) for s in stacks)
    if n_heads < MIN_STACK_HEADS:
        why = (f"{n_heads} annotated heads on {len(stacks)} held-out stack(s) with depth, fewer than the "
               f"{MIN_STACK_HEADS} needed to check it" if stacks else "no held-out annotated stack has depth")
        update_card(model, stack_heads={**entry, "held_out": f"unchecked: {why}"})
        return (f"On stacks the head map is joined by the 3D network {names} of the model fine-tuned "
                f"from (unchecked: {why}).")
    f1_alone = head_map_f1(model, stacks, config=config)
    update_card(model, stack_heads=entry)
    f1_joined = head_map_f1(model, stacks, config=config)
    measured = {"stacks": len(stacks), "annotated_heads": n_heads, "f1_joined": round(f1_joined, 4),
                "f1_2d_alone": round(f1_alone, 4)}
    scores = (f"detection F1 {f1_joined:.3f} joined against {f1_alone:.3f} alone on {len(stacks)} held-out "
              f"stack(s), {n_heads} heads")
    if f1_joined >= f1_alone:
        update_card(model, stack_heads={**entry, "held_out": measured})
        return f"On stacks the head map is joined by the 3D network {names} ({scores})."
    update_card(model, stack_heads={})
    return f"The 3D network {names} of the model fine-tuned from was dropped ({scores})."


def carry_learnt_confidence(source, model) -> bool:
    """Give ``model`` (a folder written by training) the learnt confidence of ``source`` (the
    model it was fine-tuned from), if that has one: its trees file copied beside the card and
    its calibration entry, for :func:`calibrate_model` to keep or drop by measurement."""
    import shutil

    from .._atomic import atomic_path
    from ..segment.neural.card import resolve

    calibration = read_card(source).calibration or {}
    if calibration.get("method") != "trees":
        return False
    card_path, _ = resolve(model)
    with atomic_path(card_path.parent / calibration["file"]) as tmp:
        shutil.copyfile(resolve(source)[0].parent / calibration["file"], tmp)
    update_card(model, calibration=calibration)
    return True
