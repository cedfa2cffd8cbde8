"""Driving ``kneeoa app`` in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, through Selenium), for tests/test_app_browser.py and
benchmarks/app_upload.py. Nothing is downloaded: Selenium is pointed at the system driver, so
its own driver manager never runs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
INSTALL = "apt-get install -y chromium chromium-driver"
LOOPBACK = re.compile(r"^(127\.|::1$|::ffff:127\.|localhost$)")


def chromium_paths() -> tuple[str | None, str | None]:
    """The system Chromium and its driver, or ``None`` for a missing one."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    return browser, shutil.which("chromedriver")


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    browser, driver = chromium_paths()
    if browser is None or driver is None:
        return f"no system Chromium and chromedriver ({INSTALL})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return 'selenium is not installed (pip install -e ".[dev]")'
    return None


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex((host, port)) == 0


def outward_address() -> str | None:
    """This machine's address on its default route (a UDP "connect" sends nothing), or ``None``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if LOOPBACK.match(address) else address


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(port: int, log: Path, strace_log: Path | None = None, model_dir: Path | None = None) -> Iterator[str]:
    """``kneeoa app --port PORT`` from this checkout, until the block ends; yields its URL.

    With ``strace_log``, the server runs under ``strace -f``, recording every socket it connects
    or sends to.
    """
    command = [sys.executable, "-m", "kneeoa.cli", "app", "--port", str(port)]
    if model_dir is not None:
        command += ["--model", str(model_dir)]
    if strace_log is not None:
        command = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-e", "signal=none",
                   "-o", str(strace_log), *command]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    url = f"http://127.0.0.1:{port}/"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_healthy(server, url, log)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it: to the server (and strace)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
                raise RuntimeError("kneeoa app did not stop on Ctrl-C within 30 s") from None


def _wait_healthy(server: subprocess.Popen, url: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"kneeoa app exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "_stcore/health", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"kneeoa app did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def chromium(download_dir: Path, width: int = 1400, height: int = 1800):
    """A headless Chromium that logs every request and saves downloads in ``download_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})  # fmt: skip
    web = webdriver.Chrome(service=Service(driver), options=options)
    web.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return web


def open_page(web, url: str, timeout: float = 90) -> None:
    """Load the page and wait until its uploader is there (the model is loaded by then)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    web.get(url)
    WebDriverWait(web, timeout).until(lambda w: w.find_elements(By.CSS_SELECTOR, "input[type=file]"))
    wait_for(web, lambda text: "Upload one or more knee X-rays" in text, timeout)


def upload(web, paths: list[Path]) -> None:
    from selenium.webdriver.common.by import By

    web.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys("\n".join(str(p) for p in paths))


def page_text(web) -> str:
    from selenium.webdriver.common.by import By

    return web.find_element(By.TAG_NAME, "body").text


def wait_for(web, condition, timeout: float = 120) -> str:
    """Wait until ``condition(page text)`` holds; returns that text."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(web, timeout, poll_frequency=0.05).until(lambda w: condition(page_text(w)))
    return page_text(web)


def requested_urls(web) -> list[str]:
    """Every URL the page requested since the last call (from Chromium's performance log)."""
    urls = []
    for entry in web.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            params = message["params"]
            urls.append(params["request"]["url"] if "request" in params else params["url"])
    return urls


def outside_connections(strace_log: Path) -> list[str]:
    """The strace lines in which a process connected or sent to an address off this machine."""
    outside = []
    for line in strace_log.read_text(errors="replace").splitlines():
        for address in re.findall(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', line):
            host = address[0] or address[1]
            if not LOOPBACK.match(host) and host not in ("0.0.0.0", "::"):
                outside.append(line)
    return outside
