"""The ``tf.data`` input pipelines ``kneeoa train`` feeds Keras with.

- :func:`memory_dataset`: images already in memory (class folders, as before shards existed).
- :func:`shard_dataset`: TFRecord shards from ``kneeoa prepare``, streamed: shard files shuffled
  and read interleaved, a bounded shuffle buffer of records, decoding, augmentation on the batch,
  prefetch. Memory depends on the shuffle buffer and batch, not on the dataset size.

Both end in the same augmentation and the same ``uint8`` → model-input mapping as
:func:`edge_infer.preprocess.to_model_input` (``x · (hi − lo)/255 + lo`` in float32), so a model
sees identical pixels whichever way it was fed.
"""

from __future__ import annotations

import numpy as np

from edge_infer.preprocess import PreprocessSpec

from .config import TrainConfig


def augmenter(cfg: TrainConfig):
    """The Keras augmentation layers the config asks for (applied to a batch inside ``tf.data``)."""
    import keras

    layers = [keras.layers.RandomFlip("horizontal", seed=cfg.seed)] if cfg.flip else []
    if cfg.rotation_deg:
        layers.append(keras.layers.RandomRotation(cfg.rotation_deg / 360.0, fill_mode="reflect", seed=cfg.seed))
    if cfg.zoom:
        layers.append(keras.layers.RandomZoom(cfg.zoom, fill_mode="reflect", seed=cfg.seed))
    if cfg.shift:
        layers.append(keras.layers.RandomTranslation(cfg.shift, cfg.shift, fill_mode="reflect", seed=cfg.seed))
    return keras.Sequential(layers, name="augment")


