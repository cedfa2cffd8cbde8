"""The trained Keras model as conversion sees it: loaded with its training config, and rebuilt
as the two-output graph (probabilities + the feature map the head pools) that every format ships."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kneeoa_train.config import CONFIG_FILE
from kneeoa_train.model import GAP_LAYER, INPUT_NAME, head_weights

from .errors import ConvertError

PROBS_OUTPUT = "probabilities"
FEATURES_OUTPUT = "features"


@dataclass
class SourceModel:
    """A trained model plus what conversion needs to know about it."""

    path: Path
    model: object  # keras.Model (probabilities only)
    export: object  # keras.Model with outputs [probabilities, features]
    config: dict
    feature_layer: str

    @property
    def input_size(self) -> int:
        return int(self.config["preprocess"]["size"])

    def head(self):
        return head_weights(self.model)


def load_source(model_path: str | Path) -> SourceModel:
    """Load ``model.keras`` and the ``config.json`` that ``kneeoa train`` wrote beside it.

    Raises:
        ConvertError: when the config is missing, or the model has no ``gap`` layer (not a model
            ``kneeoa train`` built).
    """
    import keras

    path = Path(model_path)
    config_path = path.with_name(CONFIG_FILE)
    if not config_path.is_file():
        raise ConvertError(f"{config_path}: training config not found beside {path.name} (written by `kneeoa train`)")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as e:
        raise ConvertError(f"{config_path}: unreadable training config ({e})") from None
    try:
        model = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, TypeError) as e:  # not a .keras archive, or a corrupt one
        raise ConvertError(f"{path}: not a readable Keras model ({type(e).__name__}: {e})") from None
    feature_layer = config["train"]["head_layer"]
    _check_head(model, feature_layer, path)
    return SourceModel(path, model, two_output_model(model), config, feature_layer)


def _check_head(model, feature_layer: str, path: Path) -> None:
    """The head must pool exactly the layer the config names: Grad-CAM depends on it."""
    try:
        pooled = model.get_layer(GAP_LAYER).input
        features = model.get_layer(feature_layer).output
    except ValueError as e:
        raise ConvertError(f"{path}: not a model built by `kneeoa train` ({e})") from None
    if pooled is not features:
        raise ConvertError(f"{path}: the {GAP_LAYER!r} layer does not pool {feature_layer!r} as config.json says")


def two_output_model(model):
    """The same graph with two named outputs: ``probabilities`` and ``features``."""
    import keras

    features = model.get_layer(GAP_LAYER).input
    probs = keras.layers.Identity(name=PROBS_OUTPUT)(model.output)
    feats = keras.layers.Identity(name=FEATURES_OUTPUT)(features)
    return keras.Model(model.input, [probs, feats], name=f"{model.name}_edge")


def input_signature(size: int):
    import tensorflow as tf

    return [tf.TensorSpec((None, size, size, 3), tf.float32, name=INPUT_NAME)]


def model_gflop(model) -> float:
    """Floating-point operations (2 × multiply-adds) of one image through the convolutions and
    dense layers, the arithmetic a runtime cannot avoid; batch norm, pooling and activations are
    left out (a few percent)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            total += 2 * h * w * kh * kw * c_in * c_out
        elif kind == "Dense":
            total += 2 * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return total / 1e9
