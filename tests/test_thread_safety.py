"""One Classifier shared by several threads (a web server's workers) gives each knee exactly the
result it gets alone: probabilities, grade, label, gate status and heatmap, for every format."""

from __future__ import annotations

import importlib.util
import os
import threading
import time

import numpy as np
import pytest

from edge_infer import Classifier, default_model_dir
from edge_infer.formats import FORMAT_NAMES, FORMATS, Engine
from edge_infer.manifest import load_manifest
from edge_infer.quiet import native_output_to

from synthetic import synthetic_knee

THREADS = 4
ROUNDS = 3
LITERT = importlib.util.find_spec("ai_edge_litert") or importlib.util.find_spec("tflite_runtime")


def _knees(n: int = 16) -> list[np.ndarray]:
    # different grades and shapes, so every knee has an answer of its own
    return [synthetic_knee(i % 5, 96 + 8 * (i % 6), seed=300 + i) for i in range(n)]


def _answer(p) -> tuple:
    return (
        p.label,
        p.kl_grade,
        p.oa_probability,
        tuple(p.probabilities.items()),
        p.class_index,
        p.gate,
        p.cam.tobytes(),
    )


def _shared_run(clf: Classifier, knees: list[np.ndarray]) -> list[list[tuple]]:
    """Each thread classifies every knee, starting at its own offset, all starting at once."""
    results: list[list[tuple] | None] = [None] * THREADS
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        try:
            start.wait()
            order = [(t * 5 + i) % len(knees) for i in range(len(knees) * ROUNDS)]
            results[t] = [(i, _answer(clf.predict(knees[i]))) for i in order]
        except BaseException as e:  # re-raised in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    return results


def _check_shared_equals_sequential(model_dir, fmt: str) -> None:
    knees = _knees()
    with Classifier(model_dir, format=fmt, gate="report") as clf:
        alone = [_answer(clf.predict(k)) for k in knees]
        assert alone == [_answer(clf.predict(k)) for k in knees]  # deterministic alone
        assert len(set(alone)) == len(knees)  # a swap between two knees would show
        shared = _shared_run(clf, knees)
    wrong = [(t, i) for t, rows in enumerate(shared) for i, answer in rows if answer != alone[i]]
    assert not wrong, f"{fmt}: {len(wrong)} of {THREADS * ROUNDS * len(knees)} shared results differ from sequential"


SHIPPED = list(load_manifest(default_model_dir()).artifacts)


@pytest.mark.parametrize("fmt", SHIPPED)
def test_threads_sharing_the_shipped_classifier_get_their_own_results(fmt):
    if FORMATS[fmt].engine is Engine.LITERT and not LITERT:
        pytest.skip("LiteRT is not installed")
    _check_shared_equals_sequential(default_model_dir(), fmt)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_threads_sharing_a_classifier_get_their_own_results_in_every_format(model_dir, fmt):
    if FORMATS[fmt].engine is Engine.LITERT and not LITERT:
        pytest.skip("LiteRT is not installed")
    _check_shared_equals_sequential(model_dir, fmt)


def test_concurrent_native_redirects_restore_stderr():
    """Two Classifiers opened at once (each silencing LiteRT's banner on fd 2) leave fd 2 as it was."""
    before = os.fstat(2)
    inside = threading.Event()

    def first() -> None:
        with native_output_to(os.devnull):
            inside.set()
            time.sleep(0.2)  # the second thread redirects meanwhile, and restores after this one

    def second() -> None:
        inside.wait()
        with native_output_to(os.devnull):
            time.sleep(0.4)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
