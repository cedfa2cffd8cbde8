"""How the page shows a model card, one image's result, the summary table and the downloads."""

from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from edge_infer.calibration import calibration_of
from edge_infer.classifier import Prediction
from edge_infer.labels import REFER_LABEL
from edge_infer.manifest import Manifest
from edge_infer.overlay import DEFAULT_OPACITY, heatmap_figure

from .model_info import ModelInfo
from .results import Screened, summary_table

DISPLAY_SIDE = 768
"""Longest side, in pixels, of an image as sent to the browser (a DICOM can be 3000 px)."""


def model_card(bar, info: ModelInfo) -> None:
    """The model card in the side panel: name, intended use, formats and their validation figures, data."""
    bar.header("Model card")
    bar.markdown(f"**{info.name}**")
    bar.warning("Screening aid, not a diagnostic device.")
    bar.markdown(f"**Intended use.** {info.intended_use}")
    if info.screening:
        bar.markdown(f"**Screening.** {info.screening}")
    bar.markdown("**Validation** of each shipped format, as it runs here:\n\n" + _figures_list(info))
    bar.markdown(f"**Data.** {info.attribution}")
    if info.card:
        with bar.expander("Full model card"):
            st.markdown(info.card)


def _figures_list(info: ModelInfo) -> str:
    def cell(value, digits=3):
        return "–" if value is None else f"{value:.{digits}f}"

    lines = []
    for f in info.formats:
        where = f" on {f.images} images" if f.images else ""
        missing = "" if f.installed else " (its runtime is not installed here)"
        lines.append(f"- `{f.name}`{missing}: accuracy {cell(f.accuracy)}, QWK {cell(f.kappa)}, AUC {cell(f.auc)}, "
                     f"sensitivity {cell(f.sensitivity, 2)} / specificity {cell(f.specificity, 2)}{where}")  # fmt: skip
    return "\n".join(lines)


def downloads(csv: bytes, zip_bytes: bytes, heatmaps: int) -> None:
    """The CSV of every record and the zip of the ``heatmaps`` overlays."""
    left, right = st.columns(2)
    left.download_button("Download results (CSV)", csv, file_name="kneeoa_results.csv", mime="text/csv",
                         on_click="ignore", help="The records `edge-infer --output results.csv` writes.")  # fmt: skip
    right.download_button("Download heatmaps (zip)", zip_bytes, file_name="kneeoa_heatmaps.zip",
                          mime="application/zip", on_click="ignore", disabled=heatmaps == 0,
                          help="The overlays `edge-infer --heatmap-dir` writes, one per graded image.")  # fmt: skip


def summary(items: list[Screened]) -> None:
    """A sortable table (click a column's header) of every upload."""
    st.subheader("Summary")
    st.dataframe(
        summary_table(items),
        hide_index=True,
        column_config={"P(OA)": st.column_config.NumberColumn(format="%.3f"),
                       "seconds": st.column_config.NumberColumn(format="%.3f")},
    )  # fmt: skip


def one_image(index: int, item: Screened, manifest: Manifest, format_name: str) -> None:
    """One upload: the X-ray beside its heatmap and the result, or why it has no result."""
    st.divider()
    st.subheader(item.name)
    result, p = item.result, item.result.prediction
    took = f"Took {item.seconds * 1000:.0f} ms (decoding, input checks, inference, Grad-CAM)."
    if p is None:
        what = "refused by the input gate" if result.refusal else "the file could not be read"
        st.error(f"**No grade: {what}.** {result.refusal or result.error}")
        st.caption(took)
        return
    gray, cam = display_arrays(p)
    left, middle, right = st.columns([1, 1.25, 1.1])
    left.image(gray, caption="The X-ray as uploaded", width="stretch")
    with middle:
        opacity = st.slider("Heatmap opacity", 0.0, 1.0, DEFAULT_OPACITY, 0.05, key=f"opacity-{index}")
        st.image(heatmap_figure(gray, cam, opacity), width="stretch",
                 caption=f"Grad-CAM: where the evidence for {_top(p)} lies (colour scale relative to this image)")  # fmt: skip
    with right:
        result_panel(p, manifest, format_name)
        st.caption(took)


def _top(p: Prediction) -> str:
    return f"KL {p.kl_grade}" if p.kl_grade is not None else max(p.probabilities, key=p.probabilities.get)


def result_panel(p: Prediction, manifest: Manifest, format_name: str) -> None:
    """The screening result with its probability and threshold (and the refer band, when the
    model is unsure), the grade and all probabilities, notes."""
    s = manifest.screening
    st.markdown(f"### {p.label}")
    band = calibration_of(manifest, format_name).refer_band
    if p.label == REFER_LABEL and band is not None:
        st.warning(f"**Refer: the model is unsure.** P(OA) {p.oa_probability:.2f} lies in this model's refer band "
                   f"[{band[0]:.2f}, {band[1]:.2f}), where it cannot call Normal or Osteoarthritis with the "
                   "sensitivity and specificity it states. A clinician should read this image.")  # fmt: skip
    if s is not None and p.oa_probability is not None:
        rule = s.rule or " + ".join(s.positive_classes)
        side = "≥" if s.is_positive(p.oa_probability) else "<"
        st.markdown(f"P({rule}) = **{p.oa_probability:.2f}** {side} operating threshold {s.threshold:.2f}")
    if p.kl_grade is not None:
        st.markdown(f"**KL grade {p.kl_grade}** (the most probable grade)")
    names, values = list(p.probabilities), list(p.probabilities.values())
    st.bar_chart({"class": names, "probability": values}, x="class", y="probability", sort=False, height=220)
    st.markdown("  ".join(f"{name} {value:.2f}" for name, value in zip(names, values, strict=True)))
    for note in p.notes:
        st.info(f"Note: {note}")
    st.caption(f"Input gate: {p.gate}.")


def display_arrays(p: Prediction) -> tuple[np.ndarray, np.ndarray]:
    """The image and its map, scaled down together to at most :data:`DISPLAY_SIDE` pixels a side."""
    h, w = p.image.shape
    scale = DISPLAY_SIDE / max(h, w)
    if scale >= 1:
        return p.image, p.cam
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    gray = np.asarray(Image.fromarray(p.image).resize(size, Image.Resampling.LANCZOS))
    cam = np.asarray(Image.fromarray(p.cam).resize(size, Image.Resampling.BILINEAR))
    return gray, np.clip(cam, 0.0, 1.0)
