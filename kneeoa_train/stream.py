"""The ``tf.data`` input pipelines ``kneeoa train`` feeds Keras with.

- :func:`memory_dataset`: images already in memory (class folders, as before shards existed).
- :func:`shard_dataset`: TFRecord shards from ``kneeoa prepare``, streamed: shard files shuffled
  and read interleaved, a bounded shuffle buffer of records, decoding, augmentation on the batch,
  prefetch. Memory depends on the shuffle buffer and batch, not on the dataset size. Under
  ``multi-worker`` each worker reads its own files (``FILE`` auto-sharding), and a resumed run
  starts the stream where the interrupted one stopped.

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


def shard_policy(n_files: int, workers: int) -> str:
    """How ``multi-worker`` training splits the shards between workers (tf.data auto-sharding):
    ``FILE`` (each worker reads only its own files) when there are at least as many shard files as
    workers, else ``DATA`` (every worker reads every file and keeps its share of the batches)."""
    return "FILE" if n_files >= workers else "DATA"


def _records(files: list[str], cfg: TrainConfig, training: bool, workers: int = 1, skip: int = 0):
    """Training: an endless stream of records. Pass ``e`` over the shard files takes them in an
    order drawn from ``(cfg.seed, e)`` (stateless, so every iterator over the stream yields the same
    order: Keras opens an extra one under a distribution strategy); they are read
    :data:`INTERLEAVE_FILES` at a time, through one seeded shuffle buffer. Every record is read
    once per pass; the buffer lets the last records of one pass come out among the first of the
    next (the price of a file stream that ``FILE`` sharding can deal out). Otherwise one pass in
    file order.

    Under ``multi-worker`` the stream of file names is what ``FILE`` auto-sharding deals out
    (name ``k`` to worker ``k mod workers``), so each worker reads ``1/workers`` of the files of
    every pass, and the workers together read each file once per pass.

    Args:
        workers: Workers training together (chooses :func:`shard_policy`).
        skip: Records of this worker's stream already trained on (a resumed run): the stream
            starts after them, where the interrupted run stopped. They are read and dropped
            undecoded: far cheaper than training on them, but in proportion to how far the run got.
    """
    import tensorflow as tf

    if not training:
        return tf.data.TFRecordDataset(files)
    names = tf.constant(files)

    def pass_files(epoch):
        seed = tf.stack([tf.constant(cfg.seed, tf.int64), tf.cast(epoch, tf.int64)])
        return tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(names, seed=seed))

    policy = shard_policy(len(files), workers)
    per_worker = len(files) // workers if policy == "FILE" else len(files)
    cycle = max(1, min(INTERLEAVE_FILES, per_worker))  # at most one pass's share of the files
    ds = tf.data.Dataset.counter().flat_map(pass_files)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=READ_BUFFER),
        cycle_length=cycle,
        block_length=1,
        num_parallel_calls=min(READ_THREADS, cycle),
        deterministic=True,  # the same seed gives the same order: runs, resumes and tests are reproducible
    )
    ds = ds.shuffle(cfg.shuffle_buffer, seed=cfg.seed, reshuffle_each_iteration=False)
    if skip:
        ds = ds.skip(skip)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(tf.data.experimental.AutoShardPolicy, policy)
    return ds.with_options(options)


def shard_dataset(
    files: list[str],
    spec: PreprocessSpec,
    targets: np.ndarray,
    class_w: np.ndarray,
    cfg: TrainConfig,
    training: bool,
    workers: int = 1,
    skip: int = 0,
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
        workers, skip: See :func:`_records`.
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

    return _finish(_records(files, cfg, training, workers, skip), cfg, training, decode=decode)


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
