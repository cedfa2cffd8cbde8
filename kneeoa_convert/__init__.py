"""Keras model → edge formats (ONNX, TFLite), calibrated on real images, verified against Keras,
described in ``manifest.json``. Workstation side; needs the ``train`` extra."""
