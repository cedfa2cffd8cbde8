"""One knee stored every way, mixed with broken files, through `edge-infer --json --output`: the
same answer per knee, one clean error per broken file, nothing lost."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edge_infer.cli import main as edge_infer

from badfiles import bad_files
from realdata import REAL_DATA
from reencode import LOSSLESS, LOSSY, write_encoding
from synthetic import synthetic_knee

REAL_KNEE = REAL_DATA / "val" / "3" / "9023348L.png"


def _mixed_folder(gray, tmp_path):
    folder = tmp_path / "batch"
    for kind in LOSSLESS + LOSSY:
        write_encoding(gray, kind, folder)
    broken = bad_files(tmp_path / "bad")
    for path in broken:
        if path.is_file():
            shutil.copy(path, folder / f"bad_{path.name}")
    return folder, sum(p.is_file() for p in broken)


def _check_batch(model_args, gray, tmp_path):
    folder, n_bad = _mixed_folder(gray, tmp_path)
    out_csv, out_jsonl = tmp_path / "results.csv", tmp_path / "results.jsonl"
    result = CliRunner().invoke(edge_infer, [*model_args, "--json", "--output", str(out_jsonl), str(folder)])
    assert result.exit_code == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [json.loads(line) for line in out_jsonl.read_text().splitlines()] == records  # nothing lost
    good = {r["input"].split("/")[-1].split(".")[0]: r for r in records if "error" not in r}
    bad = [r for r in records if "error" in r]
    assert len(bad) == n_bad and all("/bad_" in r["input"] for r in bad)
    stderr_errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(stderr_errors) == n_bad and "Traceback" not in result.output
    reference = good["png8"]
    for kind in LOSSLESS:
        r = good[kind]
        assert r["kl_grade"] == reference["kl_grade"], kind
        assert abs(r["oa_probability"] - reference["oa_probability"]) <= 0.02, kind
    for kind in LOSSY:
        assert abs(good[kind]["oa_probability"] - reference["oa_probability"]) <= 0.1, kind
    assert good["dicom_multiframe"]["notes"] == ["multi-frame DICOM: used frame 1 of 2"]
    assert all("PID-0001" not in json.dumps(r) for r in records)  # DICOM identifiers stay out

    again = CliRunner().invoke(edge_infer, [*model_args, "--no-progress", "--output", str(out_csv), str(folder)])
    assert again.exit_code == 1
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(records)
    assert sum(bool(r["error"]) for r in rows) == n_bad
    png8 = next(r for r in rows if r["input"].endswith("png8.png"))
    assert int(png8["kl_grade"]) == reference["kl_grade"] and png8["p_KL0"]


@pytest.mark.slow
def test_mixed_batch_with_the_tiny_model(model_dir, tmp_path):
    # --no-gate: the tiny model's gate knows 40 synthetic knees; this test is about decoding
    _check_batch(["--model", str(model_dir), "--no-gate"], synthetic_knee(3, 192, seed=11), tmp_path)


@pytest.mark.realdata
def test_mixed_batch_with_the_default_model_on_a_real_knee(tmp_path):
    with Image.open(REAL_KNEE) as im:
        gray = np.asarray(im.convert("L"))
    _check_batch([], gray, tmp_path)


def test_output_must_be_jsonl_or_csv(tmp_path):
    result = CliRunner().invoke(edge_infer, ["--output", str(tmp_path / "x.txt"), str(tmp_path)])
    assert result.exit_code == 2 and "must end in .jsonl or .csv" in result.stderr
