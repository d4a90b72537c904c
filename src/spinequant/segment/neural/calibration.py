"""Detection confidence: a network's head-map peak turned into the probability that a human
would mark the spine.

A peak value is a score, not a probability: how often a peak of 0.4 is a real spine depends
on the network and its training. Platt scaling -- a logistic function of the logit of the
score, fitted on validation detections labelled "matched an annotated spine" or not -- turns
it into one; it is monotone, so a minimum confidence is a head-map threshold
(:func:`score_for`). The fitted parameters live in the model card (``calibration``).

>>> params = {"a": 1.0, "b": 0.0}
>>> round(float(confidence([0.5], params)[0]), 3), round(score_for(0.5, params), 3)
(0.5, 0.5)
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

_EPS = 1e-4


def _logit(p):
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def fit_platt(scores, hits) -> dict:
    """Parameters ``a``, ``b`` of P(hit) = sigmoid(a * logit(score) + b), by maximum
    likelihood."""
    x, y = _logit(scores), np.asarray(hits, float)
    if x.size == 0 or y.min() == y.max():
        raise ValueError("calibration needs detections that matched and detections that did not")

    def nll(params):
        z = params[0] * x + params[1]
        return float(np.sum(np.logaddexp(0, z) - y * z))

    res = minimize(nll, x0=np.array([1.0, 0.0]), method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-8, "maxiter": 4000})
    return {"method": "platt", "a": float(res.x[0]), "b": float(res.x[1])}


def confidence(scores, params: dict | None) -> np.ndarray:
    """Calibrated probability for each score (the raw score when ``params`` is None)."""
    scores = np.asarray(scores, float)
    if not params:
        return scores
    z = params["a"] * _logit(scores) + params["b"]
    return 1.0 / (1.0 + np.exp(-z))


def score_for(min_confidence: float, params: dict | None) -> float:
    """The score at which the calibrated confidence reaches ``min_confidence``."""
    if not params:
        return float(min_confidence)
    z = float(_logit(min_confidence))
    return float(1.0 / (1.0 + np.exp(-(z - params["b"]) / params["a"])))


def expected_calibration_error(probabilities, hits, *, bins: int = 10) -> tuple[float, "np.ndarray"]:
    """ECE over equal-width probability bins, and the reliability table
    (bin centre, mean predicted, observed fraction, count) per non-empty bin.

    >>> ece, table = expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0])
    >>> round(ece, 3)
    0.1
    """
    p, y = np.asarray(probabilities, float), np.asarray(hits, float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for k in range(bins):
        sel = which == k
        if sel.any():
            rows.append(((k + 0.5) / bins, p[sel].mean(), y[sel].mean(), int(sel.sum())))
            ece += sel.sum() / len(p) * abs(p[sel].mean() - y[sel].mean())
    return float(ece), np.array(rows)
