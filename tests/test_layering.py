"""The house's floors: each package imports only from the floors below it, never a private name
of another package, and the runtime-only commands load no TensorFlow and nothing of training."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ALLOWED = {  # package -> the project packages it may import
    "edge_infer": set(),
    "kneeoa_train": {"edge_infer"},
    "kneeoa_convert": {"edge_infer", "kneeoa_train"},
    "kneeoa_bench": {"edge_infer"},
    "kneeoa_app": {"edge_infer"},
    "kneeoa_kit": {"edge_infer"},
    "kneeoa": {
        "edge_infer",
        "kneeoa_train",
        "kneeoa_convert",
        "kneeoa_bench",
        "kneeoa_kit",
        "kneeoa_models",
        "kneeoa_app",
    },
}
PROJECT = set(ALLOWED) | {"kneeoa_models"}
HEAVY = {"tensorflow", "keras", "tf_keras", "tf2onnx", "onnx"}


def _imports(path: Path):
    """``(module, names)`` of every absolute import in a file, wherever it sits (lazy ones too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, [alias.name for alias in node.names]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down_only(package):
    wrong, private = [], []
    for path in sorted((REPO / package).rglob("*.py")):
        for module, names in _imports(path):
            top = module.split(".")[0]
            if top in PROJECT and top != package and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(REPO)}: {module}")
            if top in PROJECT and top != package:
                private += [f"{path.relative_to(REPO)}: {module}.{n}" for n in names if n.startswith("_")]
                private += [
                    f"{path.relative_to(REPO)}: {module}" for part in module.split(".")[1:] if part.startswith("_")
                ]
    assert not wrong, f"{package} imports from a floor above or beside it: {wrong}"
    assert not private, f"{package} imports another package's private names: {private}"


def test_the_ground_floor_never_imports_tensorflow_even_lazily():
    for path in sorted((REPO / "edge_infer").rglob("*.py")):
        heavy = [m for m, _ in _imports(path) if m.split(".")[0] in HEAVY]
        assert not heavy, f"{path}: {heavy}"


def _modules_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return which heavy or workstation modules it loaded."""
    banned = sorted(HEAVY | {"kneeoa_train", "kneeoa_convert"})
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({banned!r}))))\n"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_kneeoa_evaluate_loads_no_tensorflow_and_nothing_of_training(model_dir, knee_dataset):
    code = (
        "from kneeoa.cli import main\n"
        f"try:\n    main(['evaluate', {str(knee_dataset / 'val')!r}, '--model', {str(model_dir)!r}, '--json'])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
    )
    assert _modules_after(code) == []


@pytest.mark.slow
def test_kneeoa_bench_rows_load_no_tensorflow_and_nothing_of_training(model_dir, knee_dataset, tmp_path):
    """The bench command's own process, and one of the per-format processes it starts."""
    code = (
        "from kneeoa.cli import main\n"
        f"try:\n    main(['bench', '--model', {str(model_dir)!r}, '--formats', 'onnx-int8', '--threads', '1',"
        " '--min-time', '0.1', '--min-runs', '1', '--warmup', '0'])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
    )
    assert _modules_after(code) == []
    images = sorted(str(p) for p in (knee_dataset / "val").rglob("*.png"))[:2]
    row = (
        "from kneeoa_bench.measure import measure_format\n"
        f"measure_format({str(model_dir)!r}, 'tflite-int8', 1, {images!r}, 0.05, 1, 0, {str(knee_dataset / 'val')!r})\n"
    )
    assert _modules_after(row) == []


def test_every_package_is_in_the_wheel():
    """A package missing from pyproject.toml works in an editable install and breaks in a real one."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for package in ALLOWED
        for init in (REPO / package).rglob("__init__.py")
    } | {"kneeoa_models"}
    assert found == listed, (
        f"missing from pyproject.toml: {sorted(found - listed)}; listed but absent: {sorted(listed - found)}"
    )


def test_onnxruntime_telemetry_is_off_before_onnxruntime_loads():
    code = (
        "import os, sys\nos.environ['ORT_DISABLE_TELEMETRY'] = '0'\nimport edge_infer.cli\n"
        "assert 'onnxruntime' not in sys.modules\nprint(os.environ['ORT_DISABLE_TELEMETRY'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_the_web_app_stands_on_edge_infer_streamlit_numpy_and_pillow_only():
    """The page runs on a device's runtime-only install plus the app extra: no TensorFlow, nothing of training."""
    allowed = set(sys.stdlib_module_names) | {"edge_infer", "kneeoa_app", "streamlit", "numpy", "PIL"}
    found = {
        f"{path.relative_to(REPO)}: {module}"
        for path in sorted((REPO / "kneeoa_app").rglob("*.py"))
        for module, _ in _imports(path)
        if module.split(".")[0] not in allowed
    }
    assert not found, f"kneeoa_app imports beyond its floor: {sorted(found)}"


def test_the_web_app_loads_no_tensorflow_and_nothing_of_training():
    pytest.importorskip("streamlit", reason='the web app needs its extra: pip install -e ".[app]"')
    assert _modules_after("import kneeoa_app.page, kneeoa_app.launch\nimport kneeoa.commands.app") == []
