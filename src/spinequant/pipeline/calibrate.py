"""Calibrate a point-head network's spine confidence on annotated images.

A network fine-tuned on a lab's own annotations scores its spines by the peaks of its head
map, and a peak is a score, not a probability: how often a peak of 0.4 is a spine a human
would mark depends on the network and its training. The shipped model carries a calibration
fitted on real validation images; a fine-tuned one starts with none. This module fits one
on annotated images the network did not learn from (the held-out stacks of its training,
:func:`spinequant.pipeline.training.train_model`): every head-map peak down to a low floor is
found by :func:`~spinequant.pipeline.analyze`, matched one-to-one to the annotated heads
within ``match_um``, and a Platt fit (:mod:`spinequant.segment.neural.calibration`) turns
its peak into the probability that it matched. The minimum confidence kept by default is
the one that maximises detection F1 on the same images; the calibration error is measured by
fitting on one half of the images and scoring the other (two folds), so that it is not the
fit's own error.

The shipped model's learnt confidence (trees over 33 measurements of each candidate) was
fitted to the shipped network's candidates, but a gently fine-tuned network's candidates are
much like them: carried over to a network fine-tuned on dendritic2's fields it still scored
higher than that network's calibrated head map (docs/neural.md, "Fine-tuning on your own
annotations"). Whether it does on a lab's images is measured on their held-out images, and
the better of the two is kept.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class CalibrateConfig:
    """Settings of :func:`calibrate_model`.

    Attributes
    ----------
    floor : float
        Head-map peaks down to this value are candidates (the benchmark's floor, 0.05).
    match_um : float
        A candidate matches an annotated head within this distance (µm, one-to-one).
    min_matched, min_unmatched : int
        Fewer matched or unmatched candidates than this leave the model uncalibrated: a
        logistic fit on a handful of points says nothing.
    """

    floor: float = 0.05
    match_um: float = 1.0
    min_matched: int = 10
    min_unmatched: int = 10


#: Minimum confidences tried when choosing the default by F1.
GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


def candidate_scores(model, samples, *, config: CalibrateConfig = CalibrateConfig(), learnt: bool = False,
                     progress=None):
    """Every head-map peak of ``model`` at or above ``config.floor`` on each annotated sample
    (:class:`~spinequant.segment.neural.TrainingSample` with ``heads``): a list, per sample, of
    (raw peak scores, matched-an-annotated-head flags, number of annotated heads). With
    ``learnt``, every candidate of the model's learnt confidence instead, scored by it."""
    from ..evaluate.points import match_points
    from ..segment.neural.calibration import score_for
    from .analyze import AnalyzeConfig, analyze, default_instance_config, model_calibration

    calibration = model_calibration(str(model), "auto" if learnt else "head_map")
    run = AnalyzeConfig(method=str(model), report=False, confidence="auto" if learnt else "head_map")
    if learnt:           # the candidates it was fitted on, each with its probability
        run = dataclasses.replace(run, min_confidence=1e-9)
        calibration = calibration.get("recalibration")    # scored without an earlier refit
    elif calibration:    # a calibrated model: the floor as a confidence (its threshold follows)
        from ..segment.neural.calibration import confidence

        run = dataclasses.replace(run, min_confidence=float(confidence([config.floor], calibration)[0]))
    else:
        run = dataclasses.replace(run, instances=dataclasses.replace(
            default_instance_config(str(model)), head_threshold=config.floor))
    out = []
    for k, s in enumerate(samples):
        planar = s.image.shape[0] == 1
        image, spacing = (s.image[0], s.spacing[1:]) if planar else (s.image, s.spacing)
        spines = analyze(image, spacing=spacing, config=run, keep_maps=False).spines
        found = np.column_stack([spines["head_z_um"] if not planar else np.zeros(len(spines)),
                                 spines["head_y_um"], spines["head_x_um"]]).astype(float)
        truth = np.asarray(s.heads, float) * np.asarray(s.spacing, float)
        if planar:
            truth[:, 0] = 0.0
        raw = spines["confidence"].to_numpy(float)
        if calibration:
            raw = np.array([score_for(c, calibration) for c in raw])
        hit = np.zeros(len(found), bool)
        if len(found) and len(truth):
            pairs = match_points(found, truth, max_distance_um=config.match_um)["pairs"]
            hit[pairs["pred_index"].to_numpy()] = True
        out.append((raw, hit, len(truth)))
        if progress is not None:
            progress(k + 1, len(samples))
    return out


def head_map_f1(model, samples, *, config: CalibrateConfig = CalibrateConfig()) -> float:
    """Detection F1 of ``model``'s head-map peaks on annotated ``samples`` at the best minimum
    of :data:`GRID` (the peaks Platt-calibrated on the same samples, as :func:`calibrate_model`
    chooses its default), or 0.0 when nothing was found."""
    from ..segment.neural.calibration import confidence, fit_platt

    scores, hits, n_true = _pooled(candidate_scores(model, samples, config=config))
    if not hits.any() or hits.all():
        return float(2 * hits.sum() / (len(hits) + n_true)) if len(hits) + n_true else 0.0
    return _best_minimum(confidence(scores, fit_platt(scores, hits)), hits, n_true)[1]


def calibrate_model(model, samples, *, config: CalibrateConfig = CalibrateConfig(), write: bool = True,
                    progress=None) -> dict:
    """Calibrate the spine confidence of point-head network ``model`` (a folder or card written
    by ``spinequant train``) on annotated ``samples`` it did not learn from.

    The head-map peak always gets a Platt calibration (``a``, ``b``; ``min_confidence`` chosen
    by F1; ``ece_cross_fitted`` when two or more samples have candidates; counts and F1). When
    the card also has a learnt confidence (trees over each candidate's measurements, such as
    the shipped model's, which :func:`~spinequant.pipeline.training.train_model` carries over
    to a fine-tuned network), it is scored on the same samples too: it is kept, with its
    minimum confidence chosen again by F1 there and the head-map fit as its ``head_map`` entry
    (what ``confidence="head_map"`` uses), if its F1 there is at least the head map's;
    otherwise the head-map calibration replaces it. Returns the calibration written (with
    ``write``) into the card, where :func:`~spinequant.analyze` reads it; its ``held_out``
    entry holds what was measured. Raises :class:`~spinequant.errors.InputError` when the
    samples have no annotated heads or too few matched and unmatched candidates to fit.
    """
    from ..segment.neural.calibration import confidence, expected_calibration_error, fit_platt
    from ..segment.neural.card import read_card, update_card
    from .analyze import has_point_head

    if not has_point_head(str(model)):
        raise InputError(f"'{model}' has no spine-head map: only a point-head network (such as one "
                         f"fine-tuned from lean2d_real) scores its spines and can be calibrated.")
    annotated = [s for s in samples if s.heads is not None]
    if not annotated:
        raise InputError("None of the calibration images has annotated spine heads (points, boxes or "
                         "outlines, or spine_heads.csv): the confidence cannot be calibrated on them.")
    per_sample = candidate_scores(model, annotated, config=config, progress=progress)
    scores, hits, n_true = _pooled(per_sample)
    n_hit, n_miss = int(hits.sum()), int((~hits).sum())
    if n_hit < config.min_matched or n_miss < config.min_unmatched:
        raise InputError(
            f"Too few candidate spines to calibrate the confidence on {len(annotated)} image(s): "
            f"{n_hit} matched an annotated head and {n_miss} did not (at least {config.min_matched} "
            f"and {config.min_unmatched} are needed). Calibrate on more annotated images (`spinequant "
            f"train` holds out a fifth of its images, or the last fifth of the rows of a single one).")
    params = fit_platt(scores, hits)
    best, f1 = _best_minimum(confidence(scores, params), hits, n_true)
    head_map = {**params, "min_confidence": best, "f1_at_min_confidence": round(f1, 4),
                "fitted_on": f"{len(scores)} candidate spines (head-map peaks >= {config.floor}) on "
                             f"{len(annotated)} held-out annotated image(s), matched within "
                             f"{config.match_um} µm"}
    held_out = {"images": len(annotated), "annotated_heads": n_true, "candidates": int(len(scores)),
                "matched": n_hit, "head_map_f1": round(f1, 4)}
    ece = _cross_fitted_ece(per_sample)
    if ece is not None:
        head_map["ece_cross_fitted"] = held_out["head_map_ece_cross_fitted"] = round(ece, 4)
    calibration = {**head_map, "held_out": held_out}
    card = read_card(model)
    if (card.calibration or {}).get("method") == "trees":
        # Its probabilities were calibrated for the network it was fitted to: a Platt fit on them
        # makes them probabilities again for this one (and leaves their order, so F1, as it is).
        learnt = candidate_scores(model, annotated, config=config, learnt=True)
        probs, learnt_hits, _ = _pooled(learnt)
        refit = fit_platt(probs, learnt_hits)
        learnt_best, learnt_f1 = _best_minimum(confidence(probs, refit), learnt_hits, n_true)
        held_out.update(learnt_f1=round(learnt_f1, 4), learnt_min_confidence=learnt_best,
                        learnt_ece_before_refit=round(expected_calibration_error(probs, learnt_hits)[0], 4),
                        learnt_candidates=int(len(probs)))
        learnt_ece = _cross_fitted_ece(learnt)
        if learnt_ece is not None:
            held_out["learnt_ece_cross_fitted"] = round(learnt_ece, 4)
        if learnt_f1 >= f1:
            calibration = {**card.calibration, "min_confidence": learnt_best, "recalibration": refit,
                           "head_map": head_map, "held_out": held_out}
    if write:
        update_card(model, calibration=calibration)
    return calibration


def _pooled(per_sample):
    scores = np.concatenate([p[0] for p in per_sample]) if per_sample else np.zeros(0)
    hits = np.concatenate([p[1] for p in per_sample]) if per_sample else np.zeros(0, bool)
    return scores, hits, int(sum(p[2] for p in per_sample))


def _best_minimum(probabilities, hits, n_true) -> tuple[float, float]:
    """The minimum confidence of :data:`GRID` with the highest detection F1, and that F1."""
    f1 = np.array([2 * hits[probabilities >= g].sum() / ((probabilities >= g).sum() + n_true) for g in GRID])
    k = int(np.argmax(f1))
    return float(GRID[k]), float(f1[k])


def _cross_fitted_ece(per_sample) -> float | None:
    """ECE of Platt fits made on alternate halves of the samples, each scored on the other."""
    from ..segment.neural.calibration import confidence, expected_calibration_error, fit_platt

    folds = [np.arange(len(per_sample)) % 2 == k for k in (0, 1)]
    probs, labels = [], []
    for k in (0, 1):
        fit = [p for p, f in zip(per_sample, folds[1 - k]) if f]
        test = [p for p, f in zip(per_sample, folds[k]) if f]
        s_fit = np.concatenate([p[0] for p in fit]) if fit else np.zeros(0)
        h_fit = np.concatenate([p[1] for p in fit]) if fit else np.zeros(0, bool)
        if not test or h_fit.size == 0 or h_fit.all() or not h_fit.any():
            return None
        params = fit_platt(s_fit, h_fit)
        probs.append(confidence(np.concatenate([p[0] for p in test]), params))
        labels.append(np.concatenate([p[1] for p in test]))
    return expected_calibration_error(np.concatenate(probs), np.concatenate(labels))[0]
