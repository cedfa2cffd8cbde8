"""Screening kits, the quick part (no network): the runtime wheel, the verifier against tampered
kits and crafted archives, and a whole kit built from a local wheelhouse of small stand-in wheels
(real pip resolves them; the real wheels and a real offline install are in test_kit_install.py)."""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from kneeoa.cli import main as kneeoa_main
from kneeoa_kit.build import KitOptions, build_kit
from kneeoa_kit.errors import KitError
from kneeoa_kit.runtime_wheel import build_runtime_wheel
from kneeoa_kit.targets import PLATFORMS, Target, parse_targets
from kneeoa_kit.verify import this_platform, verify
from kneeoa_kit.wheelhouse import missing_requirements

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "default"
VERIFY_PY = REPO / "kneeoa_kit" / "verify.py"


def make_wheel(folder: Path, name: str, version: str = "1.0", requires: tuple[str, ...] = ()) -> Path:
    """A small valid pure-Python wheel (one module) that pip can resolve and install."""
    dist = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{name.replace('-', '_')}_standin.py": b"VALUE = 1\n",
        f"{dist}/METADATA": "\n".join(
            [
                "Metadata-Version: 2.1",
                f"Name: {name}",
                f"Version: {version}",
                *(f"Requires-Dist: {r}" for r in requires),
            ]
        ).encode()
        + b"\n",
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
        for n, d in files.items()
    ]
    files[f"{dist}/RECORD"] = ("\n".join([*record, f"{dist}/RECORD,,"]) + "\n").encode()
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return path


@pytest.fixture(scope="module")
def standin_wheelhouse(tmp_path_factory) -> Path:
    """Stand-ins for the runtime dependencies; click needs colorama on Windows only, as the real one does."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    for name in ("numpy", "pillow", "onnxruntime", "colorama"):
        make_wheel(folder, name, "99.0")
    make_wheel(folder, "click", "99.0", ("colorama; platform_system == 'Windows'",))
    return folder


@pytest.fixture(scope="module")
def small_kit(standin_wheelhouse, tmp_path_factory) -> Path:
    """A kit for linux-x86_64 and win-amd64 (Python 3.11) with the onnx-int8 format only."""
    out = tmp_path_factory.mktemp("kits") / "kneeoa-kit"
    targets = parse_targets("linux-x86_64,win-amd64", "3.11")
    opts = KitOptions(
        MODEL, targets, out, formats=("onnx-int8",), dicom=False, wheelhouse=standin_wheelhouse,
        cache_dir=tmp_path_factory.mktemp("cache"), command="kneeoa kit build (test)",
    )  # fmt: skip
    build_kit(opts)
    return out


@pytest.fixture
def kit_copy(small_kit, tmp_path) -> Path:
    dest = tmp_path / "kit copy"  # a space in the path, as a USB stick's folder may have
    shutil.copytree(small_kit, dest)
    return dest


def run_verify_py(*args) -> subprocess.CompletedProcess:
    """The kit's verify.py under a bare interpreter: -I (no user site, no environment) and -S (no site-packages)."""
    return subprocess.run([sys.executable, "-I", "-S", *map(str, args)], capture_output=True, text=True, timeout=60)


# --- the runtime wheel ---


def test_runtime_wheel_holds_only_the_device_packages_and_is_reproducible(tmp_path):
    first = build_runtime_wheel(tmp_path / "a")
    second = build_runtime_wheel(tmp_path / "b")
    assert first.name == "kneeoa-0.1.0+runtime-py3-none-any.whl"
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert {n.split("/")[0] for n in names} == {"edge_infer", "kneeoa_bench", "kneeoa-0.1.0+runtime.dist-info"}
    assert "edge_infer/cli.py" in names and "kneeoa_bench/measure.py" in names
    meta = zipfile.ZipFile(first).read("kneeoa-0.1.0+runtime.dist-info/METADATA").decode()
    assert "Requires-Dist: onnxruntime>=1.17" in meta
    assert "Requires-Dist: ai-edge-litert>=2.3; extra == 'tflite'" in meta
    assert "tensorflow" not in meta
    entry = zipfile.ZipFile(first).read("kneeoa-0.1.0+runtime.dist-info/entry_points.txt").decode()
    assert "edge-infer = edge_infer.cli:main" in entry


def test_verify_py_uses_the_standard_library_only():
    tree = ast.parse(VERIFY_PY.read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)


# --- targets and the completeness of a wheel set ---


