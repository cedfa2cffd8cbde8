"""Training options as one frozen dataclass, separate from the CLI.

A JSON config file may fill the defaults; command-line flags override it. The effective
configuration is saved beside the trained model as ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

HEAD_LAYERS = tuple(f"mixed{i}" for i in range(11))
"""InceptionV3 blocks the classification head may sit on."""

CLASS_WEIGHT_MODES = ("none", "sqrt", "balanced")
LOSSES = ("crossentropy", "sord")
"""``sord``: soft ordinal labels (Díaz & Marathe, CVPR 2019) for KL grades; neighbours of the true
grade get target mass ``∝ exp(-sord_alpha · Δgrade²)``."""
PRECISIONS = ("auto", "float32", "bfloat16")
"""``auto`` picks ``bfloat16`` (Keras ``mixed_bfloat16``; the output layers stay float32) on a
CPU with AMX (``amx_bf16`` in ``/proc/cpuinfo``), where it was measured 1.4–2× faster per step,
and ``float32`` elsewhere; see :func:`train.precision.resolve_precision`."""
INTENSITIES = ("stored", "percentile")
"""The preprocessing intensity contract the model is trained with (see
:func:`edge_infer.preprocess.standardize_intensity`)."""
SELECT_METRICS = ("quadratic_weighted_kappa", "accuracy", "balanced_accuracy", "screening_auc")
"""Validation figures that can pick the best checkpoint (higher is better)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run.

    Attributes:
        train_dir: Folder with one sub-folder per class (``0``..``4`` for KL grades).
        val_dir: Validation folder with the same class sub-folders; selects the checkpoint.
        out_dir: Run directory (keep it outside the repository): checkpoints, logs, model.
        weights: ``"imagenet"``, ``"none"`` (from scratch) or the path of a weights file for
            the InceptionV3 backbone without its top.
        input_size: Square input side; InceptionV3 needs at least 75.
        head_layer: InceptionV3 block whose feature map the head pools (and Grad-CAM reads).
        hidden_units: Width of an optional Dense+ReLU layer in the head; 0 for none.
        dropout: Dropout rate before the output layer.
        epochs: Number of epochs (the cosine learning-rate schedule spans them all).
        batch_size: Images per step.
        learning_rate: Peak Adam learning rate.
        label_smoothing: Cross-entropy label smoothing.
        loss: ``crossentropy`` (one-hot targets) or ``sord`` (soft ordinal targets; KL grades only).
        sord_alpha: Sharpness of the SORD targets (larger is closer to one-hot).
        init_from: A trained ``.keras`` model of the same architecture to start from (any input
            size): progressive resizing, e.g. fine-tuning a 75 px model at 128 px.
        jit_compile: Compile the training step with XLA (about 10% faster on this CPU).
        precision: ``auto``, ``float32`` or ``bfloat16`` (mixed precision); ``auto`` is resolved
            when training starts and the resolved value is recorded in ``config.json``.
        intensity: ``percentile`` (stretch each image's 0.5–99.5 percentile range; the v2
            contract) or ``stored`` (grey levels as decoded, as v1 models were trained).
        class_weight: ``none``, ``sqrt`` (inverse square-root frequency) or ``balanced``.
        rotation_deg, zoom, shift, flip: Augmentation strength.
        select_metric: Validation figure that picks the best checkpoint.
        steps_per_epoch: Cap on steps per epoch (smoke tests); ``None`` for full epochs.
        seed: Seed for shuffling, augmentation and initialisation.
    """

    train_dir: str
    val_dir: str
    out_dir: str
    weights: str = "none"
    input_size: int = 75
    head_layer: str = "mixed5"
    hidden_units: int = 0
    dropout: float = 0.3
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    label_smoothing: float = 0.0
    loss: str = "crossentropy"
    sord_alpha: float = 2.0
    init_from: str | None = None
    jit_compile: bool = False
    precision: str = "auto"
    intensity: str = "percentile"
    class_weight: str = "sqrt"
    rotation_deg: float = 10.0
    zoom: float = 0.15
    shift: float = 0.08
    flip: bool = True
    select_metric: str = "quadratic_weighted_kappa"
    steps_per_epoch: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.input_size < 75:
            raise ValueError(f"input_size must be at least 75 for InceptionV3, got {self.input_size}")
        if self.head_layer not in HEAD_LAYERS:
            raise ValueError(f"head_layer must be one of {', '.join(HEAD_LAYERS)}, got {self.head_layer!r}")
        if self.class_weight not in CLASS_WEIGHT_MODES:
            raise ValueError(f"class_weight must be one of {CLASS_WEIGHT_MODES}, got {self.class_weight!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.sord_alpha <= 0:
            raise ValueError(f"sord_alpha must be positive, got {self.sord_alpha}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.intensity not in INTENSITIES:
            raise ValueError(f"intensity must be one of {INTENSITIES}, got {self.intensity!r}")
        if self.select_metric not in SELECT_METRICS:
            raise ValueError(f"select_metric must be one of {SELECT_METRICS}, got {self.select_metric!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_sources(cls, config_file: str | Path | None = None, **overrides) -> TrainConfig:
        """Build a config from an optional JSON file, then flags that are not ``None``."""
        base: dict = {}
        if config_file:
            base = json.loads(Path(config_file).read_text())
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(base) - known)
            if unknown:
                raise ValueError(f"{config_file}: unknown config keys {unknown}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


_CLI_SKIP = {"train_dir", "val_dir", "out_dir"}


def training_command(cfg: dict) -> str:
    """The ``kneeoa train`` command line that reproduces a run (options that differ from defaults)."""
    defaults = TrainConfig(train_dir="", val_dir="", out_dir="").to_dict()
    flags = {"jit_compile": "--jit"}
    parts = ["kneeoa train", cfg["train_dir"], "--val", cfg["val_dir"], "--out", f"runs/{Path(cfg['out_dir']).name}"]
    for key, value in cfg.items():
        if key in _CLI_SKIP or value == defaults.get(key):
            continue
        flag = flags.get(key, "--" + key.replace("_", "-"))
        if key == "init_from" and (Path(value).parent / "config.json").is_file():
            value = f"runs/{Path(value).parent.name}/{Path(value).name}"  # a run directory: named as runs/<run>/<file>
        if isinstance(value, bool):
            parts.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            parts += [flag, str(value)]
    return " ".join(parts)
