"""An edited or malformed manifest is refused at load with one line naming the file and the field,
never a traceback and never a changed answer; artifacts load only from inside the model folder,
and the engine runs the very bytes whose checksum was verified."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil

import pytest
from click.testing import CliRunner

from edge_infer import Classifier, default_model_dir
from edge_infer.errors import ManifestError, ModelContractError
from edge_infer.manifest import load_manifest

from synthetic import synthetic_knee

LITERT = importlib.util.find_spec("ai_edge_litert") or importlib.util.find_spec("tflite_runtime")


@pytest.fixture
def model(tmp_path):
    """A copy of the shipped model (a real, trained one: these tests need no training)."""
    return shutil.copytree(default_model_dir(), tmp_path / "model")


def _edit(model, change) -> None:
    path = model / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _refused(model, field_pattern: str, exc=ManifestError) -> str:
    """Load the manifest, and the Classifier; both refuse with one line naming file and field."""
    for load in (load_manifest, lambda d: Classifier(d, gate="off")):
        with pytest.raises(exc, match=rf"manifest\.json: {field_pattern}") as info:
            load(model)
        message = str(info.value)
        assert "\n" not in message and message.startswith(str(model))
    return message


def _set(block_path: tuple, value):
    def change(data):
        target = data
        for key in block_path[:-1]:
            target = target[key]
        target[block_path[-1]] = value

    return change


EDITS = {  # the probe's cases first, then their siblings
    "threshold NaN": (_set(("screening", "threshold"), math.nan), r"screening\.threshold: expected a finite number strictly between 0 and 1, got nan"),
    "threshold 2": (_set(("screening", "threshold"), 2), r"screening\.threshold: .* got 2$"),
    "classes reversed": (lambda d: d.update(classes=d["classes"][::-1]), r"classes\[0\]: output 0 is KL grade 0 .* got 'KL4'"),
    "kl_grades all 0": (_set(("kl_grades",), [0] * 5), r"kl_grades\[1\]: grades must rise"),
    "duplicate class": (_set(("classes",), ["KL0", "KL1", "KL2", "KL2", "KL4"]), r"classes\[3\]: 'KL2' is listed twice"),
    "value_range NaN": (_set(("preprocess", "value_range"), [math.nan, 1]), r"preprocess\.value_range\[0\]: expected a finite number, got nan"),
    "artifact file a number": (_set(("artifacts", "onnx-int8", "file"), 5), r"artifacts\.onnx-int8\.file: expected a file name .* got 5"),
    "artifact sha256 a number": (_set(("artifacts", "onnx-int8", "sha256"), 5), r"artifacts\.onnx-int8\.sha256: expected a sha256.* got 5"),
    "head file null": (_set(("gradcam_head", "file"), None), r"gradcam_head\.file: expected a file name .* got null"),
    "gate sha256 a list": (_set(("gate", "sha256"), ["a"]), r"gate\.sha256: expected a sha256.* got a list of 1"),
    "absolute path": (_set(("artifacts", "onnx-int8", "file"), "/etc/passwd"), r"artifacts\.onnx-int8\.file: expected a file name in the model folder"),
    "../ path": (_set(("artifacts", "onnx-int8", "file"), "../model/model.int8.onnx"), r"artifacts\.onnx-int8\.file: .*got '\.\./model"),
    "sub-folder path": (_set(("gradcam_head", "file"), "sub/head.npz"), r"gradcam_head\.file: .*no directory part"),
    "windows path": (_set(("gradcam_head", "file"), "..\\head.npz"), r"gradcam_head\.file: "),
    "threshold true": (_set(("screening", "threshold"), True), r"screening\.threshold: .* got True"),
    "threshold infinite": (_set(("screening", "threshold"), math.inf), r"screening\.threshold: .* got inf"),
    "threshold 0": (_set(("screening", "threshold"), 0), r"screening\.threshold: "),
    "value_range reversed": (_set(("preprocess", "value_range"), [1, -1]), r"preprocess\.value_range: expected low < high"),
    "value_range too short": (_set(("preprocess", "value_range"), [1]), r"preprocess\.value_range: expected a \[low, high\] pair"),
    "size a string": (_set(("preprocess", "size"), "128"), r"preprocess\.size: expected a whole number"),
    "size 1.5": (_set(("preprocess", "size"), 1.5), r"preprocess\.size: "),
    "intensity percentiles reversed": (_set(("preprocess", "intensity"), {"method": "percentile", "low": 99, "high": 1}), r"preprocess\.intensity: expected low < high"),
    "screening skips a grade": (_set(("screening", "positive_classes"), ["KL2", "KL4"]), r"screening\.positive_classes: must be every grade from KL 2 up"),
    "screening of an unknown class": (_set(("screening", "positive_classes"), ["KL2", "KL9"]), r"screening\.positive_classes: \['KL9'\] are not classes"),
    "screening of every class": (_set(("screening", "positive_classes"), ["KL0", "KL1", "KL2", "KL3", "KL4"]), r"screening\.positive_classes: must be some, not all"),
    "screening rule disagrees": (_set(("screening", "rule"), "KL >= 3"), r"screening\.rule: says 'KL >= 3'"),
    "same labels": (_set(("screening", "negative_label"), "Osteoarthritis"), r"screening\.negative_label: must differ"),
    "kl_grades too short": (_set(("kl_grades",), [0, 1, 2]), r"kl_grades: expected one grade per class"),
    "kl grade 7": (_set(("kl_grades",), [0, 1, 2, 3, 7]), r"kl_grades\[4\]: expected a whole number from 0 to 4"),
    "class name with a newline": (_set(("classes",), ["KL0\nKL3", "KL1", "KL2", "KL3", "KL4"]), r"classes\[0\]: expected a class name"),
    "probabilities shape": (_set(("outputs", "probabilities", "shape"), [None, 4]), r"outputs\.probabilities\.shape: expected \[null, 5\]"),
    "features shape": (_set(("outputs", "features", "shape"), [None, 6, -6, 768]), r"outputs\.features\.shape\[2\]: "),
    "engine disagrees": (_set(("artifacts", "onnx-int8", "engine"), "litert"), r"artifacts\.onnx-int8\.engine: onnx-int8 runs on onnxruntime"),
    "unknown format": (lambda d: d["artifacts"].update({"onnx-int4": d["artifacts"]["onnx-int8"]}), r"artifacts\.onnx-int4: expected one of"),
    "one file twice": (_set(("artifacts", "tflite-dynamic", "file"), "model.int8.onnx"), r"artifacts\.tflite-dynamic\.file: 'model\.int8\.onnx' is also artifacts\.onnx-int8's file"),
    "head as an artifact": (_set(("artifacts", "onnx-int8", "file"), "head.npz"), r"artifacts\.onnx-int8\.file: 'head\.npz' is also gradcam_head's file"),
    "default format absent": (_set(("default_format",), "onnx-fp32"), r"default_format: 'onnx-fp32' is not among"),
    "gate threshold NaN": (_set(("gate", "formats", "onnx-int8", "thresholds", "distance"), math.nan), r"gate\.formats\.onnx-int8\.thresholds\.distance: "),
    "classes missing": (lambda d: d.pop("classes"), r"classes: missing"),
    "classes a string": (_set(("classes",), "KL0,KL1"), r"classes: expected a list"),
    "deep nesting in a described field": (_set(("training", "config"), json.loads("[" * 40 + "]" * 40)), r"training\.config(\[0\])+: nested more than 24 levels deep"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(EDITS))
def test_an_edited_manifest_is_refused_naming_the_field(model, case):
    change, field_pattern = EDITS[case]
    _edit(model, change)
    _refused(model, field_pattern)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("null", r"\(top level\): expected a JSON object, got null"),
        ("[1, 2]", r"\(top level\): expected a JSON object, got a list of 2"),
        ('"KL0"', r"\(top level\): expected a JSON object, got 'KL0'"),
        ("[" * 100_000 + "]" * 100_000, r"not a manifest: JSON nested too deeply to read"),
        ('{"schema_version": ' + "9" * 5000 + "}", r"not valid JSON"),
        ("{ not json", r"not valid JSON"),
        ('{"schema_version": 7}', r"schema_version 7, this edge_infer reads \[1, 2\]"),
    ],
    ids=["null", "list", "string", "deep", "huge integer", "broken", "future version"],
)
def test_a_manifest_that_is_not_an_object_is_one_line(model, text, problem):
    (model / "manifest.json").write_text(text)
    _refused(model, problem)


def test_manifest_not_utf8_or_not_a_regular_file(model):
    (model / "manifest.json").write_bytes(b'{"name": "\xff"}')
    _refused(model, r"not UTF-8 text")
    (model / "manifest.json").unlink()
    os.mkfifo(model / "manifest.json")  # would block an ordinary open until a writer came
    _refused(model, r"not a regular file")


def test_edge_infer_prints_one_line_and_no_traceback(model, tmp_path):
    from edge_infer.cli import main

    knee = tmp_path / "knee.png"
    from PIL import Image

    Image.fromarray(synthetic_knee(2, 128, seed=1)).save(knee)
    for text in ("null", "[" * 100_000 + "]" * 100_000):
        (model / "manifest.json").write_text(text)
        result = CliRunner().invoke(main, ["--model", str(model), "--no-progress", str(knee)])
        assert result.exit_code == 1, result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "manifest.json: " in lines[0] and "Traceback" not in result.output


def test_the_shipped_manifest_passes_the_schema():
    m = load_manifest(default_model_dir())
    assert m.classes == ["KL0", "KL1", "KL2", "KL3", "KL4"]


# -- artifact files: confined to the model folder, loaded as hashed ---------------------------------


def test_a_link_out_of_the_model_folder_is_refused(model, tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(model / "model.int8.onnx", outside)  # the same bytes: the checksum alone would pass it
    (model / "model.int8.onnx").unlink()
    (model / "model.int8.onnx").symlink_to(outside)
    with pytest.raises(ManifestError, match=r"model\.int8\.onnx: listed in manifest\.json as onnx-int8, but it is a link to .*elsewhere\.onnx, outside the model folder"):  # fmt: skip
        Classifier(model, format="onnx-int8", gate="off")
    (model / "head.npz").rename(tmp_path / "head.npz")
    (model / "head.npz").symlink_to(tmp_path / "head.npz")
    with pytest.raises(ManifestError, match=r"head\.npz: Grad-CAM head weights .* outside the model folder"):
        load_manifest(model).load_head()


def test_a_link_inside_the_model_folder_is_followed(model):
    (model / "model.int8.onnx").rename(model / "stored.onnx")
    (model / "model.int8.onnx").symlink_to("stored.onnx")
    with Classifier(model, format="onnx-int8", gate="off") as clf:
        assert clf.predict(synthetic_knee(2, 128, seed=1), heatmap=False).kl_grade is not None


def test_an_artifact_that_is_not_a_regular_file_is_refused(model):
    (model / "model.int8.onnx").unlink()
    os.mkfifo(model / "model.int8.onnx")
    with pytest.raises(ManifestError, match=r"model\.int8\.onnx: listed in manifest\.json as onnx-int8, but it is not a regular file"):  # fmt: skip
        Classifier(model, format="onnx-int8", gate="off")


@pytest.mark.parametrize("fmt", list(load_manifest(default_model_dir()).artifacts))
def test_a_file_swapped_after_its_check_is_never_run(model, fmt, monkeypatch):
    """Between the checksum and the engine's load, another file takes the artifact's place:
    the engine still runs the bytes that were checked (and answers as the untouched model)."""
    import edge_infer.classifier as classifier_module

    if "tflite" in fmt and not LITERT:
        pytest.skip("LiteRT is not installed")
    knee = synthetic_knee(3, 128, seed=4)
    with Classifier(model, format=fmt, gate="off") as clf:
        expected = clf.predict(knee, heatmap=False).probabilities
    art = model / load_manifest(model).artifacts[fmt].file
    real_open = classifier_module.open_runtime

    def swap_then_open(*args, **kwargs):
        art.write_bytes(b"not the model that was checked" * 1000)  # the race window, made certain
        return real_open(*args, **kwargs)

    monkeypatch.setattr(classifier_module, "open_runtime", swap_then_open)
    with Classifier(model, format=fmt, gate="off") as clf:
        assert clf.predict(knee, heatmap=False).probabilities == expected
    monkeypatch.undo()
    with pytest.raises(ManifestError, match="does not match the manifest's"):  # and the next load sees the swap
        Classifier(model, format=fmt, gate="off")


def test_contract_error_is_a_manifest_error():
    assert issubclass(ModelContractError, ManifestError)
