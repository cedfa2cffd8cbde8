"""``kneeoa prepare``: a class-per-folder dataset → sharded TFRecords, once, through the device's
own decoding and preprocessing (:mod:`edge_infer.decode`, :mod:`edge_infer.preprocess`), so
training reads exactly the pixels the device would compute and the two cannot drift.

Two layouts are accepted. ``DATA/train``, ``DATA/val`` (and optionally ``DATA/test``), each with
class folders, keep the user's split, and are refused if one patient id appears in two of them.
``DATA`` with class folders alone is split by patient (:mod:`kneeoa_train.splits`).

Scanning, splitting and the manifest need no TensorFlow; only writing TFRecords imports it, which
is why this lives in ``kneeoa_train`` (the one consumer of shards is training, which needs it).
Memory stays flat: images are decoded and written ``chunk`` at a time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_infer.decode import load_grayscale
from edge_infer.errors import DatasetError, InputImageError, failure_message
from edge_infer.finding import find_images
from edge_infer.labels import classes_from_folders
from edge_infer.manifest import sha256_file
from edge_infer.preprocess import PreprocessSpec, prepare_gray

from .shardset import FORMAT, MANIFEST_FILE, RECORD_FIELDS
from .splits import DEFAULT_FRACTIONS, DEFAULT_ID_PATTERN, SPLIT_NAMES, GroupIds, check_no_leak, split_by_group

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrepareOptions:
    """How ``kneeoa prepare`` converts a dataset.

    Attributes:
        size: Side of the stored square images (train with the same ``--input-size``).
        intensity: The preprocessing intensity contract (``percentile`` or ``stored``).
        id_pattern: Regular expression for the patient/group id in a file name.
        ids_csv: CSV of ``file,group`` rows; overrides ``id_pattern``.
        fractions: train/val/test fractions when one folder is split by patient.
        seed: Seed for the split and for the record order within a split.
        shard_size: Images per shard file.
        workers: Decoding threads.
    """

    size: int = 75
    intensity: str = "percentile"
    id_pattern: str = DEFAULT_ID_PATTERN
    ids_csv: str | None = None
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    seed: int = 0
    shard_size: int = 2048
    workers: int = 4


@dataclass(frozen=True)
class Item:
    """One image to write: where it is, which split, class and patient it belongs to."""

    path: Path
    rel: str
    split: str
    label: int
    group: str


def prepare_command(data: str | Path, out: str | Path, opts: PrepareOptions) -> str:
    """The ``kneeoa prepare`` command line that reproduces a shard folder (options not at their defaults)."""
    parts = ["kneeoa prepare", str(data), "--out", str(out)]
    defaults = asdict(PrepareOptions())
    for key, value in asdict(opts).items():
        if value == defaults[key] or key == "workers":
            continue
        flag = {"fractions": "--split", "ids_csv": "--ids-csv"}.get(key, "--" + key.replace("_", "-"))
        parts += [flag, ",".join(f"{v:g}" for v in value) if key == "fractions" else str(value)]
    return " ".join(parts)


def _given_splits(data: Path) -> dict[str, Path]:
    return {s: data / s for s in SPLIT_NAMES if (data / s).is_dir()}


def _class_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan(data: Path, ids: GroupIds, opts: PrepareOptions, refuse: Callable[[str], None]):
    """List the images to write, with split, class and patient id.

    Returns:
        ``(items, refused, folders, split_mode)``; ``refused`` holds ``{file, problem}`` for each
        path that cannot be searched or has no patient id.

    Raises:
        DatasetError: no dataset, fewer than two classes, differing class folders, or a leaking split.
    """
    if not data.is_dir():
        raise DatasetError(f"{data}: dataset folder not found")
    given = _given_splits(data)
    roots = given if {"train", "val"} <= set(given) else {"": data}
    folders = _class_folders(next(iter(roots.values())))
    if len(folders) < 2:
        raise DatasetError(f"{data}: expected class sub-folders (two or more), found {folders}")
    found, refused = [], []
    for split, root in roots.items():
        if _class_folders(root) != folders:
            raise DatasetError(f"{root}: class folders {_class_folders(root)} differ from {folders}")
        for label, name in enumerate(folders):
            for entry in find_images(root / name):
                if isinstance(entry, InputImageError):
                    refused.append({"file": entry.path, "problem": entry.problem})
                    refuse(str(entry))
                    continue
                group = ids.group_of(entry, data)
                if group is None:
                    problem = f"no patient/group id ({_id_source(ids)})"
                    refused.append({"file": str(entry), "problem": problem})
                    refuse(f"{entry}: {problem}")
                    continue
                found.append((entry, split, label, group))
    if not found:
        raise DatasetError(f"{data}: no images with a patient/group id in the class folders")
    if "" in roots:
        splits = split_by_group([f[3] for f in found], opts.fractions, opts.seed).assignment
        mode = {"mode": "by patient/group id", "fractions": list(opts.fractions), "seed": opts.seed}
    else:
        splits = [f[1] for f in found]
        check_no_leak([f[3] for f in found], splits)
        mode = {"mode": "as given (folders " + ", ".join(roots) + "), checked for shared ids"}
    items = [
        Item(p, p.relative_to(data).as_posix(), s, label, group)
        for (p, _, label, group), s in zip(found, splits, strict=True)
    ]
    return items, refused, folders, mode


def _id_source(ids: GroupIds) -> str:
    return f"not in {ids.csv_file}" if ids.csv_file else f"--id-pattern {ids.pattern!r} does not match"


def _example(image: np.ndarray, item: Item):
    import tensorflow as tf

    def _bytes(v: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    features = {
        "image": _bytes(image.tobytes()),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[item.label])),
        "group": _bytes(item.group.encode()),
        "file": _bytes(item.rel.encode("utf-8", "surrogateescape")),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


class _ShardWriter:
    """Writes one split's records, starting a new file every ``shard_size`` images."""

    def __init__(self, out: Path, split: str, shard_size: int):
        self.out, self.split, self.shard_size = out, split, shard_size
        self.shards: list[dict] = []
        self._writer = None
        self._in_shard = 0

    def write(self, record: bytes) -> None:
        import tensorflow as tf

        if self._writer is None:
            name = f"{self.split}/{self.split}-{len(self.shards):05d}.tfrecord"
            (self.out / self.split).mkdir(parents=True, exist_ok=True)
            self._writer = tf.io.TFRecordWriter(str(self.out / name))
            self.shards.append({"file": name, "images": 0})
        self._writer.write(record)
        self.shards[-1]["images"] += 1
        if self.shards[-1]["images"] >= self.shard_size:
            self.close()

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        shard = self.shards[-1]
        path = self.out / shard["file"]
        shard.update(bytes=path.stat().st_size, sha256=sha256_file(path))


