"""Where a resumed run picks up its training stream.

Keras 3's ``BackupAndRestore`` (checked in Keras 3.15.1, ``keras/src/callbacks/backup_and_restore.py``)
saves the weights, optimizer state included, and ``{"epoch": e, "batch": b}``; on restore it
reads only ``epoch`` and starts that epoch again from its first step. Its own data iterator starts
from the beginning too. So a run killed at step ``b`` of epoch ``e`` would train on the start of
the stream again. With a stream that is the same on every run (:func:`kneeoa_train.stream.shard_dataset`,
seeded) the trainer instead skips what was trained on: ``e · steps + b + 1`` batches when the backup
was written mid-epoch (``--backup-steps``), ``e · steps`` when at an epoch's end.

What stays Keras's: the resumed epoch still runs its full ``steps_per_epoch`` (there is no public
way to start ``fit`` inside an epoch), so a run interrupted mid-epoch ends ``b + 1`` steps later
in the stream than an uninterrupted one would, each batch seen once, with a learning-rate
schedule that had already reached its end for those last steps.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

METADATA_FILE = "training_metadata.json"


def batches_done(backup_dir: Path, steps_per_epoch: int, mid_epoch_saves: bool) -> int:
    """Batches of the training stream the backup's weights have been trained on (0: no backup).

    Args:
        mid_epoch_saves: The backup is written every few steps (``--backup-steps``), not at epochs' ends.
    """
    path = Path(backup_dir) / METADATA_FILE
    try:
        meta = json.loads(path.read_text())
        epoch, batch = int(meta["epoch"]), int(meta.get("batch", 0))
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("%s: unreadable (%s); the stream starts from its beginning", path, e)
        return 0
    done = epoch * steps_per_epoch + (batch + 1 if mid_epoch_saves else 0)
    log.info(
        "resuming: epoch %d, %d of its %d steps done; the stream starts after batch %d",
        epoch + 1,
        done - epoch * steps_per_epoch,
        steps_per_epoch,
        done,
    )
    return done
