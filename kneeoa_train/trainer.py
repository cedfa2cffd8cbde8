"""The training loop: data in memory or streamed from shards (:mod:`kneeoa_train.sources`),
augmentation in ``tf.data``, one device or a ``tf.distribute`` strategy
(:mod:`kneeoa_train.strategy`), best-on-validation checkpoint, resume after interruption
(``BackupAndRestore``), and a log of every epoch.

Files written to ``out_dir``:
``model.keras`` (best on validation), ``config.json`` (effective configuration, classes and
preprocessing), ``epochs.jsonl`` (validation figures per epoch), ``history.csv`` (Keras
loss/accuracy), ``metrics.json`` (the chosen checkpoint's figures), ``backup/`` (resume state,
removed when training completes) and, with ``swa_epochs``, ``swa.json`` and ``swa_state.npz``
(:mod:`kneeoa_train.swa`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from edge_infer.metrics import classification_summary
from edge_infer.screening import Screening

from .config import CONFIG_FILE, MODEL_FILE, TrainConfig, with_legacy_values
from .data import class_weights_from_counts
from .errors import TrainSetupError
from .memory import cap_malloc_arenas
from .model import build_model
from .precision import keras_policy, resolve_precision
from .resume import batches_done
from .schedule import learning_rate_schedule
from .sources import DataSource, open_source
from .strategy import StrategyInfo, backup_dir_name, build_before_fit, check_batch, make_strategy
from .swa import chosen_checkpoint, first_averaged_epoch, weight_averaging

log = logging.getLogger(__name__)

RESUMABLE_CHANGES = {"strategy", "shuffle_buffer", "backup_steps"}
"""Options a run may be resumed with changed: they decide how the same training is carried out
(on more GPUs, after a move to a cluster), not what is trained."""


def target_table(n_classes: int, cfg: TrainConfig, kl_grades: list[int] | None) -> np.ndarray:
    """Row ``i`` is the training target for class ``i``: one-hot, or SORD soft ordinal labels
    ``softmax(-alpha * (grade_k - grade_i)^2)`` over the KL grades.

    Raises:
        TrainSetupError: SORD asked for classes that are not KL grades (no order to respect).
    """
    if cfg.loss == "crossentropy":
        return np.eye(n_classes, dtype=np.float32)
    if kl_grades is None:
        raise TrainSetupError("--loss sord needs ordinal classes: folders named 0..4 (KL grades)")
    g = np.asarray(kl_grades, np.float64)
    logits = -cfg.sord_alpha * (g[None, :] - g[:, None]) ** 2
    table = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (table / table.sum(axis=1, keepdims=True)).astype(np.float32)


def validation_checkpoint(
    data: DataSource, out_dir: Path, screening: Screening | None, metric: str, save=None, twin=None
):
    """A Keras callback: validation figures each epoch, best model saved, best score kept on disk
    (so a resumed run does not overwrite a better checkpoint with a worse one). ``save(model, path)``
    writes the checkpoint (default: ``model.save``). With ``twin`` (a model built outside any
    distribution strategy), the weights are copied into it and it predicts and is saved. A
    distributed model's ``predict`` would, under multi-worker training, wait for the other workers,
    and under Keras 3.15 fails on a last batch smaller than the replica count (one replica gets
    no images)."""
    import keras

    class ValidationCheckpoint(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best_file = out_dir / "best.json"
            best = json.loads(self.best_file.read_text()) if self.best_file.exists() else {}
            self.best = best.get(metric, -np.inf)

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            model = self.model
            if twin is not None:
                twin.set_weights(model.get_weights())
                model = twin
            summary = classification_summary(data.val_labels(), data.predict_val(model), screening)
            record = {
                "epoch": epoch + 1,
                **{k: float(v) for k, v in (logs or {}).items()},
                "val": summary,
                "seconds": round(time.perf_counter() - getattr(self, "started", time.perf_counter()), 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            with open(out_dir / "epochs.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            score = summary[metric]
            improved = bool(not np.isfinite(self.best) or score > self.best)
            if improved:
                self.best = score
                (save or (lambda m, p: m.save(p)))(model, out_dir / MODEL_FILE)
                self.best_file.write_text(json.dumps({metric: score, "epoch": epoch + 1, "val": summary}, indent=2))
            log.info(
                "epoch %d: val accuracy %.3f, kappa %.3f, AUC(OA) %s%s",
                epoch + 1,
                summary["accuracy"],
                summary["quadratic_weighted_kappa"],
                f"{summary['screening_auc']:.3f}" if "screening_auc" in summary else "n/a",
                "  (best, saved)" if improved else "",
            )

    return ValidationCheckpoint()


def train(cfg: TrainConfig) -> Path:
    """Train per ``cfg``; resumes from ``out_dir/backup`` if an earlier run was interrupted.

    Under ``multi-worker`` every worker runs this with the same ``cfg``; only the chief writes the
    run directory's files (each worker keeps its own resume state).

    Returns:
        Path of the best checkpoint (``out_dir/model.keras``).
    """
    cap_malloc_arenas()  # before TensorFlow starts its threads (kneeoa_train.memory)
    import keras

    strategy, info = make_strategy(cfg.strategy)  # first: multi-worker must start before other TF work
    check_batch(cfg.batch_size, info)
    log.info(
        "strategy: %s, %d replica(s) on %d worker(s) (asked: %s)", info.name, info.replicas, info.workers, cfg.strategy
    )
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if info.chief:
        _check_run_dir(out, cfg)
    check_init_from_contract(cfg)
    keras.utils.set_random_seed(cfg.seed)
    data = open_source(cfg)
    try:
        screening = Screening.for_classes(data.classes, data.kl_grades)
    except ValueError as e:
        raise TrainSetupError(f"{cfg.train_dir}: classes {data.classes} give no usable screening group ({e})") from None
    precision = resolve_precision(cfg.precision)
    log.info("precision: %s (asked: %s)", precision, cfg.precision)
    sharding = _announce_sharding(data, info)
    if info.chief:
        _write_config(out, cfg, data, screening, precision, info, sharding)
    try:
        keras.mixed_precision.set_global_policy(keras_policy(precision))
        return _fit(cfg, out, data, screening, strategy, info)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _announce_sharding(data: DataSource, info: StrategyInfo) -> dict:
    """How the workers split the training data; a warning when each must read every shard."""
    sharding = data.sharding(info.workers)
    if sharding["policy"] == "DATA" and data.kind == "shards":
        log.warning(
            "%d shard file(s) for %d workers: every worker reads every file and keeps its share of each batch "
            "(tf.data DATA sharding); prepare with a smaller --shard-size to give each worker files of its own",
            sharding["files"],
            info.workers,
        )
    elif sharding["policy"]:
        log.info(
            "input sharding: %s over %d workers (%s shard files)", sharding["policy"], info.workers, sharding["files"]
        )
    return sharding


def _save_float32(cfg: TrainConfig, n_classes: int):
    """Checkpoints are always float32 models, whatever precision trained them, so conversion,
    ``--init-from`` and the Keras baseline never meet a bfloat16 graph."""
    import keras

    def save(model, path: Path) -> None:
        if all(layer.dtype_policy.name == "float32" for layer in model.layers):
            model.save(path)
            return
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("float32")
        try:
            clone = build_model(n_classes, cfg.input_size, cfg.head_layer, "none", cfg.hidden_units, cfg.dropout)
            clone.set_weights(model.get_weights())
            clone.save(path)
        finally:
            keras.mixed_precision.set_global_policy(policy)

    return save


def _compiled_model(cfg: TrainConfig, n: int, steps: int):
    import keras

    model = build_model(n, cfg.input_size, cfg.head_layer, cfg.weights, cfg.hidden_units, cfg.dropout)
    if cfg.init_from:
        init_from_model(model, cfg.init_from)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate_schedule(cfg, steps)),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        weighted_metrics=["accuracy"],
        jit_compile=cfg.jit_compile,
    )
    return model


def _callbacks(cfg: TrainConfig, out: Path, data: DataSource, screening, info: StrategyInfo, n: int) -> list:
    import keras

    callbacks = [
        keras.callbacks.BackupAndRestore(str(out / backup_dir_name(info)), save_freq=cfg.backup_steps or "epoch"),
        keras.callbacks.TerminateOnNaN(),  # a diverged run stops at once instead of burning hours (seen: bf16, SORD, 128 px)
    ]
    if not info.chief:
        return callbacks
    twin = None
    if info.name != "one":  # validated on a local float32 copy (see validation_checkpoint)
        policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("float32")
        twin = build_model(n, cfg.input_size, cfg.head_layer, "none", cfg.hidden_units, cfg.dropout)
        keras.mixed_precision.set_global_policy(policy)
    averaging = []
    if cfg.swa_epochs:  # first in the list: the average is on disk before the resume state moves on
        first = first_averaged_epoch(cfg.epochs, cfg.swa_epochs)
        averaging = [weight_averaging(data, out, screening, cfg.select_metric, first, _save_float32(cfg, n), twin)]
    return (
        averaging
        + callbacks
        + [
            validation_checkpoint(data, out, screening, cfg.select_metric, save=_save_float32(cfg, n), twin=twin),
            keras.callbacks.CSVLogger(str(out / "history.csv"), append=True),
        ]
    )


def _fit(cfg: TrainConfig, out: Path, data: DataSource, screening, strategy, info: StrategyInfo) -> Path:
    n = len(data.classes)
    cw = class_weights_from_counts(data.counts["train"], cfg.class_weight)
    targets = target_table(n, cfg, data.kl_grades)
    steps = cfg.steps_per_epoch or int(np.ceil(data.n_train / cfg.batch_size))
    with strategy.scope():
        model = _compiled_model(cfg, n, steps)
    callbacks = _callbacks(cfg, out, data, screening, info, n)
    done = batches_done(out / backup_dir_name(info), steps, bool(cfg.backup_steps)) if data.kind == "shards" else 0
    file_sharded = data.sharding(info.workers)["policy"] == "FILE"  # each worker's own stream, B/workers a step
    records = done * (cfg.batch_size // info.workers if file_sharded else cfg.batch_size)
    train_data = data.train_dataset(targets, cw, cfg, workers=info.workers, skip=records)
    build_before_fit(model, strategy, info, train_data)
    # Distributed replicas (and workers) must all run the same number of steps: a repeated
    # stream with a fixed step count, never a last partial batch one worker lacks.
    repeat = bool(cfg.steps_per_epoch) or info.name != "one" or data.kind == "shards"
    model.fit(
        train_data.repeat() if repeat else train_data,
        epochs=cfg.epochs,
        shuffle=False,
        steps_per_epoch=steps if repeat else None,
        callbacks=callbacks,
        verbose=2,
    )
    if not info.chief:
        return out / MODEL_FILE
    best = json.loads((out / "best.json").read_text())
    (out / "metrics.json").write_text(json.dumps({"selected_on": cfg.select_metric, **best}, indent=2) + "\n")
    log.info(
        "selected %s: %s = %.4f; model at %s",
        chosen_checkpoint(best),
        cfg.select_metric,
        best[cfg.select_metric],
        out / MODEL_FILE,
    )
    return out / MODEL_FILE


def init_from_model(model, path: str | Path) -> None:
    """Copy every layer's weights from a trained ``.keras`` model of the same architecture.

    Convolutions and dense layers do not depend on the input size, so a model trained at 75 px
    can start a run at 128 px (progressive resizing).

    Raises:
        TrainSetupError: no such file, or the architectures differ (a missing layer or a weight of another shape).
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise TrainSetupError(f"{path}: --init-from model not found")
    try:
        source = keras.saving.load_model(path, compile=False)
    except (OSError, ValueError, TypeError) as e:  # not a .keras archive, or a corrupt one
        raise TrainSetupError(f"{path}: --init-from is not a readable Keras model ({type(e).__name__}: {e})") from None
    # Keras numbers unnamed layers per process (conv2d, conv2d_94, ...), so layers pair up by
    # position in the graph, which the same architecture fixes, and are checked by type and shape.
    ours = [layer for layer in model.layers if layer.weights]
    theirs = [layer for layer in source.layers if layer.weights]
    if len(ours) != len(theirs):
        raise TrainSetupError(
            f"{path}: {len(theirs)} layers with weights, expected {len(ours)}; "
            "--init-from needs the same head layer and head"
        )
    for mine, src in zip(ours, theirs, strict=True):
        shapes = [tuple(w.shape) for w in src.weights], [tuple(w.shape) for w in mine.weights]
        if type(mine) is not type(src) or shapes[0] != shapes[1]:
            raise TrainSetupError(
                f"{path}: layer {src.name!r} ({type(src).__name__} {shapes[0]}) does not match "
                f"{mine.name!r} ({type(mine).__name__} {shapes[1]}); --init-from needs the same architecture"
            )
        mine.set_weights(src.get_weights())
    log.info("initialised from %s", path)


