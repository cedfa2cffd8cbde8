"""Faults a reliability probe found in the device runtime (issue 13, items 4-15), each reproduced
through the real CLI or the real files it involves, with the shipped model and example knees."""

from __future__ import annotations

import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_infer.batch import expand_inputs, run_batch
from edge_infer.classifier import DISPLAY_MAX_SIDE, Classifier, default_model_dir
from edge_infer.decode import MAX_ASPECT, load_image
from edge_infer.errors import ConfigError, InputImageError
from edge_infer.heatmaps import HeatmapWriter, render_png
from edge_infer.output import ResultFile, csv_safe, terminal_safe

EXAMPLES = sorted((default_model_dir().parent.parent / "examples").glob("*.png"))
KNEE = EXAMPLES[0]


def edge_infer(*args, timeout=120, prefix=(), **kwargs) -> subprocess.CompletedProcess:
    """The real CLI in its own process (real stdout, real file descriptors)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    return subprocess.run([*prefix, sys.executable, "-m", "edge_infer", *map(str, args)], text=True, timeout=timeout,
                          env=env, **pipes)  # fmt: skip


@pytest.fixture(scope="module")
def classifier():
    with Classifier(format="onnx-int8") as clf:
        yield clf


# --- results lost ---------------------------------------------------------------------------------


def test_a_heatmap_that_cannot_be_written_keeps_the_grade(classifier, tmp_path):
    heatmaps = HeatmapWriter(tmp_path / "maps")
    (tmp_path / "maps").rmdir()  # the folder went away (a USB stick pulled) after the run started
    results = list(run_batch(classifier, [KNEE, EXAMPLES[1]], heatmaps=heatmaps))
    assert all(r.ok and r.heatmap is None for r in results)
    for r in results:
        record = r.to_record()
        assert record["kl_grade"] is not None and "cannot write its heatmap" in record["heatmap_error"]


def test_heatmaps_never_overwrite_across_runs_nor_follow_a_planted_link(tmp_path):
    maps, victim = tmp_path / "maps", tmp_path / "victim.txt"
    victim.write_text("keep me")
    maps.mkdir()
    (maps / "knee_gradcam.png").symlink_to(victim)
    first, second = HeatmapWriter(maps), HeatmapWriter(maps)  # two runs into one folder
    paths = [w.write_png("a/knee.png", tag) for w, tag in ((first, b"one"), (second, b"two"), (first, b"three"))]
    assert [p.name for p in paths] == ["knee_2_gradcam.png", "knee_3_gradcam.png", "knee_4_gradcam.png"]
    assert [p.read_bytes() for p in paths] == [b"one", b"two", b"three"]
    assert victim.read_text() == "keep me"
    assert not list(maps.glob(".*.part"))  # no temporary file left behind


def test_records_point_at_their_own_heatmaps_when_two_runs_share_a_folder(tmp_path):
    maps, env = tmp_path / "maps", {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    commands = []
    for run in range(2):  # each run: three different knees, all named knee.png, assigned differently per run
        inputs = []
        for i in range(len(EXAMPLES)):
            folder = tmp_path / f"run{run}" / str(i)
            folder.mkdir(parents=True)
            inputs.append(shutil.copy(EXAMPLES[(i + run) % 3], folder / "knee.png"))
        commands.append([sys.executable, "-m", "edge_infer", "--json", "--heatmap-dir", str(maps), *map(str, inputs)])
    runs = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True, env=env) for c in commands]  # at the same time
    records = [json.loads(line) for run in runs for line in run.communicate(timeout=120)[0].splitlines()]
    assert len(records) == 6 and len({r["heatmap"] for r in records}) == 6
    with Classifier() as clf:  # each file holds the overlay of its own record's knee, byte for byte
        for r in records:
            assert Path(r["heatmap"]).read_bytes() == render_png(clf.predict(r["input"])), r


def _limit_file_size(limit: int):
    def set_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


def test_a_full_disk_leaves_whole_records_and_one_line(tmp_path):
    out = tmp_path / "results.jsonl"
    run = edge_infer("--json", "--output", out, *EXAMPLES, preexec_fn=_limit_file_size(700))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert len(run.stdout.splitlines()) == 3  # every result still on stdout
    text = out.read_text()
    assert text == "" or text.endswith("\n")  # no truncated record
    saved = [json.loads(line) for line in text.splitlines()]
    assert saved == [json.loads(line) for line in run.stdout.splitlines()][: len(saved)]
    errors = [line for line in run.stderr.splitlines() if "cannot write results" in line]
    assert len(errors) == 1 and str(out) in errors[0] and f"{len(saved)} complete records" in errors[0]


def test_stdout_to_a_full_device_is_one_line_not_a_traceback(tmp_path):
    with open("/dev/full", "w") as full:
        run = edge_infer(KNEE, stdout=full)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cannot write to standard output (No space left on device)" in run.stderr
    with open("/dev/full", "w") as full:  # with --output, the batch goes on into the file
        kept = edge_infer("--output", tmp_path / "r.jsonl", *EXAMPLES, stdout=full)
    assert kept.returncode == 1 and len((tmp_path / "r.jsonl").read_text().splitlines()) == 3


def _obeying_permissions() -> tuple[str, ...]:
    """A command prefix under which file permissions apply: root reads everything, so as root
    run without the capabilities that override them."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return ("setpriv", "--bounding-set", "-dac_override,-dac_read_search")


