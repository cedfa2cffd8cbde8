"""edge-infer on bad inputs: one clear line per bad file, the batch goes on, exit 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge_infer.cli import main as edge_infer


@pytest.fixture
def mixed_batch(tmp_path, knee_png) -> list[Path]:
    folder = tmp_path / "with spaces"
    folder.mkdir()
    good = folder / "good knee.png"
    shutil.copy(knee_png, good)
    text = folder / "notes.png"
    text.write_text("not an image\n")
    empty = folder / "empty.png"
    empty.touch()
    missing = folder / "missing.png"
    return [text, good, empty, missing]


def test_bad_inputs_are_reported_and_the_batch_goes_on(model_dir, mixed_batch):
    result = CliRunner().invoke(edge_infer, ["--model", str(model_dir), "--json", *map(str, mixed_batch)])
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in records] == [str(p) for p in mixed_batch]
    text, good, empty, missing = records
    assert "label" in good and "error" not in good
    assert "not an image" in text["error"]
    assert "empty file" in empty["error"]
    assert "no such file" in missing["error"]
    errors = result.stderr.splitlines()
    assert len(errors) == 3
    for line, path in zip(errors, [mixed_batch[0], mixed_batch[2], mixed_batch[3]], strict=True):
        assert line.startswith("error: ") and str(path) in line
    assert "Traceback" not in result.output


def test_folder_without_images_is_an_error(model_dir, knee_png, tmp_path):
    empty = tmp_path / "no knees here"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    result = CliRunner().invoke(edge_infer, ["--model", str(model_dir), "--json", str(empty), str(knee_png)])
    assert result.exit_code == 1
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["input"] == str(empty) and "no image files" in first["error"]
    assert second["input"] == str(knee_png) and "label" in second


def test_readable_output_and_success_exit(model_dir, knee_png):
    result = CliRunner().invoke(edge_infer, ["--model", str(model_dir), str(knee_png)])
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(str(knee_png)) and "P(OA)" in line and "KL " in line


def test_bad_flags_exit_2(model_dir, knee_png):
    result = CliRunner().invoke(edge_infer, ["--model", str(model_dir), "--format", "pytorch", str(knee_png)])
    assert result.exit_code == 2
    assert "pytorch" in result.output


def test_missing_model_dir_is_one_line_exit_1(tmp_path, knee_png):
    result = CliRunner().invoke(edge_infer, ["--model", str(tmp_path / "nowhere"), str(knee_png)])
    assert result.exit_code == 1
    assert "model directory not found" in result.output and "Traceback" not in result.output


def _installed(name: str) -> str:
    script = Path(sys.executable).with_name(name)
    if not script.exists():
        pytest.skip(f"{name} is not installed beside {sys.executable}")
    return str(script)


def test_installed_script_runs_and_stays_quiet(model_dir, knee_png, tmp_path):
    """The console script, in a subprocess: JSON on stdout, no runtime banner on stderr."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [
            _installed("edge-infer"),
            "--model",
            str(model_dir),
            "--format",
            "tflite-int8",
            "--json",
            "--heatmap-dir",
            str(tmp_path / "maps"),
            str(knee_png),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert Path(record["heatmap"]).is_file()
    assert proc.stderr == ""  # XNNPACK's INFO banner is silenced without --verbose


@pytest.mark.parametrize("fmt", ["onnx-int8", "tflite-int8"])
def test_edge_infer_never_imports_the_training_stack(model_dir, knee_png, fmt):
    """A fresh process runs the whole CLI, then lists what got imported."""
    code = (
        "import sys, json\n"
        "from edge_infer.cli import main\n"
        f"try:\n    main(['--json', '--format', {fmt!r}, '--model', {str(model_dir)!r}, {str(knee_png)!r}])\n"
        "except SystemExit:\n    pass\n"
        "banned = {'tensorflow', 'keras', 'tf_keras', 'tf2onnx', 'onnx', 'kneeoa_train', 'kneeoa_convert', 'kneeoa_bench', 'kneeoa'}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & banned)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == []
    assert any('"label"' in line for line in lines[:-1]), proc.stdout + proc.stderr


def test_heatmaps_of_same_named_files_do_not_overwrite(model_dir, knee_png, tmp_path):
    for side in ("left", "right"):
        (tmp_path / side).mkdir()
        shutil.copy(knee_png, tmp_path / side / "knee.png")
    maps = tmp_path / "maps"
    result = CliRunner().invoke(
        edge_infer,
        [
            "--model",
            str(model_dir),
            "--json",
            "--heatmap-dir",
            str(maps),
            str(tmp_path / "left"),
            str(tmp_path / "right"),
        ],
    )
    assert result.exit_code == 0, result.output
    written = {json.loads(line)["heatmap"] for line in result.stdout.splitlines()}
    assert len(written) == 2 and all(Path(p).is_file() for p in written)


def test_long_batches_show_progress_on_stderr_only(model_dir, knee_png, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(20):
        shutil.copy(knee_png, folder / f"knee_{i:02d}.png")
    (folder / "knee_broken.png").write_text("oops")
    result = CliRunner().invoke(edge_infer, ["--model", str(model_dir), "--json", str(folder)])
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]  # stdout is JSON only
    assert len(records) == 21 and sum("error" in r for r in records) == 1
    stderr = result.stderr.splitlines()
    assert stderr[-1] == "edge-infer 21/21"
    assert sum(line.startswith("error: ") and "knee_broken.png" in line for line in stderr) == 1
    quiet = CliRunner().invoke(edge_infer, ["--model", str(model_dir), "--json", "--no-progress", str(folder)])
    assert [line for line in quiet.stderr.splitlines() if not line.startswith("error: ")] == []
