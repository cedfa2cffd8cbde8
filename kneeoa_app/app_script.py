"""The script ``streamlit run`` executes on every interaction; the page lives in :mod:`kneeoa_app.page`."""

from kneeoa_app.page import render

render()