def check_init_from_contract(cfg: TrainConfig) -> None:
    """An ``--init-from`` model must have been trained on the same input contract (intensity):
    otherwise the next stage starts from weights that expect other pixels.

    Raises:
        TrainSetupError: the earlier run's ``config.json`` says another intensity contract.
    """
    if not cfg.init_from:
        return
    config_path = Path(cfg.init_from).with_name(CONFIG_FILE)
    if not config_path.is_file():
        log.warning(
            "%s: no %s beside it; cannot check that it used intensity %r", cfg.init_from, CONFIG_FILE, cfg.intensity
        )
        return
    try:
        earlier = with_legacy_values(json.loads(config_path.read_text()).get("train", {}))
    except (OSError, ValueError) as e:
        raise TrainSetupError(f"{config_path}: unreadable training config ({e})") from None
    if earlier["intensity"] != cfg.intensity:
        raise TrainSetupError(
            f"{cfg.init_from}: trained with --intensity {earlier['intensity']}, this run asks for {cfg.intensity}; "
            "start every stage of a progressive schedule with the same --intensity"
        )


def _check_run_dir(out: Path, cfg: TrainConfig) -> None:
    """Resume only the same run: refuse a directory holding another configuration or a finished run."""
    config_path = out / CONFIG_FILE
    if not config_path.is_file():
        return
    previous = with_legacy_values(json.loads(config_path.read_text()).get("train", {}))
    changed = sorted(
        k
        for k in set(previous) | set(cfg.to_dict())
        if previous.get(k) != cfg.to_dict().get(k) and k not in RESUMABLE_CHANGES
    )
    if changed:
        raise TrainSetupError(
            f"{out}: holds a run with a different configuration ({', '.join(changed)}); choose another --out"
        )
    if (out / "metrics.json").is_file() and not (out / "backup").exists():
        raise TrainSetupError(f"{out}: this run already finished ({MODEL_FILE}); choose another --out to train again")


def _write_config(out: Path, cfg, data: DataSource, screening, precision, info: StrategyInfo, sharding) -> None:
    config = {
        "train": cfg.to_dict(),
        "precision": precision,
        "strategy": info.to_dict(),
        "input_sharding": sharding,
        "data": data.describe,
        "folders": data.folders,
        "classes": data.classes,
        "kl_grades": data.kl_grades,
        "screening": screening.to_dict() if screening else None,
        "preprocess": data.spec.to_dict(),
        "counts": data.counts,
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
