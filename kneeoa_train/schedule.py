"""The learning-rate schedule of a training run."""

from __future__ import annotations

from .config import TrainConfig


def learning_rate_schedule(cfg: TrainConfig, steps: int):
    """Cosine decay from ``learning_rate`` over the epochs before the averaged ones (all of them
    without SWA); with SWA it ends at, and then holds, the constant rate of the averaged epochs."""
    import keras

    decayed = cfg.epochs - cfg.swa_epochs
    if not cfg.swa_epochs:
        return keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=max(steps * cfg.epochs, 1))
    if not decayed:
        return cfg.constant_learning_rate
    return keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, decay_steps=steps * decayed, alpha=cfg.constant_learning_rate / cfg.learning_rate
    )
