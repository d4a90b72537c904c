"""Neural segmentation: dendrite and spine probability maps from PyTorch networks.

>>> from spinequant.segment.neural import predict
>>> dendrite_prob, spine_prob = predict(image, spacing=(0.5, 0.094, 0.094))   # doctest: +SKIP

Models are safetensors weights plus a JSON model card (:mod:`.card`); ``train`` trains or
fine-tunes one on annotated stacks. See docs/neural.md.
"""

from __future__ import annotations

from ._malloc import keep_freed_memory
from .architectures import PRESETS, build
from .card import ModelCard, available_models, load_model, save_model
from .data import TrainingSample, load_training_data
from .predict import predict
from .train import TrainConfig, train

__all__ = ["predict", "train", "TrainConfig", "TrainingSample", "load_training_data",
           "ModelCard", "load_model", "save_model", "available_models", "build", "PRESETS",
           "keep_freed_memory"]
