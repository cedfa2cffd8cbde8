"""Stochastic weight averaging (Izmailov et al., UAI 2018) over the last epochs of a run.

The last ``swa_epochs`` epochs train at a constant learning rate; the weights at the end of each
are averaged (batch-norm statistics included, not re-estimated). When training ends, the average
is validated like any epoch and competes with the per-epoch checkpoints on the selection metric:
``model.keras`` is whichever is best, and ``swa.json`` records the average's figures either way.

The running sum lives in ``swa_state.npz`` in the run directory. Each epoch is added once, by
number, so a resumed run that repeats an epoch does not count it twice; with per-epoch resume
state (the default) the sum is written before that state (the callback runs first), so a killed
run loses no epoch from the average either. An epoch whose weights are not finite (a diverged
run, stopped by ``TerminateOnNaN``) is never added.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from edge_infer.metrics import classification_summary

log = logging.getLogger(__name__)

STATE_FILE = "swa_state.npz"
REPORT_FILE = "swa.json"


def epoch_span(epochs: list[int]) -> str:
    """``1–4`` for consecutive epochs, else ``1, 3, 4``."""
    if epochs and epochs == list(range(epochs[0], epochs[-1] + 1)) and len(epochs) > 1:
        return f"{epochs[0]}–{epochs[-1]}"
    return ", ".join(map(str, epochs))


def chosen_checkpoint(best: dict) -> str:
    """What ``best.json`` / ``metrics.json`` selected: ``epoch 6``, or ``the average of epochs
    1–4 (SWA)``."""
    if best.get("epoch") == "swa":
        return f"the average of epochs {epoch_span(best.get('swa_epochs', []))} (SWA)"
    return f"epoch {best.get('epoch', 'n/a')}"


def average_wins(score: float, best: dict, metric: str) -> bool:
    """Whether the average becomes the checkpoint: it beats the best epoch, or it already is the
    checkpoint (a run resumed after its last epoch, before its resume state was removed)."""
    return best.get("epoch") == "swa" or bool(score > best.get(metric, -np.inf))


def first_averaged_epoch(epochs: int, swa_epochs: int) -> int:
    """1-based number of the first epoch whose weights enter the average."""
    return epochs - swa_epochs + 1


class RunningAverage:
    """A float64 running sum of a model's weights, kept on disk by epoch number."""

    def __init__(self, path: Path):
        self.path = path
        self.sums: list[np.ndarray] | None = None
        self.epochs: list[int] = []
        if path.is_file():
            with np.load(path) as z:
                self.epochs = [int(e) for e in z["epochs"]]
                self.sums = [z[f"w{i}"] for i in range(int(z["n"]))]

    def add(self, epoch: int, weights: list[np.ndarray]) -> bool:
        """Add one epoch's weights; ``False`` (nothing added) if that epoch is already in."""
        if epoch in self.epochs:
            return False
        if not all(np.isfinite(w).all() for w in weights if np.issubdtype(np.asarray(w).dtype, np.floating)):
            log.warning("epoch %d: weights not finite; not added to the average", epoch)
            return False
        if self.sums is None:
            self.sums = [np.asarray(w, np.float64).copy() for w in weights]
        else:
            if len(weights) != len(self.sums):
                raise ValueError(f"{self.path}: {len(weights)} weight arrays, the average holds {len(self.sums)}")
            for s, w in zip(self.sums, weights, strict=True):
                if s.shape != np.shape(w):
                    raise ValueError(f"{self.path}: a weight of shape {np.shape(w)} where the average holds {s.shape}")
                s += np.asarray(w, np.float64)
        self.epochs.append(epoch)
        self._save()
        return True

    def average(self, like: list[np.ndarray]) -> list[np.ndarray]:
        """The mean weights, in the dtypes of ``like`` (the model's own weights)."""
        if not self.epochs:
            raise ValueError(f"{self.path}: no epoch has been averaged")
        n = len(self.epochs)
        return [(s / n).astype(np.asarray(w).dtype) for s, w in zip(self.sums, like, strict=True)]

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        arrays = {f"w{i}": s for i, s in enumerate(self.sums)}
        np.savez(tmp, n=len(self.sums), epochs=np.asarray(self.epochs, np.int64), **arrays)
        os.replace(tmp, self.path)


def weight_averaging(data, out_dir: Path, screening, metric: str, first_epoch: int, save, twin=None):
    """A Keras callback: averages the weights of epochs ``first_epoch``.. and, when training ends,
    validates the average and saves it as the checkpoint if it beats the best epoch on ``metric``
    (``best.json``). ``save`` and ``twin`` as for :func:`kneeoa_train.trainer.validation_checkpoint`."""
    import keras

    from .config import MODEL_FILE

    class WeightAveraging(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.running = RunningAverage(out_dir / STATE_FILE)

        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 >= first_epoch and self.running.add(epoch + 1, self.model.get_weights()):
                log.info("epoch %d: weights added to the average (epochs %s)", epoch + 1, self.running.epochs)

        def on_train_end(self, logs=None):
            if not self.running.epochs:
                return
            model = twin if twin is not None else self.model
            model.set_weights(self.running.average(self.model.get_weights()))
            summary = classification_summary(data.val_labels(), data.predict_val(model), screening)
            best_file = out_dir / "best.json"
            best = json.loads(best_file.read_text()) if best_file.is_file() else {}
            chosen = average_wins(summary[metric], best, metric)
            report = {"epochs": self.running.epochs, "val": summary, "selected": chosen}
            (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
            if chosen:
                save(model, out_dir / MODEL_FILE)
                best_file.write_text(
                    json.dumps(
                        {metric: summary[metric], "epoch": "swa", "swa_epochs": self.running.epochs, "val": summary},
                        indent=2,
                    )
                )
            log.info(
                "average of epochs %s: val accuracy %.3f, kappa %.3f%s",
                self.running.epochs,
                summary["accuracy"],
                summary["quadratic_weighted_kappa"],
                "  (best, saved)" if chosen else f"  ({chosen_checkpoint(best)} stays the checkpoint)",
            )

    return WeightAveraging()
