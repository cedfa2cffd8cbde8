"""The numpy Grad-CAM is exact: it matches tf.GradientTape Grad-CAM on Keras models."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from edge_infer.gradcam import cam_to_image, gradcam_from_features
from edge_infer.preprocess import SquarePadding, pad_to_square


def _tape_gradcam(model, feature_layer: str, x: np.ndarray, class_index: int) -> np.ndarray:
    """Reference Grad-CAM: gradient of the class logit w.r.t. the feature map, by autodiff."""
    import keras
    import tensorflow as tf

    probe = keras.Model(model.input, [model.get_layer(feature_layer).output, model.get_layer("logits").output])
    with tf.GradientTape() as tape:
        feats, logits = probe(x, training=False)
        score = logits[:, class_index]
    grads = tape.gradient(score, feats)[0].numpy()
    alpha = grads.mean(axis=(0, 1))
    cam = np.maximum((feats[0].numpy() * alpha).sum(-1), 0)
    return (cam - cam.min()) / (cam.max() - cam.min()) if cam.max() > cam.min() else np.zeros_like(cam)


def _small_model(hidden: int):
    import keras

    inp = keras.Input((40, 40, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu", name="feat")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if hidden:
        x = keras.layers.Dense(hidden, activation="relu", name="hidden")(x)
    logits = keras.layers.Dense(5, name="logits")(x)
    return keras.Model(inp, keras.layers.Activation("softmax", name="probs")(logits))


@pytest.mark.parametrize("hidden", [0, 12])
def test_numpy_gradcam_matches_gradient_tape(hidden):
    import keras

    from kneeoa_train.model import head_weights

    model = _small_model(hidden)
    head = head_weights(model)
    rng = np.random.default_rng(hidden)
    for c in range(5):
        x = rng.uniform(-1, 1, (1, 40, 40, 3)).astype(np.float32)
        f = keras.Model(model.input, model.get_layer("feat").output)(x).numpy()
        ours = gradcam_from_features(f, head, c)
        ref = _tape_gradcam(model, "feat", x, c)
        if ref.max() == 0:
            assert ours.max() == 0
            continue
        r = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
        assert r >= 0.999
        np.testing.assert_allclose(ours, ref, atol=1e-4)


@pytest.mark.slow
def test_numpy_gradcam_matches_gradient_tape_on_trained_inception(trained_run, knee_array):
    import keras

    from edge_infer.preprocess import PreprocessSpec, prepare_gray, to_model_input
    from kneeoa_train.model import head_weights

    model = keras.saving.load_model(trained_run, compile=False)
    layer = "mixed5"  # the trained_run fixture's head layer
    assert model.get_layer("gap").input is model.get_layer(layer).output
    small, _ = prepare_gray(knee_array, 75)
    x = to_model_input(small, PreprocessSpec(75))
    feats = keras.Model(model.input, model.get_layer(layer).output)(x).numpy()
    for c in range(5):
        ref = _tape_gradcam(model, layer, x, c)
        ours = gradcam_from_features(feats, head_weights(model), c)
        if ref.max() > 0:
            assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] >= 0.999


def test_cam_maps_back_to_the_unpadded_image():
    img = np.zeros((60, 120), np.uint8)
    _, pad = pad_to_square(img)
    cam = np.zeros((4, 4), np.float32)
    cam[1:3, :] = 1.0  # rows 1-2 of the square are where the image sits (rows 30..90 of 120)
    full = cam_to_image(cam, pad)
    assert full.shape == (60, 120)
    assert full.min() >= 0.0 and full.max() <= 1.0
    assert full.mean() > 0.8


@pytest.mark.parametrize(
    "grid, size", [((6, 6), (224, 224)), ((3, 3), (75, 75)), ((6, 6), (120, 300)), ((8, 8), (1200, 700))]
)
def test_cam_upsampling_matches_pillow_bilinear(grid, size):
    h, w = size
    side = max(h, w)
    pad = SquarePadding(height=h, width=w, top=(side - h) // 2, left=(side - w) // 2)
    cam = np.random.default_rng(1).random(grid).astype(np.float32)
    square = Image.fromarray(cam, mode="F").resize((side, side), Image.Resampling.BILINEAR)
    expected = np.asarray(square)[pad.top : pad.top + h, pad.left : pad.left + w]
    np.testing.assert_allclose(cam_to_image(cam, pad), expected, atol=1e-5)
