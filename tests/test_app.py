"""The screening page's logic, run by Streamlit's own ``AppTest`` on the shipped model: results
match the runtime's, refused and unreadable files get a reason and no grade, the downloads are
what ``edge-infer`` writes, and the classifier loads once per process and format."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("streamlit", reason='the web app needs its extra: pip install -e ".[app]"')

from streamlit.testing.v1 import AppTest

from edge_infer.classifier import Classifier, default_model_dir
from edge_infer.cli import main as edge_infer
from edge_infer.formats import FORMATS
from edge_infer.runtimes import engine_available
from kneeoa.cli import main as kneeoa
from kneeoa_app import page
from kneeoa_app.launch import MODEL_ENV, STREAMLIT_OPTIONS, streamlit_command
from kneeoa_app.model_info import NO_ATTRIBUTION
from kneeoa_app.results import Upload, safe_file_name, screen_uploads

from synthetic import synthetic_knee

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "kneeoa_app" / "app_script.py"
EXAMPLES = sorted((REPO / "examples").glob("*.png"))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def app(monkeypatch) -> AppTest:
    monkeypatch.delenv(MODEL_ENV, raising=False)
    at = AppTest.from_file(str(SCRIPT), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def mixed_uploads() -> list[tuple[str, bytes, str]]:
    """A real knee (graded), a blank image (refused by the gate) and a text file (unreadable)."""
    return [
        (EXAMPLES[-1].name, EXAMPLES[-1].read_bytes(), "image/png"),
        ("blank scan.png", _png(np.full((224, 224), 90, np.uint8)), "image/png"),
        ("notes.txt", b"not an image\n", "text/plain"),
    ]


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_before_any_upload_the_page_shows_the_model_card_and_asks_for_images(app):
    manifest = json.loads((default_model_dir() / "manifest.json").read_text())
    sidebar = " ".join(_texts(app.sidebar.markdown))
    assert manifest["intended_use"] in sidebar
    assert "Screening aid, not a diagnostic device." in _texts(app.sidebar.warning)
    assert "Knee Osteoarthritis Severity Grading Dataset" in sidebar  # the data attribution, from MODEL_CARD.md
    for name, artifact in manifest["artifacts"].items():  # each format's validation figures, from the manifest
        assert f"`{name}`" in sidebar and f"accuracy {artifact['parity_vs_keras']['accuracy']:.3f}" in sidebar
    installed = [name for name in manifest["artifacts"] if engine_available(FORMATS[name].engine)]
    assert app.selectbox[0].options == installed and manifest["default_format"] in installed
    assert app.selectbox[0].value == manifest["default_format"]
    assert any("Upload one or more knee X-rays" in t for t in _texts(app.info))
    assert not app.get("image")


def test_a_knee_is_graded_and_a_blank_image_and_a_text_file_get_reasons_and_no_grade(app, mixed_uploads):
    app.file_uploader[0].set_value(mixed_uploads).run()
    assert not app.exception, app.exception
    with Classifier() as clf:
        expected = clf.predict(EXAMPLES[-1])
        blank = next(clf.predict_many([np.full((224, 224), 90, np.uint8)]))
    markdown = _texts(app.main.markdown)
    assert f"### {expected.label}" in markdown
    assert f"**KL grade {expected.kl_grade}** (the most probable grade)" in markdown
    assert sum("KL grade" in m for m in markdown) == 1  # only the knee has a grade
    assert f"P(KL >= 2) = **{expected.oa_probability:.2f}**" in " ".join(markdown)
    assert "  ".join(f"{k} {v:.2f}" for k, v in expected.probabilities.items()) in markdown
    assert len(app.get("vega_lite_chart")) == 1  # the five probabilities as bars, for the knee only
    errors = _texts(app.error)
    assert errors == [
        f"**No grade: refused by the input gate.** {blank.refusal}",
        "**No grade: the file could not be read.** notes.txt: not an image Pillow can read (unknown or corrupt format)",
    ]
    images = app.get("image")
    assert len(images) == 2 and "Grad-CAM" in images[1].proto.imgs[0].caption  # the X-ray and its overlay
    table = app.dataframe[0].value
    assert list(table["file"]) == [name for name, _, _ in mixed_uploads]
    assert list(table["status"]) == ["graded", "refused", "failed"]
    assert [b.label for b in app.download_button] == ["Download results (CSV)", "Download heatmaps (zip)"]


def test_the_downloads_are_what_edge_infer_writes_for_the_same_files(app, mixed_uploads, tmp_path, monkeypatch):
    app.file_uploader[0].set_value(mixed_uploads).run()
    batch = app.session_state["screened"]
    for name, data, _ in mixed_uploads:
        (tmp_path / name).write_bytes(data)
    monkeypatch.chdir(tmp_path)  # so that edge-infer names inputs and heatmaps as the page does
    names = [name for name, _, _ in mixed_uploads]
    result = CliRunner().invoke(edge_infer, ["--output", "results.csv", "--heatmap-dir", ".", *names])
    assert result.exit_code == 1  # two of the three were not graded
    assert batch.csv == (tmp_path / "results.csv").read_bytes()
    rows = list(csv.DictReader(io.StringIO(batch.csv.decode())))
    assert [r["input"] for r in rows] == names and rows[0]["kl_grade"] and not rows[1]["kl_grade"]
    with zipfile.ZipFile(io.BytesIO(batch.zip)) as zf:
        assert zf.namelist() == [rows[0]["heatmap"]]
        assert zf.read(rows[0]["heatmap"]) == (tmp_path / rows[0]["heatmap"]).read_bytes()


def test_each_result_belongs_to_its_own_upload_and_names_repeat_safely():
    uploads = [Upload("knee.png", p.read_bytes()) for p in EXAMPLES] + [Upload("other.png", EXAMPLES[0].read_bytes())]
    with Classifier() as clf:
        screened = screen_uploads(clf, uploads)
        singles = [clf.predict(p) for p in EXAMPLES]
    assert [s.name for s in screened] == ["knee.png"] * len(EXAMPLES) + ["other.png"]
    for item, single in zip(screened, [*singles, singles[0]], strict=True):
        assert item.result.prediction.probabilities == single.probabilities
        np.testing.assert_array_equal(item.result.prediction.cam, single.cam)
    assert [s.result.heatmap for s in screened] == ["knee_gradcam.png", "knee_2_gradcam.png", "knee_3_gradcam.png",
                                                    "other_gradcam.png"]  # fmt: skip


@pytest.mark.parametrize(
    "name, expected",
    [("../../etc/passwd", "passwd"), ("C:\\scans\\knee 1.png", "knee_1.png"), ("", "upload"), (".hidden", "hidden"),
     ("ü<>.dcm", "___.dcm")],
)  # fmt: skip
def test_an_uploaded_name_is_never_used_as_a_path(name, expected):
    assert safe_file_name(name) == expected


def test_a_dicom_note_is_shown_with_its_result(app, tmp_path):
    pytest.importorskip("pydicom", reason='DICOM needs the dicom extra: pip install -e ".[dicom]"')
    from reencode import write_dicom

    gray = np.asarray(Image.open(EXAMPLES[-1]))
    path = write_dicom(gray, tmp_path / "knee.dcm", "dicom_multiframe")
    app.file_uploader[0].set_value(("knee.dcm", path.read_bytes(), "application/dicom")).run()
    assert not app.exception, app.exception
    assert "Note: multi-frame DICOM: used frame 1 of 2" in _texts(app.info)
    assert any(m.startswith("**KL grade") for m in _texts(app.main.markdown))
    assert "Test^Knee" not in app.session_state["screened"].csv.decode()  # no patient name in the records


class _CountingClassifier(Classifier):
    made: ClassVar[list[str]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _CountingClassifier.made.append(self.format)


def test_the_classifier_loads_once_per_process_and_format_and_a_slider_grades_nothing_again(monkeypatch, mixed_uploads):
    monkeypatch.setattr(page, "Classifier", _CountingClassifier)
    monkeypatch.setattr(_CountingClassifier, "made", [])
    page.load_model.clear()
    sessions = [AppTest.from_file(str(SCRIPT), default_timeout=120) for _ in range(2)]
    for at in sessions:  # two browser sessions, each uploading
        at.run()
        at.file_uploader[0].set_value(mixed_uploads[:1]).run()
    first = sessions[0]
    batch, default = first.session_state["screened"], first.selectbox[0].value
    assert _CountingClassifier.made == [default]
    overlay_before = first.get("image")[1].proto.imgs[0].url
    first.slider[0].set_value(1.0).run()
    assert first.session_state["screened"] is batch  # not graded again
    assert first.get("image")[1].proto.imgs[0].url != overlay_before  # the overlay was redrawn
    for other in first.selectbox[0].options[1:]:  # every other installed format: loaded once, when chosen
        first.selectbox[0].set_value(other).run()
        assert first.session_state["screened"].key[1] == other
        first.selectbox[0].set_value(default).run()
    assert _CountingClassifier.made == first.selectbox[0].options
    page.load_model.clear()


def test_a_bad_model_directory_is_reported_in_the_side_panel(app, tmp_path):
    app.sidebar.text_input[0].set_value(str(tmp_path)).run()
    assert _texts(app.sidebar.error) == [f"{tmp_path / 'manifest.json'}: not found; a model directory needs the "
                                         "manifest that `kneeoa convert` writes"]  # fmt: skip
    assert not app.file_uploader


def test_a_model_without_a_card_says_its_data_is_not_stated(app, tmp_path, monkeypatch):
    model = shutil.copytree(default_model_dir(), tmp_path / "model", ignore=shutil.ignore_patterns("MODEL_CARD.md"))
    monkeypatch.setenv(MODEL_ENV, str(model))
    at = AppTest.from_file(str(SCRIPT), default_timeout=120)
    at.run()
    assert f"**Data.** {NO_ATTRIBUTION}" in _texts(at.sidebar.markdown)
    assert at.sidebar.text_input[0].value == str(model)


def test_the_launcher_keeps_telemetry_off_and_the_page_on_this_machine(tmp_path):
    argv, env = streamlit_command(tmp_path, 8600, "127.0.0.1")
    assert argv[1:4] == ["-m", "streamlit", "run"] and Path(argv[4]) == SCRIPT
    flags = dict(a[2:].split("=", 1) for a in argv[5:])
    assert flags["browser.gatherUsageStats"] == "false" and flags["server.address"] == "127.0.0.1"
    assert flags["server.port"] == "8600" and int(flags["server.maxUploadSize"]) > 0
    assert {k: flags[k] for k in STREAMLIT_OPTIONS} == STREAMLIT_OPTIONS
    assert env[MODEL_ENV] == str(tmp_path.resolve())
    _, open_env = streamlit_command(None, 8600, "0.0.0.0")
    assert MODEL_ENV not in open_env


def test_kneeoa_app_without_streamlit_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "streamlit" else real(name, *a))
    result = CliRunner().invoke(kneeoa, ["app", "--port", "8600"])
    assert result.exit_code == 1
    assert 'kneeoa app needs Streamlit: pip install "kneeoa[app]"' in result.stderr


def test_kneeoa_app_refuses_a_bad_port():
    result = CliRunner().invoke(kneeoa, ["app", "--port", "70000"])
    assert result.exit_code == 2 and "70000 is not in the range 1<=x<=65535" in result.stderr


def test_a_synthetic_knee_is_not_mistaken_for_a_graded_one(app):
    """The shipped gate refuses the test suite's synthetic knees: the page must say so, not grade them."""
    app.file_uploader[0].set_value(("synthetic.png", _png(synthetic_knee(2, 224, seed=1)), "image/png")).run()
    assert len(app.error) == 1 and app.error[0].value.startswith("**No grade: refused by the input gate.**")
    assert not any("KL grade" in m for m in _texts(app.main.markdown))


def test_a_knee_the_model_is_unsure_of_is_shown_as_refer(monkeypatch, tmp_path):
    from kneeoa_convert.selftest import record_self_test

    model = shutil.copytree(default_model_dir(), tmp_path / "model")
    data = json.loads((model / "manifest.json").read_text())
    for artifact in data["artifacts"].values():  # a band over every P(OA): every knee is referred
        artifact["calibration"] = {**artifact.get("calibration", {"temperature": 1.0}), "refer_band": [0.0, 1.0]}
    (model / "manifest.json").write_text(json.dumps(data))
    record_self_test(model, changed=())
    monkeypatch.setenv(MODEL_ENV, str(model))
    at = AppTest.from_file(str(SCRIPT), default_timeout=120)
    at.run()
    at.file_uploader[0].set_value([(EXAMPLES[0].name, EXAMPLES[0].read_bytes(), "image/png")]).run()
    assert not at.exception, at.exception
    assert "### Refer" in _texts(at.main.markdown)
    (warning,) = [w for w in _texts(at.warning) if "Refer" in w]
    assert "refer band [0.00, 1.00)" in warning and "A clinician should read this image." in warning
    assert "**KL grade 0** (the most probable grade)" in _texts(at.main.markdown)  # the grade is still shown