def _load(item: Item, spec: PreprocessSpec) -> np.ndarray | InputImageError:
    try:
        return prepare_gray(load_grayscale(item.path), spec)[0]
    except InputImageError as e:
        return e


def write_split(items: list[Item], out: Path, split: str, spec: PreprocessSpec, opts: PrepareOptions, report) -> tuple:
    """Decode, preprocess and write one split, ``chunk`` images at a time.

    Returns:
        ``(shards, written_items, refused)``.
    """
    writer = _ShardWriter(out, split, opts.shard_size)
    written, refused = [], []
    chunk = max(64, opts.workers * 32)
    with ThreadPoolExecutor(opts.workers) as pool:
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            for item, image in zip(part, pool.map(lambda it: _load(it, spec), part), strict=True):
                if isinstance(image, InputImageError):
                    refused.append({"file": image.path, "problem": image.problem})
                    report.note(failure_message(item.path, image))
                else:
                    writer.write(_example(image, item))
                    written.append(item)
            report.advance(len(part))
    writer.close()
    return writer.shards, written, refused


def _summary(items: list[Item], n_classes: int) -> dict:
    labels = np.asarray([it.label for it in items], np.int64)
    return {
        "images": len(items),
        "groups": len({it.group for it in items}),
        "counts": np.bincount(labels, minlength=n_classes).tolist(),
    }


def _manifest(data: Path, out: Path, opts: PrepareOptions, spec, folders, ids, mode, splits, refused) -> dict:
    """``shards.json``: what was written, from what, how, and what was refused."""
    classes, kl = classes_from_folders(folders)
    written = sum(s["images"] for s in splits.values())
    return {
        "format": FORMAT,
        "command": prepare_command(data, out, opts),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": str(data),
        "preprocess": {**spec.to_dict(), "stored": {"dtype": "uint8", "shape": [opts.size, opts.size], "channels": 1}},
        "record": RECORD_FIELDS,
        "folders": folders,
        "classes": classes,
        "kl_grades": kl,
        "ids": ids.describe(),
        "split": mode,
        "splits": splits,
        "found": written + len(refused),
        "written": written,
        "refused": refused,
    }


def prepare(data: str | Path, out: str | Path, opts: PrepareOptions, report) -> dict:
    """Convert ``data`` into shards under ``out`` and write ``out/shards.json`` (last, so a folder
    without it is an unfinished run).

    Args:
        report: Progress: ``report.note(line)`` for each refused file, ``report.advance(n)``,
            ``report.start(total)``.

    Returns:
        The manifest.

    Raises:
        DatasetError: see :func:`scan`; also an ``out`` that already holds shards.
    """
    data, out = Path(data), Path(out)
    if (out / MANIFEST_FILE).exists() or any((out / s).exists() for s in SPLIT_NAMES):
        raise DatasetError(f"{out}: already holds shards; choose another --out")
    t0 = time.perf_counter()
    ids = GroupIds(opts.id_pattern, opts.ids_csv)
    spec = PreprocessSpec(size=opts.size, intensity=opts.intensity)
    items, refused, folders, mode = scan(data, ids, opts, report.note)
    report.start(len(items))
    rng = np.random.default_rng(opts.seed)
    splits = {}
    order = rng.permutation(len(items))  # classes mixed in every shard
    for split in SPLIT_NAMES:
        mine = [items[i] for i in order if items[i].split == split]
        if not mine:
            continue
        shards, written, bad = write_split(mine, out, split, spec, opts, report)
        refused += bad
        splits[split] = {**_summary(written, len(folders)), "shards": shards}
    manifest = _manifest(data, out, opts, spec, folders, ids, mode, splits, refused)
    manifest["seconds"] = round(time.perf_counter() - t0, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("wrote %d images in %s to %s (%d refused)", manifest["written"], ", ".join(splits), out, len(refused))
    return manifest


def verify(root: str | Path) -> list[str]:
    """Re-hash every shard; returns one line per shard whose checksum or size differs (empty: all good)."""
    root = Path(root)
    data = json.loads((root / MANIFEST_FILE).read_text())
    problems = []
    for split in data["splits"].values():
        for shard in split["shards"]:
            path = root / shard["file"]
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256_file(path) != shard["sha256"]:
                problems.append(f"{path}: sha256 differs from {MANIFEST_FILE}")
    return problems
