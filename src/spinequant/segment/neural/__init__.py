"""Neural segmentation: dendrite and spine probability maps from PyTorch networks.

>>> from spinequant.segment.neural import predict
>>> dendrite_prob, spine_prob = predict(image, spacing=(0.5, 0.094, 0.094))   # doctest: +SKIP

Models are safetensors weights plus a JSON model card (:mod:`.card`); ``train`` trains or
fine-tunes one on annotated stacks. See docs/neural.md.
"""

from __future__ import annotations

import sys
import types

from ..._lazy import lazy_getattr

# Loaded on first use: a run through ONNX Runtime never needs PyTorch (about 190 MB resident
# once imported), so importing this package must not import it.
_LAZY = {
    "predict": ".predict", "train": ".train", "TrainConfig": ".train",
    "TrainingSample": ".data", "load_training_data": ".data",
    "ModelCard": ".card", "load_model": ".card", "save_model": ".card", "available_models": ".card",
    "build": ".architectures", "PRESETS": ".specs", "keep_freed_memory": "._malloc",
}

__all__ = ["predict", "train", "TrainConfig", "TrainingSample", "load_training_data",
           "ModelCard", "load_model", "save_model", "available_models", "build", "PRESETS",
           "keep_freed_memory"]


__getattr__ = lazy_getattr(__name__, _LAZY)


class _Package(types.ModuleType):
    """``predict`` and ``train`` are functions named like the modules that hold them: the
    import system sets a submodule as its package's attribute once it is loaded, which would
    hide the function; here the package keeps the function."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and name in ("predict", "train"):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
