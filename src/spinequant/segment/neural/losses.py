"""Losses from the papers.

* DeepD3 (Fernholz et al.): soft Dice loss for the dendrite map (eq. 5) plus squared error for
  the spine map (eq. 6; averaged over pixels here so the two terms have comparable scale).
* Vidaurre-Gallart et al. (2022): weighted cross-entropy (eq. 2) with weight
  w = w_class * w_pixel, smoothed log class weights (eq. 4) and distance-decay pixel weights
  (eq. 5 exponential, eq. 6 window), and the generalised Dice loss (eqs. 7-8).
"""

from __future__ import annotations

from collections.abc import Sequence

import edt
import numpy as np
import torch
from torch.nn import functional as F


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1 - 2 sum(p y) / (sum(p^2) + sum(y^2)), over all pixels of the batch (DeepD3 eq. 5)."""
    num = 2.0 * (prob * target).sum()
    den = (prob * prob).sum() + (target * target).sum()
    return 1.0 - (num + eps) / (den + eps)


def deepd3_loss(logits: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
    """Dice (dendrite) + mean squared error (spine) for (N, 2, ...) logits of a dual decoder.

    ``semantic`` holds 0 background, 1 dendrite, 2 spine. Spines count as part of the dendrite
    target only where DeepD3 would: they do not (the two maps are independent).
    """
    prob = torch.sigmoid(logits)
    dend = (semantic == 1).to(prob.dtype)
    spine = (semantic == 2).to(prob.dtype)
    return dice_loss(prob[:, 0], dend) + F.mse_loss(prob[:, 1], spine)


def deepd3_spine_dice_loss(logits: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
    """:func:`deepd3_loss` plus a Dice term for spines: spines cover well under 1 % of the
    pixels, and squared error alone learns them only after long training."""
    prob = torch.sigmoid(logits[:, 1])
    return deepd3_loss(logits, semantic) + dice_loss(prob, (semantic == 2).to(prob.dtype))


def class_weights(semantic: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Smoothed log class weights (Vidaurre-Gallart eq. 4):
    w'_k = max(log(2 #Omega / #k), 1), w_k = w'_k / sum_i w'_i. Absent classes get w' = the
    largest value any present class could have (they are rarest)."""
    counts = np.bincount(np.asarray(semantic).reshape(-1), minlength=n_classes)[:n_classes]
    total = counts.sum()
    with np.errstate(divide="ignore"):
        raw = np.where(counts > 0, np.log(2.0 * total / np.maximum(counts, 1)), np.log(2.0 * total))
    raw = np.maximum(raw, 1.0)
    return (raw / raw.sum()).astype(np.float32)


def pixel_weights(semantic: np.ndarray, spacing: Sequence[float], *, mode: str = "exp",
                  r_decay: float = 0.5, d_max_um: float = 5.0) -> np.ndarray:
    """Distance-decay pixel weights (Vidaurre-Gallart eqs. 5, 6), distance in µm to the
    nearest labelled structure (dendrite or spine):

    * ``"exp"``: (1 - r_decay) ** d
    * ``"window"``: (1 - (d / d_max)^2)^2 for d < d_max, else 0
    """
    fg = np.asarray(semantic) > 0
    if not fg.any():
        return np.ones(fg.shape, np.float32)
    d = edt.edt(~fg, anisotropy=tuple(float(s) for s in spacing)[-fg.ndim:]).astype(np.float32)
    if mode == "exp":
        return np.power(np.float32(1.0 - r_decay), d).astype(np.float32)
    if mode == "window":
        return np.where(d < d_max_um, (1.0 - (d / d_max_um) ** 2) ** 2, 0.0).astype(np.float32)
    raise ValueError(f"unknown pixel weight mode {mode!r}")


