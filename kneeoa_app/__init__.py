"""The screening page (``kneeoa app``): upload knee X-rays, read each grade, screening result and
Grad-CAM heatmap, download the records. Streamlit on top of :mod:`edge_infer` and nothing else of
the project, so it runs on a device's runtime-only install plus the ``app`` extra.

- :mod:`kneeoa_app.launch`: the Streamlit configuration and the launcher ``kneeoa app`` calls.
- :mod:`kneeoa_app.results`: uploads through the batch engine; the CSV and heatmap downloads.
- :mod:`kneeoa_app.model_info`: the side panel's model card, read from the model directory.
- :mod:`kneeoa_app.page`, :mod:`kneeoa_app.views`: the page itself (Streamlit).
"""