def test_targets_parse_and_refuse_unknown_platforms():
    targets = parse_targets("linux-aarch64,win-amd64", "3.11,3.13")
    assert [t.key for t in targets] == [
        "linux-aarch64-cp311",
        "linux-aarch64-cp313",
        "win-amd64-cp311",
        "win-amd64-cp313",
    ]
    flags = targets[0].pip_download_flags()
    assert "manylinux_2_27_aarch64" in flags and "manylinux_2_36_aarch64" in flags and "manylinux2014_aarch64" in flags
    with pytest.raises(KitError, match=r"unknown platform\(s\) \['linux-sparc'\]"):
        parse_targets("linux-sparc", "3.11")
    with pytest.raises(KitError, match=r"Python version\(s\) \['311'\] not understood"):
        parse_targets("linux-x86_64", "311")


def test_markers_are_read_as_on_the_target_not_the_host(standin_wheelhouse, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(next(standin_wheelhouse.glob("click-*.whl")), folder)
    windows, linux = Target(PLATFORMS["win-amd64"], "3.11"), Target(PLATFORMS["linux-x86_64"], "3.11")
    assert missing_requirements(windows, folder, ["click"]) == ["colorama"]
    assert missing_requirements(linux, folder, ["click"]) == []


# --- a whole kit from a local wheelhouse ---


def test_kit_layout_manifest_and_per_target_wheels(small_kit):
    names = {p.relative_to(small_kit).as_posix() for p in small_kit.rglob("*") if p.is_file()}
    for expected in ("verify.py", "install.sh", "install.ps1", "screen.sh", "screen.ps1", "bench.sh", "bench.ps1",
                     "README.txt", "kit.json", "SHA256SUMS", "model/manifest.json", "model/model.int8.onnx"):  # fmt: skip
        assert expected in names
    assert "model/model.dynamic.tflite" not in names  # only the chosen format
    assert (small_kit / "verify.py").read_bytes() == VERIFY_PY.read_bytes()
    manifest = json.loads((small_kit / "model" / "manifest.json").read_text())
    assert list(manifest["artifacts"]) == ["onnx-int8"] and manifest["default_format"] == "onnx-int8"
    info = json.loads((small_kit / "kit.json").read_text())
    wheels = {t["platform"]: t["wheels"] for t in info["targets"]}
    assert any(w.startswith("colorama") for w in wheels["win-amd64"])
    assert not any(w.startswith("colorama") for w in wheels["linux-x86_64"])
    assert info["extras"] == [] and info["build_command"] == "kneeoa kit build (test)"
    readme = (small_kit / "README.txt").read_text()
    assert "Not a diagnostic device".lower() in readme.lower() and "doi:10.17632/56rmx5bjcr.1" in readme
    assert "@@" not in readme and 'kneeoa==0.1.0+runtime"' in (small_kit / "install.sh").read_text()


def test_a_fresh_kit_verifies_with_verify_py_and_sha256sum(small_kit):
    proc = run_verify_py(small_kit / "verify.py")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"OK: {small_kit}:")
    if shutil.which("sha256sum"):
        assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=small_kit).returncode == 0


@pytest.mark.parametrize(
    ("tamper", "named", "problem"),
    [
        (lambda k: _flip_byte(k / "model" / "model.int8.onnx"), "model/model.int8.onnx", "changed"),
        (
            lambda k: (k / "wheels" / "extra-1.0-py3-none-any.whl").write_bytes(b"PK"),
            "wheels/extra-1.0-py3-none-any.whl",
            "extra file",
        ),
        (lambda k: (k / "README.txt").unlink(), "README.txt", "missing"),
        (lambda k: (k / "model" / "shortcut").symlink_to(k / "kit.json"), "model/shortcut", "a symbolic link"),
    ],
    ids=["changed-byte", "extra-file", "missing-file", "symlink"],
)
def test_verify_names_the_file_that_is_wrong(kit_copy, tamper, named, problem):
    tamper(kit_copy)
    proc = run_verify_py(kit_copy / "verify.py", kit_copy)
    assert proc.returncode == 1
    assert f"FAILED: {kit_copy / named}: {problem}" in proc.stderr
    assert all(line.startswith(f"FAILED: {kit_copy / named}: ") for line in proc.stderr.splitlines())  # that file only


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_manifest_edited_together_with_sha256sums_is_still_caught(kit_copy):
    """Someone who fixes up SHA256SUMS after changing the model still fails the manifest's own sums."""
    _flip_byte(kit_copy / "model" / "model.int8.onnx")
    sums = kit_copy / "SHA256SUMS"
    digest = hashlib.sha256((kit_copy / "model" / "model.int8.onnx").read_bytes()).hexdigest()
    sums.write_text("\n".join(f"{digest}  model/model.int8.onnx" if line.endswith("  model/model.int8.onnx") else line
                              for line in sums.read_text().splitlines()) + "\n")  # fmt: skip
    problems = verify(kit_copy)
    assert problems == [
        f"{kit_copy / 'model' / 'model.int8.onnx'}: artifact onnx-int8: sha256 differs from the manifest's"
    ]


