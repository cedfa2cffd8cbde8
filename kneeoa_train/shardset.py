"""A folder of sharded TFRecords written by ``kneeoa prepare``, described by its ``shards.json``.

Each record is one image after the device's preprocessing (:mod:`edge_infer.preprocess`:
intensity contract, pad to square, resize), stored as ``uint8``, with its class index, its
patient/group id and its file name relative to the source folder. Reading the manifest needs no
TensorFlow; :mod:`kneeoa_train.stream` turns the shards into a ``tf.data`` pipeline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge_infer.errors import DatasetError
from edge_infer.preprocess import PreprocessSpec

MANIFEST_FILE = "shards.json"
FORMAT = "kneeoa-shards/1"
RECORD_FIELDS = {
    "image": "bytes: size×size uint8 grey, row-major, after the preprocessing contract (intensity, pad, resize)",
    "label": "int64: class index (see classes)",
    "group": "bytes: patient/group id (UTF-8)",
    "file": "bytes: the source file, relative to the source folder (UTF-8)",
}


@dataclass(frozen=True)
class ShardSet:
    """What ``shards.json`` says about a shard folder.

    Attributes:
        root: The shard folder.
        spec: The preprocessing contract the stored images went through (``size`` is their side).
        folders, classes, kl_grades: The class map, as :class:`edge_infer.folders.FolderDataset` has it.
        splits: Per split: ``images``, ``groups``, ``counts`` (per class) and ``shards``
            (``file``, ``images``, ``bytes``, ``sha256``).
    """

    root: Path
    spec: PreprocessSpec
    folders: list[str]
    classes: list[str]
    kl_grades: list[int] | None
    splits: dict[str, dict]

    def files(self, split: str) -> list[str]:
        """Absolute paths of a split's shard files."""
        return [str(self.root / s["file"]) for s in self.split(split)["shards"]]

    def split(self, name: str) -> dict:
        if name not in self.splits:
            raise DatasetError(f"{self.root / MANIFEST_FILE}: no {name!r} split (has {', '.join(self.splits)})")
        return self.splits[name]

    def counts(self, split: str) -> list[int]:
        return list(self.split(split)["counts"])

    def check_files(self, split: str) -> None:
        """Every shard of ``split`` is there at the size the manifest records (a full checksum is
        ``kneeoa prepare --verify``'s job: hashing terabytes at each start would cost minutes).

        Raises:
            DatasetError: naming the missing or truncated shard.
        """
        for shard in self.split(split)["shards"]:
            path = self.root / shard["file"]
            if not path.is_file():
                raise DatasetError(f"{path}: shard listed in {MANIFEST_FILE} is missing")
            if path.stat().st_size != shard["bytes"]:
                raise DatasetError(f"{path}: {path.stat().st_size} bytes, {MANIFEST_FILE} says {shard['bytes']}")


def is_shard_folder(path: str | Path) -> bool:
    return (Path(path) / MANIFEST_FILE).is_file()


def read_shard_set(root: str | Path) -> ShardSet:
    """Read ``root/shards.json``.

    Raises:
        DatasetError: no manifest, not JSON, or not a ``kneeoa prepare`` manifest.
    """
    root = Path(root)
    path = root / MANIFEST_FILE
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the shard manifest ({e.strerror or e})") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DatasetError(f"{path}: not a `kneeoa prepare` manifest (format {FORMAT!r} expected)")
    return ShardSet(
        root=root,
        spec=PreprocessSpec.from_dict(data["preprocess"]),
        folders=data["folders"],
        classes=data["classes"],
        kl_grades=data["kl_grades"],
        splits=data["splits"],
    )
