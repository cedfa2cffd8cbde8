"""A hospital device makes no network call and writes nothing it was not asked to: checked with
strace on batches long enough for onnxruntime's telemetry to start (about 9 s in), for the CLI
and the Python API, both engines, with a fresh HOME and TMPDIR that must stay empty."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_infer.classifier import default_model_dir

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.png"))
MODEL = default_model_dir()
SECONDS = 20
"""How long each traced run lasts: onnxruntime's first lookup came about 9 s in."""

needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")


def _traced(tmp_path: Path, argv: list[str]) -> tuple[subprocess.CompletedProcess, list[str], list[Path]]:
    """Run ``argv`` under strace with an empty HOME and TMPDIR and onnxruntime's telemetry
    variable unset; returns the run, the network syscalls it made, and the files it left in HOME/TMPDIR."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), TMPDIR=str(tmp), PYTHONPATH=str(REPO))
    log = tmp_path / "strace.log"
    trace = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(log)]
    run = subprocess.run([*trace, *argv], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    network = [line for line in log.read_text().splitlines() if "AF_INET" in line]
    left = [p for p in (*home.rglob("*"), *tmp.rglob("*")) if not p.is_dir()]
    return run, network, left


@needs_strace
def test_the_probe_finds_onnxruntime_telemetry_when_it_is_on(tmp_path):
    """The check below can fail: plain onnxruntime, telemetry left on, writes its device ID."""
    code = f"import onnxruntime as ort; ort.InferenceSession({str(MODEL / 'model.int8.onnx')!r})"
    run, _, left = _traced(tmp_path, [sys.executable, "-c", code])
    assert run.returncode == 0, run.stderr
    if not left:
        pytest.skip("this onnxruntime build writes no telemetry files: nothing to guard against")
    assert any(p.name == "deviceid" for p in left)


@pytest.mark.slow
@needs_strace
def test_a_long_cli_batch_makes_no_network_call_and_writes_only_its_output(tmp_path):
    inputs = [str(p) for p in EXAMPLES] * 1500
    run, network, left = _traced(
        tmp_path, [sys.executable, "-m", "edge_infer", "--no-progress", "--output", "out.jsonl", *inputs]
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == len(inputs)
    assert network == [] and left == []


@pytest.mark.slow
@needs_strace
@pytest.mark.parametrize("fmt", ["onnx-int8", "tflite-dynamic"])
def test_the_python_api_makes_no_network_call_and_writes_nothing(tmp_path, fmt):
    code = (
        "import time\nfrom edge_infer import Classifier\n"
        f"clf, paths = Classifier(format={fmt!r}), {[str(p) for p in EXAMPLES]!r}\nstart, n = time.time(), 0\n"
        f"while time.time() - start < {SECONDS}:\n"
        "    clf.predict(paths[n % len(paths)]); n += 1\n"
        "print(n)\n"
    )
    run, network, left = _traced(tmp_path, [sys.executable, "-c", code])
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout) > 100 and network == [] and left == []


def test_onnxruntime_imported_first_with_telemetry_on_is_refused(tmp_path):
    code = "import onnxruntime\nfrom edge_infer import Classifier\nClassifier(format='onnx-int8')\n"
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(tmp_path), TMPDIR=str(tmp_path), PYTHONPATH=str(REPO))
    refused = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 1 and "imported before edge_infer with its telemetry on" in refused.stderr
    env["ORT_DISABLE_TELEMETRY"] = "1"  # set before Python starts: allowed
    allowed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
