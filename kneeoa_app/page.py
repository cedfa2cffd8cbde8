"""The screening page: the side panel picks the model, the main column takes uploads and shows
each result. Streamlit reruns :func:`render` on every interaction; the classifier is loaded once
per process and format (``st.cache_resource``), and each browser session keeps its own results
(``st.session_state``) so that moving a slider does not grade the images again."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from edge_infer.classifier import Classifier, default_model_dir
from edge_infer.errors import KneeOAError
from edge_infer.manifest import Manifest, load_manifest

from . import views
from .launch import MAX_UPLOAD_MB, MODEL_ENV
from .model_info import model_info
from .results import Screened, Upload, heatmaps_zip, results_csv, screen_uploads

TITLE = "Knee osteoarthritis screening"
DISCLAIMER = (
    "A screening aid for single-knee posterior–anterior X-ray crops, not a diagnostic device: a clinician "
    "reads the image. Images stay on this machine."
)
UPLOAD_TYPES_HELP = (
    f"PNG, JPEG, TIFF, BMP or DICOM (DICOM needs the dicom extra), up to {MAX_UPLOAD_MB} MB each. "
    "Any other file is reported, not graded."
)


@dataclass(frozen=True)
class LoadedModel:
    """A classifier shared by every session of the process, and the lock that serialises its runs."""

    classifier: Classifier
    lock: threading.Lock


@dataclass(frozen=True)
class ScreenedBatch:
    """One session's results for its current uploads, with the downloads built once."""

    key: tuple
    items: list[Screened]
    csv: bytes
    zip: bytes


@st.cache_resource(show_spinner="Loading the model…", max_entries=8)
def load_model(model_dir: str, format_name: str) -> LoadedModel:
    """The classifier for a model directory and format: loaded (and its files checksummed) once
    per process, then shared."""
    return LoadedModel(Classifier(model_dir, format=format_name), threading.Lock())


def render() -> None:
    """Draw the whole page once (Streamlit calls this on every interaction)."""
    st.set_page_config(
        page_title=TITLE,
        layout="wide",
        menu_items={"Get help": None, "Report a bug": None, "About": f"**{TITLE}**. {DISCLAIMER}"},
    )
    st.title(TITLE)
    st.caption(DISCLAIMER)
    chosen = choose_model()
    if chosen is None:
        return
    model, manifest, format_name = chosen
    files = st.file_uploader("Knee X-rays", accept_multiple_files=True, help=UPLOAD_TYPES_HELP)
    if not files:
        st.info(f"Upload one or more knee X-rays to screen them. {UPLOAD_TYPES_HELP}")
        return
    batch = screened_batch(files, model, manifest, format_name)
    views.downloads(batch.csv, batch.zip, sum(item.heatmap_png is not None for item in batch.items))
    if len(batch.items) > 1:
        views.summary(batch.items)
    for index, item in enumerate(batch.items):
        views.one_image(index, item, manifest, format_name)


def choose_model() -> tuple[LoadedModel, Manifest, str] | None:
    """The side panel: model directory, format and model card. ``None`` when no model can be used
    (the reason is shown)."""
    bar = st.sidebar
    bar.header("Model")
    start = os.environ.get(MODEL_ENV) or str(default_model_dir())
    model_dir = bar.text_input(
        "Model directory", value=start, help="A folder with manifest.json, as `kneeoa convert` writes."
    )
    try:
        manifest = load_manifest(Path(model_dir.strip()).expanduser())
    except KneeOAError as e:
        bar.error(str(e))
        st.error("No model is loaded: choose a model directory in the side panel.")
        return None
    info = model_info(manifest)
    installed = info.installed_formats
    for line in info.missing_engines():
        bar.caption(line)
    if not installed:
        st.error("No installed runtime runs this model's formats (see the side panel).")
        return None
    default = manifest.default_format if manifest.default_format in installed else installed[0]
    format_name = bar.selectbox(
        "Format", installed, index=installed.index(default), help="The shipped formats whose runtime is installed."
    )
    views.model_card(bar, info)
    try:
        model = load_model(str(manifest.model_dir.resolve()), format_name)
    except KneeOAError as e:
        bar.error(str(e))
        st.error("The model could not be loaded (see the side panel).")
        return None
    return model, manifest, format_name


def screened_batch(files: list, model: LoadedModel, manifest: Manifest, format_name: str) -> ScreenedBatch:
    """This session's results for ``files``: graded once per set of uploads, model and format."""
    key = (str(manifest.model_dir.resolve()), format_name, tuple(f.file_id for f in files))
    batch = st.session_state.get("screened")
    if isinstance(batch, ScreenedBatch) and batch.key == key:
        return batch
    uploads = [Upload(f.name, f.getvalue()) for f in files]
    with st.spinner(f"Screening {len(uploads)} image{'s' if len(uploads) != 1 else ''}…"):
        items = screen_uploads(model.classifier, uploads, model.lock)
    batch = ScreenedBatch(key, items, results_csv(items, manifest.classes), heatmaps_zip(items))
    st.session_state["screened"] = batch
    return batch
