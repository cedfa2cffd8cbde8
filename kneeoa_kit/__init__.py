"""Portable offline screening kits: the runtime wheel, every dependency as wheels for each target
platform and Python, the model, checksums and the scripts a clinic runs. Knows wheels and files,
not TensorFlow."""
