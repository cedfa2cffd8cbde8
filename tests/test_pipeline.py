"""Batches: decoding ahead in a thread keeps input order, puts each failure in its place, stops
when the caller stops, and gives exactly what one-at-a-time prediction gives."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_infer.classifier import Classifier
from edge_infer.cli import main as edge_infer
from edge_infer.errors import InputImageError
from edge_infer.overlay import heatmap_figure
from edge_infer.pipeline import prefetched


def _square_or_fail(n: int) -> int:
    if n % 3 == 0:
        raise ValueError(f"bad {n}")
    time.sleep(0.001 * (n % 2))  # uneven work, so results finish out of step with requests
    return n * n


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_prefetched_keeps_order_and_puts_errors_in_place(depth):
    out = list(prefetched(_square_or_fail, range(20), depth))
    assert [item for item, _ in out] == list(range(20))
    for n, result in out:
        if n % 3 == 0:
            assert isinstance(result, ValueError) and str(result) == f"bad {n}"
        else:
            assert result == n * n


def test_prefetched_runs_ahead_in_another_thread_and_stops_with_the_caller():
    started: list[int] = []
    threads: set[str] = set()
    release = threading.Event()

    def work(n):
        started.append(n)
        threads.add(threading.current_thread().name)
        if n >= 1:
            release.wait(5)  # item 1 stays in progress, items 2 and 3 stay queued behind it
        return n

    gen = prefetched(work, range(1000), depth=3)
    assert next(gen) == (0, 0)
    deadline = time.monotonic() + 5
    while len(started) < 2 and time.monotonic() < deadline:  # the worker picks up item 1 and blocks in it
        time.sleep(0.01)
    closer = threading.Thread(target=gen.close)
    closer.start()  # close() cancels what is queued, then waits for item 1
    time.sleep(0.2)
    release.set()
    closer.join(5)
    assert not closer.is_alive()
    assert started == [0, 1]  # queued items never ran once the caller stopped
    assert all(t.startswith("edge-infer-prefetch") for t in threads)
    assert not any(t.name.startswith("edge-infer-prefetch") for t in threading.enumerate())  # no thread outlives it
    assert list(prefetched(work, [0], depth=0)) == [(0, 0)]
    assert threading.current_thread().name in threads  # depth 0 works in line


def test_keyboard_interrupt_is_not_swallowed():
    def interrupt(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        list(prefetched(interrupt, range(3), depth=1))


@pytest.mark.slow
def test_predict_many_equals_predict_one_by_one(model_dir, knee_png, tmp_path):
    flipped = tmp_path / "flipped.png"
    Image.open(knee_png).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    known = InputImageError(tmp_path / "empty folder", "folder holds no image files")
    items = [knee_png, broken, flipped, known, knee_png]
    with Classifier(model_dir) as clf:
        batch = list(clf.predict_many(items, heatmap=True))
        assert [r.item for r in batch] == items
        for r in batch:
            item, result = r.item, r.prediction
            if item in (broken, known):
                assert (
                    isinstance(r.exception, InputImageError) and str(item if item is broken else known.path) in r.error
                )
                assert result is None
                continue
            single = clf.predict(item, heatmap=True)
            assert result.probabilities == single.probabilities and result.label == single.label
            np.testing.assert_array_equal(result.cam, single.cam)
        assert (
            batch[0].prediction.probabilities != batch[2].prediction.probabilities
        )  # the flipped knee is really another input


@pytest.mark.slow
def test_batch_heatmaps_match_inputs_and_a_taken_name_is_passed_over(model_dir, knee_png, tmp_path):
    folder = tmp_path / "knees"
    folder.mkdir()
    names = [f"knee_{i:02d}.png" for i in range(12)]
    for i, name in enumerate(names):
        Image.open(knee_png).rotate(i * 3).save(folder / name)
    out = tmp_path / "heatmaps"
    (out / "knee_05_gradcam.png").mkdir(parents=True)  # something already has that overlay's name
    result = CliRunner().invoke(
        edge_infer, ["--model", str(model_dir), "--no-gate", "--json", "--heatmap-dir", str(out), str(folder)]
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == [str(folder / n) for n in names]
    assert (out / "knee_05_gradcam.png").is_dir()  # left as it was
    with Classifier(model_dir, gate="report") as clf:
        for r in records:
            source = Path(r["input"])
            taken = source.stem == "knee_05"
            assert r["heatmap"] == str(out / f"{source.stem}{'_2' if taken else ''}_gradcam.png")
            single = clf.predict(source)
            assert r["probabilities"] == single.to_record(r["input"])["probabilities"]
            with Image.open(r["heatmap"]) as im:  # this knee's own overlay, pixel for pixel
                np.testing.assert_array_equal(np.asarray(im), heatmap_figure(single.image, single.cam))
    shutil.rmtree(out)


class _CtrlC:
    """An input whose reading is interrupted, as Ctrl-C would interrupt it."""

    def __array__(self, *args, **kwargs):
        raise KeyboardInterrupt


@pytest.mark.slow
def test_ctrl_c_hands_over_every_finished_result_with_its_heatmap(model_dir, knee_png, tmp_path):
    from edge_infer.batch import HeatmapWriter, run_batch

    items = [knee_png] * 3 + [_CtrlC(), knee_png]
    got = []
    with Classifier(model_dir) as clf, pytest.raises(KeyboardInterrupt):
        for result in run_batch(clf, items, heatmaps=HeatmapWriter(tmp_path / "maps")):
            got.append(result.to_record())
    assert len(got) == 3 and all(isinstance(r, dict) for r in got)
    assert [Path(r["heatmap"]).name for r in got] == ["knee_gradcam.png", "knee_2_gradcam.png", "knee_3_gradcam.png"]
    assert all(Path(r["heatmap"]).is_file() for r in got)
    assert not any(t.name.startswith("edge-infer-") for t in threading.enumerate())
