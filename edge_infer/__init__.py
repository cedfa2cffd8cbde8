"""Runtime-only knee-OA screening: onnxruntime or LiteRT, numpy, Pillow. Never imports TensorFlow.

>>> from edge_infer import Classifier
>>> result = Classifier().predict("knee.png")
>>> result.kl_grade, result.label, result.oa_probability
"""

from .classifier import Classifier, Prediction, default_model_dir
from .errors import InputImageError, KneeOAError, ManifestError, ModelContractError, RuntimeUnavailableError

__all__ = [
    "Classifier",
    "Prediction",
    "default_model_dir",
    "KneeOAError",
    "InputImageError",
    "ManifestError",
    "ModelContractError",
    "RuntimeUnavailableError",
]
__version__ = "0.1.0"
