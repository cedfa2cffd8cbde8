"""Helper run in a fresh process by tests/test_train_distributed.py: the CPU split into logical
devices must be configured before TensorFlow starts, and a multi-worker strategy needs a process
of its own per worker.

Usage:
    python distributed_run.py same-weights SHARDS        # one device vs mirrored, prints JSON
    python distributed_run.py train CONFIG_JSON [CPUS]   # kneeoa_train.trainer.train on CPUS logical CPUs
    python distributed_run.py worker SHARDS OUT_JSON     # a tiny model, a few multi-worker steps (TF_CONFIG set)
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def split_cpu(n: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def tiny_model(seed: int = 0):
    """No batch normalisation: per-replica batch statistics are the one thing that may differ."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((75, 75, 3)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )
    model.compile(keras.optimizers.SGD(0.5), "categorical_crossentropy")
    return model


def stream(shards_dir: str, workers: int = 1):
    import numpy as np

    from kneeoa_train.config import TrainConfig
    from kneeoa_train.shardset import read_shard_set
    from kneeoa_train.stream import shard_dataset

    shards = read_shard_set(shards_dir)
    cfg = TrainConfig("a", "b", "c", batch_size=8, flip=False, rotation_deg=0, zoom=0, shift=0, shuffle_buffer=64)
    return shard_dataset(
        shards.files("train"), shards.spec, np.eye(5, dtype=np.float32), np.ones(5), cfg, training=True, workers=workers
    )


def records_seen(strategy, shards_dir: str, workers: int, steps: int = 3) -> list[str]:
    """The source files of the records this worker is given in ``steps`` steps of a global batch of
    8, through the strategy's own distribution of the training stream (auto-sharding included).
    A one-record shuffle buffer keeps the first pass apart from the next (a larger one mixes them)."""
    from kneeoa_train.config import TrainConfig
    from kneeoa_train.shardset import read_shard_set
    from kneeoa_train.stream import _records, parse_record

    cfg = TrainConfig("a", "b", "c", shuffle_buffer=1)
    ids = _records(read_shard_set(shards_dir).files("train"), cfg, training=True, workers=workers)
    batches = iter(
        strategy.experimental_distribute_dataset(ids.map(lambda r: parse_record(r, with_ids=True)[3]).batch(8))
    )
    seen = []
    for _ in range(steps):
        for local in strategy.experimental_local_results(next(batches)):
            seen += [name.decode() for name in local.numpy()]
    return seen


def same_weights(shards_dir: str) -> None:
    split_cpu(2)
    from kneeoa_train.strategy import make_strategy

    initial = tiny_model().get_weights()
    result = {"initial": [w.tolist() for w in initial]}
    for name in ("one", "mirrored"):
        strategy, info = make_strategy(name)
        with strategy.scope():
            model = tiny_model()
        model.fit(stream(shards_dir).repeat(), steps_per_epoch=4, epochs=1, verbose=0)
        result[name] = {"replicas": info.replicas, "weights": [w.tolist() for w in model.get_weights()]}
    print(json.dumps(result))


def worker(shards_dir: str, out_json: str) -> None:
    from kneeoa_train.strategy import build_before_fit, make_strategy

    strategy, info = make_strategy("multi-worker")
    with strategy.scope():
        model = tiny_model()
    initial = [w.tolist() for w in model.get_weights()]
    data = stream(shards_dir, info.workers)
    build_before_fit(model, strategy, info, data)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    seen = records_seen(strategy, shards_dir, info.workers)
    weights = [w.tolist() for w in model.get_weights()]
    with open(out_json, "w") as f:
        json.dump({"info": info.to_dict(), "initial": initial, "weights": weights, "seen": seen}, f)


def train(config_json: str, cpus: int) -> None:
    import logging

    logging.basicConfig(level=logging.INFO)
    if cpus > 1:
        split_cpu(cpus)
    from kneeoa_train.config import TrainConfig
    from kneeoa_train.trainer import train as run

    print(run(TrainConfig(**json.loads(config_json))), flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "same-weights":
        same_weights(args[0])
    elif mode == "worker":
        worker(*args)
    else:
        train(args[0], int(args[1]) if len(args) > 1 else 1)
