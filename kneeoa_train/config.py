"""Training options as one frozen dataclass, separate from the CLI.

A JSON config file may fill the defaults; command-line flags override it. The effective
configuration is saved beside the trained model as ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from edge_infer.errors import ConfigError

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
"""What ``kneeoa train`` writes in its run directory: the best checkpoint and its configuration."""

HEAD_LAYERS = tuple(f"mixed{i}" for i in range(11))
"""InceptionV3 blocks the classification head may sit on."""

CLASS_WEIGHT_MODES = ("none", "sqrt", "balanced")
LOSSES = ("crossentropy", "sord")
"""``sord``: soft ordinal labels (Díaz & Marathe, CVPR 2019) for KL grades; neighbours of the true
grade get target mass ``∝ exp(-sord_alpha · Δgrade²)``."""
PRECISIONS = ("auto", "float32", "bfloat16")
"""``auto`` picks ``bfloat16`` (Keras ``mixed_bfloat16``; the output layers stay float32) on a
CPU with AMX (``amx_bf16`` in ``/proc/cpuinfo``), where it was measured 1.4–2× faster per step,
and ``float32`` elsewhere; see :func:`kneeoa_train.precision.resolve_precision`."""
INTENSITIES = ("stored", "percentile")
"""The preprocessing intensity contract the model is trained with (see
:func:`edge_infer.preprocess.standardize_intensity`)."""
STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
"""See :mod:`kneeoa_train.strategy`."""
SELECT_METRICS = ("quadratic_weighted_kappa", "accuracy", "balanced_accuracy", "screening_auc")
"""Validation figures that can pick the best checkpoint (higher is better)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run.

    Attributes:
        train_dir: Folder with one sub-folder per class (``0``..``4`` for KL grades), or a shard
            folder from ``kneeoa prepare`` (its ``train`` split, streamed).
        val_dir: Validation folder with the same class sub-folders, or a shard folder (its ``val``
            split); selects the checkpoint.
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
        strategy: ``auto``, ``one``, ``mirrored`` or ``multi-worker`` (see
            :mod:`kneeoa_train.strategy`); the effective one is recorded in ``config.json``.
        shuffle_buffer: Records in the shuffle buffer when streaming shards.
        backup_steps: Save the resume state every this many steps (``None``: each epoch), so a
            run killed mid-epoch loses at most that many steps.
        swa_epochs: Average the weights of the last this many epochs (:mod:`kneeoa_train.swa`);
            0 for none. The cosine schedule then spans the epochs before them.
        swa_learning_rate: Constant learning rate of the averaged epochs (``None``: half of
            ``learning_rate``).
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
    strategy: str = "auto"
    shuffle_buffer: int = 2048
    backup_steps: int | None = None
    swa_epochs: int = 0
    swa_learning_rate: float | None = None

    def __post_init__(self) -> None:
        if self.input_size < 75:
            raise ConfigError(f"input_size must be at least 75 for InceptionV3, got {self.input_size}")
        if self.head_layer not in HEAD_LAYERS:
            raise ConfigError(f"head_layer must be one of {', '.join(HEAD_LAYERS)}, got {self.head_layer!r}")
        if self.class_weight not in CLASS_WEIGHT_MODES:
            raise ConfigError(f"class_weight must be one of {CLASS_WEIGHT_MODES}, got {self.class_weight!r}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.sord_alpha <= 0:
            raise ConfigError(f"sord_alpha must be positive, got {self.sord_alpha}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.intensity not in INTENSITIES:
            raise ConfigError(f"intensity must be one of {INTENSITIES}, got {self.intensity!r}")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(f"select_metric must be one of {SELECT_METRICS}, got {self.select_metric!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.shuffle_buffer < 1 or (self.backup_steps is not None and self.backup_steps < 1):
            raise ConfigError(
                f"shuffle_buffer and backup_steps must be at least 1, got {self.shuffle_buffer} and {self.backup_steps}"
            )
        if not 0 <= self.swa_epochs <= self.epochs:
            raise ConfigError(f"swa_epochs must be between 0 and epochs ({self.epochs}), got {self.swa_epochs}")
        if self.swa_learning_rate is not None and not self.swa_epochs:
            raise ConfigError("swa_learning_rate is the rate of the averaged epochs: give swa_epochs too")
        if self.swa_learning_rate is not None and not 0 < self.swa_learning_rate <= self.learning_rate:
            raise ConfigError(
                f"swa_learning_rate must be positive and at most learning_rate ({self.learning_rate}), "
                f"got {self.swa_learning_rate}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def constant_learning_rate(self) -> float:
        """The learning rate of the averaged epochs (when ``swa_epochs`` > 0)."""
        return self.swa_learning_rate if self.swa_learning_rate is not None else self.learning_rate / 2

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_sources(cls, config_file: str | Path | None = None, **overrides) -> TrainConfig:
        """Build a config from an optional JSON file, then flags that are not ``None``."""
        base: dict = {}
        if config_file:
            base = _read_config_file(Path(config_file))
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(base) - known)
            if unknown:
                raise ConfigError(f"{config_file}: unknown config keys {unknown}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**base)
        except ConfigError as e:
            raise ConfigError(
                f"{config_file}: {e}" if config_file and _from_file(e, base, overrides) else str(e)
            ) from None
        except TypeError as e:  # a value of the wrong type, e.g. "epochs": "ten"
            raise ConfigError(f"{config_file or 'config'}: {e}") from None


def _read_config_file(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a JSON object of options, got {type(data).__name__}")
    return data


def _from_file(error: ConfigError, base: dict, overrides: dict) -> bool:
    """Whether the invalid value came from the config file (not overridden by a flag)."""
    flagged = {k for k, v in overrides.items() if v is not None}
    return any(key in str(error) for key in set(base) - flagged)


_CLI_SKIP = {"train_dir", "val_dir", "out_dir"}


LEGACY_VALUES = {
    "precision": "float32",
    "intensity": "stored",
    "strategy": "one",
    "shuffle_buffer": 2048,
    "backup_steps": None,
    "swa_epochs": 0,
    "swa_learning_rate": None,
}
"""What runs recorded before an option existed trained with: a saved configuration that lacks
the key means this value (not today's default)."""


def with_legacy_values(saved: dict) -> dict:
    """A saved ``train`` configuration with the options it predates filled in as they were then."""
    return {**LEGACY_VALUES, **saved}


def training_command(cfg: dict) -> str:
    """The ``kneeoa train`` command line that reproduces a run (options that differ from defaults)."""
    defaults = TrainConfig(train_dir="", val_dir="", out_dir="").to_dict()
    flags = {"jit_compile": "--jit"}
    cfg = with_legacy_values(cfg)
    parts = ["kneeoa train", cfg["train_dir"], "--val", cfg["val_dir"], "--out", f"runs/{Path(cfg['out_dir']).name}"]
    if cfg["val_dir"] == cfg["train_dir"]:  # a shard folder holds both splits
        del parts[2:4]
    for key, value in cfg.items():
        if key in _CLI_SKIP or value == defaults.get(key):
            continue
        flag = flags.get(key, "--" + key.replace("_", "-"))
        if key == "init_from" and Path(value).is_absolute():
            value = f"runs/{Path(value).parent.name}/{Path(value).name}"  # an earlier run: named as runs/<run>/<file>
        if isinstance(value, bool):
            parts.append(flag if value else flag.replace("--", "--no-", 1))
        else:
            parts += [flag, str(value)]
    return " ".join(parts)