def test_kneeoa_kit_verify_runs_the_same_checks(kit_copy):
    runner = CliRunner()
    ok = runner.invoke(kneeoa_main, ["kit", "verify", str(kit_copy)])
    assert ok.exit_code == 0, ok.output
    (kit_copy / "kit.json").write_text("{}")
    bad = runner.invoke(kneeoa_main, ["kit", "verify", str(kit_copy)])
    assert bad.exit_code == 1
    assert f"FAILED: {kit_copy / 'kit.json'}: changed" in bad.output


def test_kit_as_zip_extracts_safely_and_verifies(standin_wheelhouse, tmp_path):
    archive = tmp_path / "usb" / "kneeoa-kit.zip"
    opts = KitOptions(MODEL, parse_targets("linux-x86_64", "3.11"), archive, formats=("onnx-int8",), dicom=False,
                      wheelhouse=standin_wheelhouse, cache_dir=tmp_path / "cache")  # fmt: skip
    build_kit(opts)
    assert (tmp_path / "usb" / "kneeoa-kit-verify.py").read_bytes() == VERIFY_PY.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        assert all(n.startswith("kneeoa-kit/") for n in zf.namelist())
        assert (zf.getinfo("kneeoa-kit/install.sh").external_attr >> 16) & 0o111
    proc = run_verify_py(tmp_path / "usb" / "kneeoa-kit-verify.py", archive, "--extract", tmp_path / "unpacked")
    assert proc.returncode == 0, proc.stderr
    assert f"OK: {tmp_path / 'unpacked' / 'kneeoa-kit'}:" in proc.stdout


def test_build_refuses_an_existing_output_and_an_absent_format(standin_wheelhouse, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    runner = CliRunner()
    args = ["kit", "build", "--model", str(MODEL), "--wheelhouse", str(standin_wheelhouse), "--no-dicom"]
    taken = runner.invoke(kneeoa_main, [*args, "--out", str(tmp_path / "taken")])
    assert taken.exit_code == 1 and "exists and is not an empty folder" in taken.output
    absent = runner.invoke(kneeoa_main, [*args, "--formats", "tflite-fp16", "--out", str(tmp_path / "new")])
    assert (
        absent.exit_code == 1 and "no tflite-fp16 here; it has onnx-int8, tflite-dynamic, tflite-int8" in absent.output
    )
    bad = runner.invoke(kneeoa_main, [*args, "--platform", "linux-sparc", "--out", str(tmp_path / "new")])
    assert bad.exit_code == 2 and "unknown platform" in bad.output
    assert not (tmp_path / "new").exists()


def test_no_wheel_for_a_target_is_one_clear_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    opts = KitOptions(MODEL, parse_targets("linux-aarch64", "3.11"), tmp_path / "kit", formats=("onnx-int8",),
                      dicom=False, wheelhouse=empty, cache_dir=tmp_path / "cache")  # fmt: skip
    with pytest.raises(
        KitError, match=r"linux-aarch64-cp311: no complete set of wheels from the local wheelhouse .*numpy"
    ):
        build_kit(opts)
    assert not (tmp_path / "kit").exists()


def test_kneeoa_kit_loads_no_tensorflow():
    code = "import kneeoa.commands.kit, kneeoa_kit.build, kneeoa_kit.check, sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'kneeoa_train', 'kneeoa_convert', 'onnx')))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.skipif(
    sys.platform.startswith("win") or platform.machine() == "aarch64", reason="needs a non-aarch64 POSIX host"
)
def test_install_sh_stops_with_what_to_ask_for_when_no_wheel_fits_this_machine(kit_copy, tmp_path):
    """A kit for another platform: install.sh stops before making anything, and says what the kit
    has and what to ask for."""
    from kneeoa_kit.files import write_sums

    info = json.loads((kit_copy / "kit.json").read_text())
    for t in info["targets"]:
        t["platform"] = "linux-aarch64"
    (kit_copy / "kit.json").write_text(json.dumps(info))
    write_sums(kit_copy)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KNEEOA_HOME": str(tmp_path / "home"),
        "PYTHON": sys.executable,
    }
    proc = subprocess.run(["sh", str(kit_copy / "install.sh")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert (
        f"no wheels in this kit fit this machine ({this_platform()}, Python {here}); it has: linux-aarch64 with Python 3.11"
        in proc.stderr
    )
    assert f"ask for a kit built with --platform {this_platform()} --python {here}" in proc.stderr
    assert not (tmp_path / "home").exists()
