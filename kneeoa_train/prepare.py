"""``kneeoa prepare``: a class-per-folder dataset → sharded TFRecords, once, through the device's
own decoding and preprocessing (:mod:`edge_infer.decode`, :mod:`edge_infer.preprocess`), so
training reads exactly the pixels the device would compute and the two cannot drift.

Two layouts are accepted. ``DATA/train``, ``DATA/val`` (and optionally ``DATA/test``), each with
class folders, keep the user's split, and are refused if one patient id appears in two of them.
``DATA`` with class folders alone is split by patient (:mod:`kneeoa_train.splits`).

Scanning, splitting and the manifest need no TensorFlow; only writing TFRecords imports it, which
is why this lives in ``kneeoa_train`` (the one consumer of shards is training, which needs it).

Memory stays flat in the dataset's size: the dataset is walked twice and never listed. The first
walk (:mod:`kneeoa_train.plan`) counts images per class folder and splits the patients (9 bytes
each); the second walks the class folders side by side, drawing from each in proportion to what it
has left, so every shard holds every class, through a bounded shuffle buffer, and images are
decoded and written ``chunk`` at a time.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_infer.errors import DatasetError, InputImageError, failure_message
from edge_infer.labels import classes_from_folders
from edge_infer.manifest import sha256_file
from edge_infer.preprocess import PreprocessSpec, prepare_file

from .memory import cap_malloc_arenas
from .plan import DatasetPlan, Item, labelled_images, plan_dataset
from .shardset import FORMAT, MANIFEST_FILE, RECORD_FIELDS
from .splits import DEFAULT_FRACTIONS, DEFAULT_ID_PATTERN, SPLIT_NAMES, GroupIds, group_key

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


LATE = "appeared while prepare ran; not written"
SHUFFLE_WINDOW = 4096
"""Images held at once to shuffle the order they are written in (a few hundred bytes each)."""


def interleaved_items(
    plan: DatasetPlan, ids: GroupIds, seed: int, refuse: Callable[[Path, str], None]
) -> Iterator[Item]:
    """The second walk: every usable image once, as an :class:`Item`, in a seeded order.

    Per split folder, the class folders are walked side by side and each next image is drawn from
    a class with probability proportional to the images it has left (so classes are mixed through
    every shard), then passed through a shuffle window of :data:`SHUFFLE_WINDOW` images. An image
    the first walk did not count (added in between) is passed to ``refuse(path, problem)``.
    """
    rng = np.random.default_rng(seed)
    window: list[Item] = []
    for split, root in plan.roots.items():
        walks = [labelled_images(root / name, label, plan.data, ids, None) for label, name in enumerate(plan.folders)]
        left = np.asarray([plan.sizes[(split, label)] for label in range(len(walks))], np.float64)
        while left.sum() > 0:
            label = int(np.searchsorted(np.cumsum(left), rng.random() * left.sum(), side="right"))
            path, group = next(walks[label], (None, None))
            if path is None:  # fewer images than the first walk counted (removed in between)
                left[label] = 0
                continue
            left[label] -= 1
            code = plan.table.code_of(group_key(group, seed))
            if code < 0:
                refuse(path, LATE)
                continue
            item = Item(path, path.relative_to(plan.data).as_posix(), SPLIT_NAMES[code], label, group)
            if len(window) < SHUFFLE_WINDOW:
                window.append(item)
                continue
            j = int(rng.integers(len(window)))
            window[j], item = item, window[j]
            yield item
        for walk in walks:  # more images than the first walk counted
            for path, _ in walk:
                refuse(path, LATE)
    rng.shuffle(window)
    yield from window


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
        return prepare_file(item.path, spec)[0]
    except InputImageError as e:
        return e


class _SplitTally:
    """Per split, as it is written: images per class, and which patients got at least one image."""

    def __init__(self, plan: DatasetPlan, seed: int):
        self.plan, self.seed = plan, seed
        self.counts = {s: np.zeros(len(plan.folders), np.int64) for s in SPLIT_NAMES}
        self.has_image = np.zeros(len(plan.table.keys), bool)

    def add(self, item: Item) -> None:
        self.counts[item.split][item.label] += 1
        self.has_image[self.plan.table.index_of(group_key(item.group, self.seed))] = True

    def summary(self, split: str) -> dict:
        code = SPLIT_NAMES.index(split)
        return {
            "images": int(self.counts[split].sum()),
            "groups": int(np.count_nonzero(self.has_image & (self.plan.table.codes == code))),
            "counts": self.counts[split].tolist(),
        }


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_all(plan: DatasetPlan, items: Iterator[Item], out: Path, spec: PreprocessSpec, opts: PrepareOptions, report):
    """Decode, preprocess and write every item to its split's shards, ``chunk`` images at a time.

    Returns:
        ``({split: summary with shards}, refused)``.
    """
    writers = {s: _ShardWriter(out, s, opts.shard_size) for s in SPLIT_NAMES}
    tally, refused = _SplitTally(plan, opts.seed), []
    with ThreadPoolExecutor(opts.workers) as pool:
        for part in _chunks(items, max(64, opts.workers * 32)):
            for item, image in zip(part, pool.map(lambda it: _load(it, spec), part), strict=True):
                if isinstance(image, InputImageError):
                    refused.append({"file": image.path, "problem": image.problem})
                    report.note(failure_message(item.path, image))
                else:
                    writers[item.split].write(_example(image, item))
                    tally.add(item)
            report.advance(len(part))
    splits = {}
    for split, writer in writers.items():
        writer.close()
        if writer.shards:
            splits[split] = {**tally.summary(split), "shards": writer.shards}
    return splits, refused


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
        DatasetError: see :func:`kneeoa_train.plan.plan_dataset`; also an ``out`` that already holds shards.
    """
    data, out = Path(data), Path(out)
    if (out / MANIFEST_FILE).exists() or any((out / s).exists() for s in SPLIT_NAMES):
        raise DatasetError(f"{out}: already holds shards; choose another --out")
    t0 = time.perf_counter()
    cap_malloc_arenas()
    ids = GroupIds(opts.id_pattern, opts.ids_csv)
    spec = PreprocessSpec(size=opts.size, intensity=opts.intensity)
    plan = plan_dataset(data, ids, opts.fractions, opts.seed, report.note)
    report.start(plan.total)
    late: list[dict] = []

    def refuse_late(path: Path, problem: str) -> None:
        late.append({"file": str(path), "problem": problem})
        report.note(f"{path}: {problem}")

    items = interleaved_items(plan, ids, opts.seed, refuse_late)
    splits, refused = write_all(plan, items, out, spec, opts, report)
    refused = plan.refused + late + refused
    folders, mode = plan.folders, plan.mode
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
