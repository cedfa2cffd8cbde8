"""Where training data comes from: class folders loaded into memory (as before shards existed), or
a shard folder from ``kneeoa prepare`` streamed through ``tf.data``. Both give the trainer the same
things: the class map, counts, a training dataset and a way to predict the validation split.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_infer.folders import FolderDataset, load_images, scan_class_folders
from edge_infer.preprocess import PreprocessSpec, to_model_input

from .config import TrainConfig
from .errors import TrainSetupError
from .shardset import ShardSet, is_shard_folder, read_shard_set
from .stream import memory_dataset, shard_dataset, shard_images, shard_labels, shard_policy

log = logging.getLogger(__name__)


@dataclass
class DataSource:
    """What the trainer needs of its data, whichever form it is stored in.

    Attributes:
        kind: ``folders`` or ``shards``.
        folders, classes, kl_grades: The class map.
        counts: Images per class of ``train`` and ``val``.
        spec: The preprocessing contract the model is trained on.
        describe: What ``config.json`` records about the source.
    """

    kind: str
    folders: list[str]
    classes: list[str]
    kl_grades: list[int] | None
    counts: dict[str, list[int]]
    spec: PreprocessSpec
    describe: dict
    _folders: tuple[FolderDataset, FolderDataset] | None = None
    _shards: tuple[ShardSet, ShardSet] | None = None
    _cache: dict = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return int(sum(self.counts["train"]))

    def train_dataset(
        self, targets: np.ndarray, class_w: np.ndarray, cfg: TrainConfig, workers: int = 1, skip: int = 0
    ):
        """Shuffled, augmented ``(image, target, weight)`` batches of the training split.

        Args:
            workers: Workers training together (shards: how they are split, :meth:`sharding`).
            skip: Records of this worker's stream already trained on (shards; folders start over).
        """
        if self._shards:
            files = self._shards[0].files("train")
            return shard_dataset(files, self.spec, targets, class_w, cfg, training=True, workers=workers, skip=skip)
        x, y = self._loaded("train")
        return memory_dataset(x, y, class_w[y], targets, cfg, training=True)

    def sharding(self, workers: int) -> dict:
        """How the training data is split between ``workers`` (what ``config.json`` records):
        tf.data's ``FILE`` or ``DATA`` auto-sharding policy, ``None`` for a single worker."""
        if workers < 2:
            return {"policy": None, "workers": workers}
        if not self._shards:  # in-memory tensors have no files: tf.data falls back to DATA
            return {"policy": "DATA", "workers": workers, "files": None}
        n = len(self._shards[0].split("train")["shards"])
        return {"policy": shard_policy(n, workers), "workers": workers, "files": n}

    def val_labels(self) -> np.ndarray:
        if self._shards:
            if "val_y" not in self._cache:
                self._cache["val_y"] = shard_labels(self._shards[1].files("val"))
            return self._cache["val_y"]
        return self._loaded("val")[1]

    def predict_val(self, model) -> np.ndarray:
        """Probabilities of the validation images, in :meth:`val_labels` order."""
        if self._shards:
            val = self._shards[1]
            return model.predict(shard_images(val.files("val"), self.spec, val.split("val")["images"]), verbose=0)
        return model.predict(np.repeat(self._loaded("val")[0], 3, axis=-1), batch_size=64, verbose=0)

    def _loaded(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in self._cache:
            ds = self._folders[0 if split == "train" else 1]
            t0 = time.perf_counter()
            images, ok = load_images(ds.paths, self.spec)
            log.info("loaded %d/%d images from %s in %.1f s", len(ok), len(ds), ds.root, time.perf_counter() - t0)
            self._cache[split] = (to_model_input(images, self.spec, channels=1), ds.labels[ok])
        return self._cache[split]


def open_source(cfg: TrainConfig) -> DataSource:
    """Scan the folders or read the shard manifests named by ``cfg`` (images are not loaded yet).

    Raises:
        DatasetError: a missing or unusable folder or manifest.
        TrainSetupError: shards of another size or intensity than the run asks for, or folders
            and shards mixed.
    """
    spec = PreprocessSpec(size=cfg.input_size, intensity=cfg.intensity)
    train_sharded, val_sharded = is_shard_folder(cfg.train_dir), is_shard_folder(cfg.val_dir)
    if train_sharded != val_sharded:
        raise TrainSetupError(
            f"{cfg.train_dir} and {cfg.val_dir}: give two shard folders or two class folders, not one of each"
        )
    if not train_sharded:
        train_ds = scan_class_folders(cfg.train_dir)
        val_ds = scan_class_folders(cfg.val_dir, folders=train_ds.folders)
        counts = {"train": train_ds.counts(), "val": val_ds.counts()}
        describe = {"kind": "folders", "train": cfg.train_dir, "val": cfg.val_dir}
        return DataSource(
            "folders",
            train_ds.folders,
            train_ds.classes,
            train_ds.kl_grades,
            counts,
            spec,
            describe,
            _folders=(train_ds, val_ds),
        )
    return _shard_source(cfg, spec)


def _shard_source(cfg: TrainConfig, spec: PreprocessSpec) -> DataSource:
    train_set, val_set = read_shard_set(cfg.train_dir), read_shard_set(cfg.val_dir)
    for shards in (train_set, val_set):
        _check_contract(shards, spec)
    if val_set.folders != train_set.folders:
        raise TrainSetupError(
            f"{cfg.val_dir}: classes {val_set.folders} differ from {cfg.train_dir}'s {train_set.folders}"
        )
    train_set.check_files("train")
    val_set.check_files("val")
    counts = {"train": train_set.counts("train"), "val": val_set.counts("val")}
    describe = {
        "kind": "shards",
        "train": str(Path(cfg.train_dir) / "shards.json"),
        "val": str(Path(cfg.val_dir) / "shards.json"),
    }
    return DataSource(
        "shards",
        train_set.folders,
        train_set.classes,
        train_set.kl_grades,
        counts,
        spec,
        describe,
        _shards=(train_set, val_set),
    )


def _check_contract(shards: ShardSet, spec: PreprocessSpec) -> None:
    """Shards hold images at one size and intensity; training at another would resize or re-stretch
    them a second time, which the device never does. So the run must ask for what they hold."""
    if shards.spec.size != spec.size or shards.spec.intensity_dict() != spec.intensity_dict():
        raise TrainSetupError(
            f"{shards.root}: shards hold {shards.spec.size} px, intensity {shards.spec.intensity}; this run asks for "
            f"{spec.size} px, intensity {spec.intensity}: pass --input-size {shards.spec.size} --intensity "
            f"{shards.spec.intensity}, or prepare shards with --size {spec.size} --intensity {spec.intensity}"
        )
