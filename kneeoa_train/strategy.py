"""Which ``tf.distribute`` strategy trains the model: one device, the GPUs of one machine, or
several machines.

- ``one``: TensorFlow's default strategy, exactly as training ran before strategies existed.
- ``mirrored``: :class:`tf.distribute.MirroredStrategy` over the machine's GPUs (over its logical
  CPU devices when it has no GPU: one, unless ``tf.config.set_logical_device_configuration``
  split the CPU, as the tests do).
- ``multi-worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy` across the workers that
  ``TF_CONFIG`` names (the same command on every worker, each with its own ``task``).
- ``auto``: ``multi-worker`` when ``TF_CONFIG`` names two or more workers, ``mirrored`` on a
  machine with two or more GPUs, ``one`` otherwise.

``--batch-size`` is the global batch: each replica takes ``batch_size / replicas`` images per step.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from edge_infer.errors import ConfigError

from .config import STRATEGIES
from .errors import TrainSetupError


@dataclass(frozen=True)
class StrategyInfo:
    """The effective strategy, as ``config.json`` and the model card record it.

    Attributes:
        name: ``one``, ``mirrored`` or ``multi-worker`` (never ``auto``).
        asked: What ``--strategy`` said.
        replicas: Replicas in sync (devices across all workers).
        workers: Machines (processes) taking part.
        task: This process's ``TF_CONFIG`` task (``worker:0`` …), or ``None``.
        chief: Whether this process writes the run directory's files (worker 0, or the ``chief`` task).
    """

    name: str
    asked: str
    replicas: int
    workers: int
    task: str | None
    chief: bool

    def to_dict(self) -> dict:
        return asdict(self)


def tf_config() -> dict:
    """``TF_CONFIG`` parsed (``{}`` when unset).

    Raises:
        ConfigError: it is set but not a JSON object with ``cluster`` and ``task``.
    """
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"TF_CONFIG: not valid JSON ({e})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("cluster"), dict)
        or not isinstance(data.get("task"), dict)
    ):
        raise ConfigError('TF_CONFIG: expected {"cluster": {"worker": [...]}, "task": {"type": "worker", "index": i}}')
    return data


def _cluster_size(config: dict) -> int:
    cluster = config.get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def resolve_name(asked: str, gpus: int, config: dict) -> str:
    """The strategy ``asked`` (possibly ``auto``) means on this machine and cluster.

    Raises:
        ConfigError: an unknown name, or ``multi-worker`` without a ``TF_CONFIG`` cluster.
    """
    if asked not in STRATEGIES:
        raise ConfigError(f"strategy must be one of {STRATEGIES}, got {asked!r}")
    if asked == "auto":
        if _cluster_size(config) >= 2:
            return "multi-worker"
        return "mirrored" if gpus >= 2 else "one"
    if asked == "multi-worker" and _cluster_size(config) < 1:
        raise ConfigError("--strategy multi-worker needs TF_CONFIG naming the cluster and this worker's task")
    return asked


def make_strategy(asked: str):
    """Create the strategy (before any other TensorFlow work, as multi-worker requires).

    Returns:
        ``(strategy, StrategyInfo)``.
    """
    import tensorflow as tf

    config = tf_config()
    name = resolve_name(asked, len(tf.config.list_physical_devices("GPU")), config)
    if name == "one":
        return tf.distribute.get_strategy(), StrategyInfo("one", asked, 1, 1, None, True)
    if name == "mirrored":
        devices = (
            None if tf.config.list_logical_devices("GPU") else [d.name for d in tf.config.list_logical_devices("CPU")]
        )
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        return strategy, StrategyInfo("mirrored", asked, strategy.num_replicas_in_sync, 1, None, True)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except (ValueError, RuntimeError) as e:
        raise TrainSetupError(f"TF_CONFIG: cannot start the multi-worker strategy ({e})") from None
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in config["cluster"])
    info = StrategyInfo(
        "multi-worker", asked, strategy.num_replicas_in_sync, _cluster_size(config), f"{task_type}:{task_id}", chief
    )
    return strategy, info


def check_batch(batch_size: int, info: StrategyInfo) -> None:
    """The global batch must split evenly over the replicas (else one replica's BN and loss see fewer images).

    Raises:
        TrainSetupError: naming the batch and the replica count.
    """
    if batch_size % info.replicas:
        raise TrainSetupError(
            f"--batch-size {batch_size} does not split over {info.replicas} replicas ({info.name}); "
            f"use a multiple of {info.replicas}"
        )


def backup_dir_name(info: StrategyInfo) -> str:
    """Each worker keeps its own resume state (Keras's BackupAndRestore writes without coordination;
    the weights are in sync, so every worker's copy is the same state)."""
    return "backup" if info.chief else f"backup-{info.task.replace(':', '-')}"


def build_before_fit(model, strategy, info: StrategyInfo, dataset) -> None:
    """Work around two Keras 3 bugs under ``multi-worker`` (keras-team/keras#20585, still in
    Keras 3.15.1; ``MirroredStrategy`` is not affected, and nothing changes for it):

    1. ``fit`` builds metric, loss and optimizer state from its first distributed batch, which it
       first reduces across workers, and that fails (``Attempt to convert a value (PerReplica...)``).
       The same build runs here from one local batch inside the strategy's scope, and the
       model's own pre-build step is switched off for this model object.
    2. Each step's logs (scalars) are averaged across workers with ``reduce(MEAN, axis=0)``, which
       fails on a scalar. The step's logs are returned as 1-element vectors instead, which that
       reduction turns back into the same scalar mean.
    """
    if info.name != "multi-worker":
        return
    import tensorflow as tf

    batch = next(iter(dataset.take(1)))
    with strategy.scope():
        model._symbolic_build(data_batch=batch)
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    keras_step = model.train_step

    def train_step(data):
        return {name: tf.reshape(value, [1]) for name, value in keras_step(data).items()}

    model.train_step = train_step