def weighted_cross_entropy(logits: torch.Tensor, semantic: torch.Tensor,
                           weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted cross-entropy (eq. 2), divided by the pixel count to keep its scale.

    ``weights`` is the per-pixel map w = w_class * w_pixel (same shape as ``semantic``);
    without it the class weights of eq. 4 are computed on the batch.
    """
    if weights is None:
        wk = torch.from_numpy(class_weights(semantic.cpu().numpy(), logits.shape[1])).to(logits.device)
        weights = wk[semantic.long()]
    ce = F.cross_entropy(logits, semantic.long(), reduction="none")
    return (weights * ce).mean()


def generalised_dice_loss(logits: torch.Tensor, semantic: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Generalised Dice loss (eqs. 7-8): class weights 1 / (sum r_k)^2."""
    prob = torch.softmax(logits, dim=1)
    onehot = F.one_hot(semantic.long(), logits.shape[1]).movedim(-1, 1).to(prob.dtype)
    dims = [0] + list(range(2, prob.ndim))
    ref = onehot.sum(dims)
    wk = 1.0 / (ref * ref).clamp_min(1.0)
    inter = (wk * (onehot * prob).sum(dims)).sum()
    union = (wk * (onehot + prob).sum(dims)).sum()
    return 1.0 - 2.0 * (inter + eps) / (union + eps)


def points_loss(logits: torch.Tensor, target: torch.Tensor, *, head_loss: str = "bce") -> torch.Tensor:
    """Loss of a dual decoder with a point head, on partly annotated data.

    ``target`` is (N, 2, H, W): semantic labels (0, 1, 2; 255 where nobody annotated the
    class) and the head-centre map (a Gaussian per annotated head; NaN where heads were not
    annotated). Dendrite: Dice; spine: squared error plus Dice (:func:`deepd3_spine_dice_loss`);
    head map: binary cross-entropy (or, ``head_loss="focal"``, :func:`head_focal_loss`) plus
    Dice, since heads cover a tiny fraction of the pixels.
    Each term is taken over the pixels whose target is known, so a patch annotated with
    points only teaches the head map and leaves the masks to the samples that have them.
    """
    semantic, heat = target[:, 0], target[:, 1]
    known = (semantic != 255).to(logits.dtype)
    prob = torch.sigmoid(logits)
    dend = (semantic == 1).to(prob.dtype)
    spine = (semantic == 2).to(prob.dtype)
    n_known = known.sum().clamp_min(1.0)
    loss = dice_loss(prob[:, 0] * known, dend) + dice_loss(prob[:, 1] * known, spine)
    loss = loss + ((prob[:, 1] - spine) ** 2 * known).sum() / n_known
    heat_known = torch.isfinite(heat)
    if heat_known.any():
        h_logit, h_true = logits[:, 2][heat_known], heat[heat_known]
        if head_loss == "focal":
            loss = loss + head_focal_loss(logits[:, 2], heat, heat_known)
        else:
            loss = loss + F.binary_cross_entropy_with_logits(h_logit, h_true)
        loss = loss + dice_loss(torch.sigmoid(h_logit), h_true)
    return loss


def points_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """:func:`points_loss` with the head map's cross-entropy replaced by :func:`head_focal_loss`."""
    return points_loss(logits, target, head_loss="focal")


def head_focal_loss(logits: torch.Tensor, heat: torch.Tensor, known: torch.Tensor,
                    alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """Penalty-reduced focal loss of a keypoint heatmap (Law & Deng 2018, CornerNet; Zhou et al.
    2019, "Objects as points"), on the pixels where ``known``.

    A head's pixel is the local maximum of its target Gaussian (3 x 3) above 0.5: the sampled
    target rarely reaches 1 exactly, since heads sit between pixels. There the loss is
    ``-(1 - p)^alpha log p``, elsewhere ``-(1 - y)^beta p^alpha log(1 - p)``, summed and divided by
    the number of heads. Unlike cross-entropy on the Gaussian, it keeps pushing every head's
    own peak towards 1, a weak one beside a strong one included, and forgives values near a
    head (weight ``(1 - y)^beta``).
    """
    y = torch.where(known, heat, torch.zeros_like(heat))
    peak = (y >= 0.5) & (y == F.max_pool2d(y[:, None], 3, stride=1, padding=1)[:, 0]) & known
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos = ((1 - p) ** alpha * log_p)[peak].sum()
    neg = (((1 - y) ** beta) * p ** alpha * log_not_p)[known & ~peak].sum()
    return -(pos + neg) / peak.sum().clamp_min(1)