def test_unreadable_files_and_folders_are_per_file_errors(tmp_path):
    prefix = _obeying_permissions()
    shutil.copy(KNEE, tmp_path / "good.png")
    shutil.copy(KNEE, tmp_path / "locked.png")
    (tmp_path / "closed").mkdir()
    shutil.copy(KNEE, tmp_path / "closed" / "inside.png")
    (tmp_path / "locked.png").chmod(0)
    (tmp_path / "closed").chmod(0)
    try:
        run = edge_infer("--json", tmp_path / "locked.png", tmp_path / "good.png", prefix=prefix)
        assert run.returncode == 1, run.stderr
        records = [json.loads(line) for line in run.stdout.splitlines()]
        assert [("error" in r, r.get("kl_grade") is not None) for r in records] == [(True, False), (False, True)]
        assert "locked.png: cannot read (Permission denied)" in run.stderr
        folder = edge_infer("--json", tmp_path, prefix=prefix)
        assert "closed: cannot list this folder (Permission denied); skipped" in folder.stderr
        assert sum("kl_grade" in line for line in folder.stdout.splitlines()) == 1 and folder.returncode == 1
    finally:
        (tmp_path / "closed").chmod(0o755)


def test_names_that_are_not_utf8_reach_the_csv(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    odd = os.fsencode(folder) + b"/knee\xff\xfe.png"
    shutil.copy(KNEE, odd)
    run = edge_infer("--output", tmp_path / "r.csv", folder, os.fsdecode(odd))
    assert run.returncode == 0, run.stderr
    rows = (tmp_path / "r.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3 and all("knee\\xff\\xfe.png" in row for row in rows[1:])


def test_folder_search_reports_what_it_passes_over(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(KNEE, folder / "sub" / "knee.png")
    (folder / "gone.png").symlink_to(tmp_path / "missing.png")
    (folder / "sub" / "loop").symlink_to(folder)
    os.mkfifo(folder / "pipe.png")
    (folder / "notes.txt").write_text("not an image, not reported")
    (folder / "latest").symlink_to("sub")  # a second way to a folder: searched once, not an error
    found = list(expand_inputs([folder]))
    errors = {Path(e.path).name: e.problem for e in found if isinstance(e, InputImageError)}
    assert [p.name for p in found if isinstance(p, Path)] == ["knee.png"]
    assert errors == {
        "gone.png": "broken link (its target is missing); skipped",
        "loop": "link loops back to a folder it is inside; skipped",
        "pipe.png": "not a regular file (a FIFO, device or socket); skipped",
    }


# --- hangs and memory -----------------------------------------------------------------------------


def test_a_fifo_or_a_link_to_an_endless_device_is_refused_not_read(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.dcm").symlink_to("/dev/zero")
    run = edge_infer(tmp_path / "pipe.png", tmp_path / "zero.dcm", KNEE, timeout=60)
    assert run.returncode == 1 and len(run.stdout.splitlines()) == 1
    for name in ("pipe.png", "zero.dcm"):
        assert f"{name}: not a regular file (a FIFO, device or socket)" in run.stderr


@pytest.mark.parametrize("size", [(100_000, 32), (40, 200_000)])
def test_absurd_aspect_ratios_are_refused_before_padding(classifier, tmp_path, size):
    path = tmp_path / "strip.png"
    Image.new("L", size, 128).save(path)
    assert path.stat().st_size < 100_000
    with pytest.raises(InputImageError, match=f"no radiograph of a knee.*over {MAX_ASPECT:.0f}:1"):
        load_image(path)
    with pytest.raises(InputImageError, match="no radiograph"):
        classifier.prepare(np.zeros(size[::-1], np.uint8))


def test_results_keep_large_images_at_a_bounded_size(classifier):
    big = np.asarray(Image.open(KNEE).resize((4096, 4096)))
    prediction = classifier.infer(classifier.prepare(big), heatmap=True)
    assert prediction.image.shape == prediction.cam.shape == (DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE)


def test_thread_counts_are_bounded(tmp_path):
    run = edge_infer("--threads", "5000", KNEE)
    assert run.returncode == 2 and "5000 is not in the range 1<=x<=64" in run.stderr
    with pytest.raises(ConfigError, match="threads must be a whole number from 1 to 64"):
        Classifier(threads=5000)


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_multi_frame_images_say_which_frame_was_used(tmp_path, fmt):
    knee = Image.open(KNEE)
    path = tmp_path / f"knee.{fmt.lower()}"
    knee.save(path, format=fmt, save_all=True, append_images=[knee.rotate(90), knee.rotate(180)])
    gray, notes = load_image(path)
    assert notes == [f"multi-frame {fmt}: used frame 1 of 3"] and gray.shape == np.asarray(knee).shape


def test_a_dicom_with_a_nan_rescale_slope_is_an_error_not_a_black_knee(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from reencode import write_encoding

    path = write_encoding(np.asarray(Image.open(KNEE)), "dicom_rescaled", tmp_path)
    with warnings.catch_warnings():  # pydicom warns that NaN is no valid decimal string: the point
        warnings.simplefilter("ignore", UserWarning)
        ds = pydicom.dcmread(path)
        ds.RescaleSlope, ds.RescaleIntercept = "NaN", "0"
        ds.save_as(path)
        with pytest.raises(InputImageError, match="non-finite"):
            load_image(path)


# --- output safety --------------------------------------------------------------------------------


def test_names_cannot_spoof_the_terminal_or_run_in_a_spreadsheet(tmp_path):
    names = ["knee\x1b[2K\rfake.png", "=HYPERLINK(1).png"]
    for name in names:
        shutil.copy(KNEE, tmp_path / name)
    run = edge_infer("--output", "r.csv", *names, cwd=tmp_path)
    assert run.returncode == 0 and "\x1b" not in run.stdout and "\r" not in run.stdout
    assert run.stdout.startswith("knee\\x1b[2K\\rfake.png | KL ") and len(run.stdout.splitlines()) == 2
    with open(tmp_path / "r.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [row[0] for row in rows[1:]] == ["knee\x1b[2K\rfake.png", "'=HYPERLINK(1).png"]
    assert csv_safe("=1+1") == "'=1+1" and csv_safe("-2") == "'-2" and csv_safe("knee.png") == "knee.png"
    assert terminal_safe("a\u202eb\nc") == "a\\u202eb\\nc"


def test_a_result_file_written_past_its_limit_keeps_whole_records(tmp_path):
    path = tmp_path / "r.csv"
    pid = os.fork()
    if pid == 0:  # child: write records under a 400-byte limit, report how many were kept
        code = 0
        try:
            _limit_file_size(400)()
            f = ResultFile(path, ["KL0", "KL1"])
            for i in range(20):
                f.write({"input": f"knee{i}.png", "label": "Normal", "probabilities": {"KL0": 0.5, "KL1": 0.5}})
        except Exception as e:
            code = 3 if "cannot write results" in str(e) else 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    text = path.read_text()
    assert text.endswith("\n") and len(text) <= 400 and text.splitlines()[-1].startswith("knee")


# --- found by a review ------------------------------------------------------------------------------


def test_an_unusable_argument_path_is_a_per_file_error(tmp_path):
    run = edge_infer(tmp_path / ("a" * 300 + ".png"), KNEE)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cannot read (File name too long)" in run.stderr and len(run.stdout.splitlines()) == 1


def test_a_csv_output_that_cannot_take_its_header_is_one_line(tmp_path):
    (tmp_path / "full.csv").symlink_to("/dev/full")
    run = edge_infer("--output", tmp_path / "full.csv", KNEE)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "full.csv: cannot write results (No space left on device)" in run.stderr


def test_a_closed_stdout_is_one_line(tmp_path):
    run = edge_infer(KNEE, stdout=None, preexec_fn=lambda: os.close(1))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "cannot write to standard output" in run.stderr


def test_with_both_outputs_gone_the_batch_stops(tmp_path):
    (tmp_path / "full.jsonl").symlink_to("/dev/full")
    with open("/dev/full", "w") as full:
        run = edge_infer("--output", tmp_path / "full.jsonl", *EXAMPLES, stdout=full)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    lines = run.stderr.splitlines()  # the file fails first, then stdout: one line each, then it stops
    assert sum("cannot write results" in line for line in lines) == 1
    assert sum("cannot write to standard output" in line for line in lines) == 1


def test_heatmaps_respect_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        path = HeatmapWriter(tmp_path / "maps").write_png("knee.png", b"png")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_non_finite_model_output_is_no_answer():
    from edge_infer.runtimes import device_probabilities

    for raw in ([np.nan, 0.2, 0.2, 0.3, 0.3], [np.inf, 0, 0, 0, 0]):
        with pytest.raises(ValueError, match="not finite"):
            device_probabilities(np.array(raw))
    assert device_probabilities(np.zeros(5)).tolist() == [0.2] * 5  # an all-zero int8 row stays uniform