def _finish(ds, cfg: TrainConfig, training: bool, decode=None):
    """Batch, then in one map per batch: ``decode`` (when the elements are serialized records),
    augment (training only), replicate grey to 3 channels; prefetch."""
    import tensorflow as tf

    ds = ds.batch(cfg.batch_size)
    augment = augmenter(cfg) if training else None
    if augment is not None and not augment.layers:  # every augmentation switched off
        augment = None

    def prepare(*batch):
        img, label, w = decode(*batch) if decode is not None else batch
        if augment is not None:
            img = augment(img, training=True)
        return tf.repeat(img, 3, axis=-1), label, w

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def memory_dataset(x, y, sample_w, targets: np.ndarray, cfg: TrainConfig, training: bool):
    """``(image, target, weight)`` batches from in-memory ``float32`` images ``x`` (N, s, s, 1)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, targets[y], sample_w.astype(np.float32)))
    if training:
        ds = ds.shuffle(len(x), seed=cfg.seed, reshuffle_each_iteration=True)
    return _finish(ds, cfg, training)


def parse_record(serialized, size: int | None = None, with_ids: bool = False):
    """One record → ``uint8`` image ``(s, s, 1)`` and class index (plus group id and file name)."""
    import tensorflow as tf

    features = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "group": tf.io.FixedLenFeature([], tf.string),
        "file": tf.io.FixedLenFeature([], tf.string),
    }
    ex = tf.io.parse_single_example(serialized, features)
    flat = tf.io.decode_raw(ex["image"], tf.uint8)
    if size is None:
        size = tf.cast(tf.round(tf.sqrt(tf.cast(tf.size(flat), tf.float32))), tf.int32)
    image = tf.reshape(flat, [size, size, 1])
    return (image, ex["label"], ex["group"], ex["file"]) if with_ids else (image, ex["label"])


INTERLEAVE_FILES = 4
"""Shard files read at once, by a fixed number of threads through fixed read buffers, so memory
does not follow the number of shards (it did with ``min(files, 8)`` autotuned readers); the
shuffle buffer mixes what the interleave does not, and ``prepare`` mixes classes in every shard."""
READ_THREADS = 2
READ_BUFFER = 256 << 10


def _one_pass(files, cfg: TrainConfig, epoch):
    """Pass ``epoch`` over the records: the shard files in an order drawn from ``(seed, epoch)``
    (stateless, so every iterator draws the same), read interleaved, then a seeded shuffle buffer."""
    import tensorflow as tf

    seed = tf.stack([tf.constant(cfg.seed, tf.int64), tf.cast(epoch, tf.int64)])
    order = tf.random.experimental.stateless_shuffle(files, seed=seed)
    ds = tf.data.Dataset.from_tensor_slices(order).interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=READ_BUFFER),
        cycle_length=INTERLEAVE_FILES,
        block_length=1,
        num_parallel_calls=READ_THREADS,
        deterministic=True,  # the same seed gives the same order: runs and tests are reproducible
    )
    return ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed, reshuffle_each_iteration=False)


def _records(files: list[str], cfg: TrainConfig, training: bool):
    """Training: an endless stream, pass ``e`` shuffled from ``(cfg.seed, e)``, so every
    iterator over it yields the same order (Keras opens an extra one under a distribution strategy,
    which would advance a shared reshuffle). Otherwise one pass in file order."""
    import tensorflow as tf

    if not training:
        return tf.data.TFRecordDataset(files)
    names = tf.constant(files)
    ds = tf.data.Dataset.counter().flat_map(lambda epoch: _one_pass(names, cfg, epoch))
    options = tf.data.Options()
    # Under multi-worker each worker keeps its 1/N of the stream (FILE sharding cannot see through the per-pass flat_map).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def shard_dataset(
    files: list[str], spec: PreprocessSpec, targets: np.ndarray, class_w: np.ndarray, cfg: TrainConfig, training: bool
):
    """``(image, target, weight)`` batches streamed from shard files (endless when training: give
    ``steps_per_epoch``).

    Args:
        files: Shard files of one split.
        spec: The shards' preprocessing contract (its size and value range).
        targets: Row per class: the training target (one-hot or SORD).
        class_w: Loss weight per class.
        cfg: Batch size, shuffle buffer, augmentation and seed.
        training: Shuffle and augment (else the files' order, unaugmented).
    """
    import tensorflow as tf

    lo, hi = spec.value_range
    scale = np.float32((hi - lo) / 255.0)
    target_t = tf.constant(targets, tf.float32)
    weight_t = tf.constant(np.asarray(class_w, np.float32))

    features = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}

    def decode(serialized):  # a batch at a time: one vectorised parse instead of one per record
        ex = tf.io.parse_example(serialized, features)
        image = tf.reshape(tf.io.decode_raw(ex["image"], tf.uint8), [-1, spec.size, spec.size, 1])
        x = tf.cast(image, tf.float32) * scale + np.float32(lo)
        return x, tf.gather(target_t, ex["label"]), tf.gather(weight_t, ex["label"])

    return _finish(_records(files, cfg, training), cfg, training, decode=decode)


def shard_labels(files: list[str]) -> np.ndarray:
    """Class indices of a split's records, in file order (what :func:`shard_images` yields)."""
    import tensorflow as tf

    labels = tf.data.TFRecordDataset(files).map(lambda r: parse_record(r)[1], num_parallel_calls=tf.data.AUTOTUNE)
    return np.fromiter(labels.as_numpy_iterator(), np.int64)


def shard_images(files: list[str], spec: PreprocessSpec, count: int, batch_size: int = 64):
    """Model inputs (3 channels) of a split's ``count`` records, in file order, for prediction
    (the count makes the length known, so Keras does not take the end of the data for a fault)."""
    import tensorflow as tf

    lo, hi = spec.value_range
    scale = np.float32((hi - lo) / 255.0)

    def decode(serialized):
        image = parse_record(serialized, spec.size)[0]
        return tf.repeat(tf.cast(image, tf.float32) * scale + np.float32(lo), 3, axis=-1)

    ds = tf.data.TFRecordDataset(files).apply(tf.data.experimental.assert_cardinality(count))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
