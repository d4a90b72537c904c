"""A gradient-boosted tree ensemble (binary classifier) stored as plain arrays and evaluated
with numpy: the spine-confidence model of a point-head network (see
:mod:`spinequant.pipeline.spine_confidence`).

The trees are fitted with scikit-learn at training time (``scripts/train_spine_confidence.py``)
and saved as safetensors arrays: nothing is unpickled when they are loaded, and scikit-learn
is not needed to use them. Node ``i`` of the flat arrays sends a sample to ``left[i]`` when its
feature ``feature[i]`` is at most ``threshold[i]`` (or is NaN and ``missing_left[i]``), else to
``right[i]``; a leaf adds ``value[i]`` to the log-odds. Child indices are relative to the
tree's first node (``roots``).

>>> import numpy as np
>>> stump = TreeEnsemble(features=("x",), baseline=0.0, roots=np.array([0]),
...     feature=np.array([0, 0, 0]), threshold=np.array([0.5, 0, 0]), left=np.array([1, 0, 0]),
...     right=np.array([2, 0, 0]), missing_left=np.array([1, 0, 0], bool),
...     is_leaf=np.array([0, 1, 1], bool), value=np.array([0.0, -2.0, 2.0]))
>>> np.round(stump.predict_proba(np.array([[0.2], [0.9], [np.nan]])), 3).tolist()
[0.119, 0.881, 0.119]
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

_ARRAYS = ("roots", "feature", "threshold", "left", "right", "missing_left", "is_leaf", "value")
#: Below this many samples all trees are walked at once (an image's few hundred candidates:
#: 6x faster); above, tree by tree (a wavefront over samples x trees gets slower). Same leaves.
_ALL_TREES_AT_ONCE = 256


@dataclasses.dataclass(frozen=True)
class TreeEnsemble:
    features: tuple[str, ...]      # column names, in the order of the trees' feature indices
    baseline: float                # log-odds before the first tree
    roots: np.ndarray              # (T,) first node of each tree in the flat arrays
    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray

    def decision(self, x: np.ndarray) -> np.ndarray:
        """Log-odds for each row of ``x`` (N, len(features))."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, len(self.features))
        leaves = self._leaves_by_tree(x) if len(x) >= _ALL_TREES_AT_ONCE else self._leaves_all_trees(x)
        out = np.full(len(x), self.baseline, dtype=np.float64)
        for t in range(leaves.shape[1]):       # tree by tree: the sum in a fixed order
            out += leaves[:, t]
        return out

    def _leaves_all_trees(self, x: np.ndarray) -> np.ndarray:
        """(N, T) leaf values, every (sample, tree) pair walking down at once."""
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        root = node.copy()
        sample = np.broadcast_to(np.arange(len(x))[:, None], node.shape)
        active = ~self.is_leaf[node]
        while active.any():
            n = node[active]
            v = x[sample[active], self.feature[n]]
            go_left = np.where(np.isnan(v), self.missing_left[n], v <= self.threshold[n])
            node[active] = root[active] + np.where(go_left, self.left[n], self.right[n])
            active = ~self.is_leaf[node]
        return self.value[node]

    def _leaves_by_tree(self, x: np.ndarray) -> np.ndarray:
        """(N, T) leaf values, one tree at a time (faster for many samples)."""
        rows = np.arange(len(x))
        leaves = np.empty((len(x), len(self.roots)), dtype=np.float64)
        for t, root in enumerate(self.roots):
            node = np.full(len(x), root, dtype=np.int64)
            active = ~self.is_leaf[node]
            while active.any():
                n = node[active]
                v = x[rows[active], self.feature[n]]
                go_left = np.where(np.isnan(v), self.missing_left[n], v <= self.threshold[n])
                node[active] = root + np.where(go_left, self.left[n], self.right[n])
                active = ~self.is_leaf[node]
            leaves[:, t] = self.value[node]
        return leaves

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(class 1) for each row of ``x``."""
        return 1.0 / (1.0 + np.exp(-self.decision(x)))

    def save(self, path: str | os.PathLike) -> None:
        from safetensors.numpy import save_file

        arrays = {k: np.ascontiguousarray(getattr(self, k)) for k in _ARRAYS}
        arrays["missing_left"] = arrays["missing_left"].astype(np.uint8)
        arrays["is_leaf"] = arrays["is_leaf"].astype(np.uint8)
        save_file(arrays, str(path), metadata={"features": json.dumps(list(self.features)),
                                               "baseline": repr(float(self.baseline))})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TreeEnsemble":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata()
            arrays = {k: f.get_tensor(k) for k in _ARRAYS}
        arrays["missing_left"] = arrays["missing_left"].astype(bool)
        arrays["is_leaf"] = arrays["is_leaf"].astype(bool)
        return cls(features=tuple(json.loads(meta["features"])), baseline=float(meta["baseline"]), **arrays)
