"""Record a model directory's self-test (:mod:`edge_infer.selftest`) in its manifest.

``kneeoa convert`` calls :func:`record_self_test` once the manifest is written, and again (for
the gate section) when the input gate is recorded; ``kneeoa selftest DIR`` calls it on an
existing model directory (one converted before self-tests existed, or after a deliberate edit of
its manifest). Needs only the edge runtime: no TensorFlow, no retraining, no file but the
manifest rewritten.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edge_infer import selftest
from edge_infer.classifier import Classifier
from edge_infer.formats import FORMATS
from edge_infer.manifest import MANIFEST_FILE, load_manifest
from edge_infer.runtimes import open_runtime

from .errors import ConvertError

log = logging.getLogger(__name__)


def record_self_test(
    model_dir: str | Path, command: str | None = None, changed: tuple[str, ...] | None = None
) -> tuple[dict, list[str]]:
    """Run every format of ``model_dir`` on its self-test input, write the ``self_test`` block
    into the manifest, and check that the device loads every format with it.

    Args:
        command: The command line recorded in the block.
        changed: The contract sections the caller has just rewritten (``("gate",)`` after a gate
            fit). If the manifest already has a self-test and any *other* section differs from
            what it recorded, nothing is written: that edit was not made by the caller. ``None``
            re-records whatever the manifest now says (``kneeoa selftest``: a deliberate edit).

    Returns:
        The block, and the contract sections that differ from the previous self-test's (all of
        them when there was none).

    Raises:
        ConvertError: another section changed than ``changed`` allows.
        KneeOAError: the model directory cannot be loaded (schema, checksums, engines).
    """
    model_dir = Path(model_dir)
    m = load_manifest(model_dir)
    digests = selftest.contract_digests(m.data)
    before = (m.data.get("self_test") or {}).get("contract", {})
    differ = [k for k in selftest.CONTRACT if before.get(k) != digests[k]]
    unexpected = [k for k in differ if before and changed is not None and k not in changed]
    if unexpected:
        raise ConvertError(
            f"{model_dir / MANIFEST_FILE}: {', '.join(unexpected)} changed since its self-test was recorded; "
            f"if that edit is meant, re-record with `kneeoa selftest {model_dir}`"
        )
    size, ch = m.preprocess.size, m.preprocess.channels
    shapes = {"probabilities": (None, len(m.classes)), "features": (None, *m.feature_shape)}
    formats = {}
    for fmt, art in m.artifacts.items():
        content = m.artifact_bytes(fmt)
        path = model_dir / art.file
        with open_runtime(FORMATS[fmt], path, m.outputs, (None, size, size, ch), shapes, content=content) as rt:
            formats[fmt] = selftest.record(m, rt, fmt)
        e = formats[fmt]
        log.info("self-test %s: seed %d, top %s, P(OA) %s, %s", fmt, e["input"]["seed"], e["top_class"],
                 e["oa_probability"], e["label"])  # fmt: skip
    block = {
        "method": selftest.METHOD,
        "generator": selftest.GENERATOR,
        "tolerance": selftest.TOLERANCE,
        "contract": digests,
        "formats": formats,
        "command": command or "kneeoa_convert.selftest.record_self_test (called from Python)",
    }
    path = model_dir / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["self_test"] = block
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    for fmt in m.artifacts:  # what we wrote must be what the device accepts
        Classifier(model_dir, format=fmt, gate="off").close()
    return block, (differ if before else list(selftest.CONTRACT))
