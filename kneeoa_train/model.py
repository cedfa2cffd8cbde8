"""The InceptionV3 transfer-learning model and the layer names the rest of the pipeline relies on.

Head: feature map of an InceptionV3 block → global average pooling (``gap``) → optional
Dense+ReLU (``hidden``) → dropout → Dense (``logits``) → softmax (``probs``). Because the head
starts with global average pooling, Grad-CAM is exact from the feature map and the head's weights
alone (see :mod:`edge_infer.gradcam`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import TrainSetupError

GAP_LAYER = "gap"
HIDDEN_LAYER = "hidden"
LOGITS_LAYER = "logits"
PROBS_LAYER = "probs"
INPUT_NAME = "input"
NO_WEIGHTS = ("none", "None", "", None)
"""Values of ``--weights`` that mean training from scratch."""


def resolve_weights(weights: str) -> str | None:
    """Translate the ``--weights`` option for ``keras.applications``.

    Raises:
        TrainSetupError: when a weights path is given and does not exist.
    """
    if weights in NO_WEIGHTS:
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise TrainSetupError(f"{path}: weights file not found (use 'imagenet', 'none' or a file path)")
    return str(path)


def build_model(
    n_classes: int,
    input_size: int,
    head_layer: str = "mixed5",
    weights: str = "none",
    hidden_units: int = 0,
    dropout: float = 0.3,
):
    """Build the classifier; the backbone is cut at ``head_layer``.

    Args:
        n_classes: Output classes.
        input_size: Square input side (≥ 75).
        head_layer: InceptionV3 block name (``mixed0``..``mixed10``).
        weights: ``imagenet``, ``none`` or a path to backbone weights (Keras InceptionV3 without top).
        hidden_units: Optional Dense+ReLU width in the head (0: none).
        dropout: Dropout before the output layer.

    Returns:
        A ``keras.Model`` from ``input`` (float32, NHWC, 3 channels) to softmax probabilities.
    """
    import keras

    inputs = keras.Input((input_size, input_size, 3), name=INPUT_NAME)
    base = keras.applications.InceptionV3(include_top=False, weights=resolve_weights(weights), input_tensor=inputs)
    x = keras.layers.GlobalAveragePooling2D(name=GAP_LAYER)(base.get_layer(head_layer).output)
    if hidden_units:
        x = keras.layers.Dense(hidden_units, activation="relu", name=HIDDEN_LAYER)(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(n_classes, name=LOGITS_LAYER, dtype="float32")(x)  # float32 under mixed precision
    probs = keras.layers.Activation("softmax", name=PROBS_LAYER, dtype="float32")(logits)
    return keras.Model(inputs, probs, name=f"inceptionv3_{head_layer}_{input_size}")


def head_weights(model) -> dict[str, np.ndarray]:
    """The head's dense weights for numpy Grad-CAM (``w_hidden``/``b_hidden`` only when present)."""
    names = {layer.name for layer in model.layers}
    out = {}
    if HIDDEN_LAYER in names:
        w, b = model.get_layer(HIDDEN_LAYER).get_weights()
        out.update(w_hidden=w.astype(np.float32), b_hidden=b.astype(np.float32))
    w, b = model.get_layer(LOGITS_LAYER).get_weights()
    out.update(w_logits=w.astype(np.float32), b_logits=b.astype(np.float32))
    return out
