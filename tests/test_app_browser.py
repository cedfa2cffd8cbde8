"""``kneeoa app`` end to end in a real headless Chromium: served on a free localhost port, a
real knee, a synthetic knee and a text file uploaded through the page's own file input. The page
must show the knee's result and heatmap, the refusal and the unreadable file's reason, offer a CSV
download equal to ``edge-infer --output``, and fetch nothing from outside this machine; the server
(under strace) must connect nowhere else either. A screenshot is saved as a test artifact."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from PIL import Image

from edge_infer.cli import main as edge_infer

from appbrowser import (
    REPO,
    chromium,
    free_port,
    missing_browser,
    open_page,
    outside_connections,
    outward_address,
    port_is_open,
    requested_urls,
    serving,
    upload,
    wait_for,
)
from synthetic import synthetic_knee

_MISSING = missing_browser() or (
    None if importlib.util.find_spec("streamlit") else 'streamlit is not installed (pip install -e ".[app]")'
)
pytestmark = [pytest.mark.browser, pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))]

KNEE = REPO / "examples" / "9023348L.png"


def _artifacts() -> Path:
    folder = Path(os.environ.get("KNEEOA_TEST_ARTIFACTS", REPO / "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("uploads with spaces")
    shutil.copy(KNEE, folder / KNEE.name)
    Image.fromarray(synthetic_knee(2, 224, seed=1)).save(folder / "synthetic knee.png")
    (folder / "notes.txt").write_text("not an image\n")
    return [folder / KNEE.name, folder / "synthetic knee.png", folder / "notes.txt"]


@pytest.fixture(scope="module")
def cli_csv(inputs) -> bytes:
    """What ``edge-infer --output`` writes for the same files, named as the page names them."""
    cwd = os.getcwd()
    os.chdir(inputs[0].parent)
    try:
        result = CliRunner().invoke(
            edge_infer, ["--output", "cli.csv", "--heatmap-dir", ".", *(p.name for p in inputs)]
        )
        assert result.exit_code == 1, result.output
        return (inputs[0].parent / "cli.csv").read_bytes()
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def visit(inputs, tmp_path_factory) -> SimpleNamespace:
    """One browser session against a fresh ``kneeoa app``: page load, upload, result, CSV download."""
    work = tmp_path_factory.mktemp("browser")
    strace_log = work / "strace.log" if shutil.which("strace") else None
    downloads = work / "downloads"
    downloads.mkdir()
    port = free_port()
    with serving(port, work / "server.log", strace_log) as url:
        web = chromium(downloads)
        try:
            open_page(web, url)
            outward = outward_address()
            reachable_outside = outward is not None and port_is_open(port, outward)
            upload(web, inputs)
            text = wait_for(web, lambda t: "KL grade" in t and t.count("No grade:") == 2 and "Took" in t)
            images = web.execute_script(
                "return [...document.images].map(i => [i.naturalWidth, i.naturalHeight, i.complete]);"
            )
            web.find_element("xpath", "//button[.//*[contains(text(), 'Download results (CSV)')]]").click()
            csv_path = downloads / "kneeoa_results.csv"
            deadline = time.monotonic() + 30
            while not csv_path.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1)  # let the page settle (and any late request show) before the screenshot
            web.save_screenshot(str(_artifacts() / "app_page.png"))
            urls = requested_urls(web)
        finally:
            web.quit()
    return SimpleNamespace(text=text, images=images, csv=csv_path, urls=urls, strace=strace_log, url=url,
                           stopped=not port_is_open(port), outward=outward, reachable_outside=reachable_outside)  # fmt: skip


def test_the_page_shows_the_result_the_heatmap_and_the_reasons(visit, cli_csv):
    rows = list(csv.DictReader(io.StringIO(cli_csv.decode())))
    knee, synthetic, text = rows
    assert f"KL grade {knee['kl_grade']} (the most probable grade)" in visit.text
    assert knee["label"] in visit.text and f"= {float(knee['oa_probability']):.2f} " in visit.text
    assert "Grad-CAM: where the evidence for KL" in visit.text
    assert synthetic["refused"] and f"No grade: refused by the input gate. {synthetic['refused']}" in visit.text
    assert f"No grade: the file could not be read. {text['error']}" in visit.text
    assert visit.text.count("KL grade") == 1  # the refused and unreadable files have none
    shown = [(w, h) for w, h, done in visit.images if done and w > 0]
    with Image.open(KNEE) as im:
        knee_size = im.size
    assert knee_size in shown  # the X-ray as uploaded
    assert any(h == knee_size[1] and w > knee_size[0] for w, h in shown)  # its overlay, with the legend beside it
    assert (_artifacts() / "app_page.png").stat().st_size > 10_000


def test_the_csv_download_is_what_edge_infer_output_writes(visit, cli_csv):
    assert visit.csv.exists(), "the CSV download did not arrive"
    assert visit.csv.read_bytes() == cli_csv


def test_the_page_fetches_nothing_from_outside_this_machine(visit):
    host = visit.url.rstrip("/")
    websocket = host.replace("http://", "ws://")
    assert any(u.startswith(websocket) for u in visit.urls), "the page's websocket was not seen: the log is empty?"
    outside = [u for u in visit.urls if not (u.startswith((host, websocket)) or u.startswith(("data:", "blob:")))]
    assert not outside, f"requests beyond {host}: {outside}"
    assert len(visit.urls) > 20  # scripts, fonts, the uploads, the images: the log really covers the page


def test_the_server_connects_nowhere_outside_this_machine(visit):
    if visit.strace is None:
        pytest.skip("strace is not installed (apt-get install -y strace)")
    log = visit.strace.read_text()
    assert "sendto(" in log and "HTTP/1.1 200" in log  # the trace covers the server's sockets: it saw it answer
    assert outside_connections(visit.strace) == []


def test_ctrl_c_stops_the_server_and_frees_its_port(visit):
    assert visit.stopped


def test_by_default_the_page_is_served_to_this_machine_only(visit):
    if visit.outward is None:
        pytest.skip("this machine has no address besides loopback to try")
    assert not visit.reachable_outside, f"the page answered on {visit.outward}"
