"""Time from upload to result on the screening page, in a real headless Chromium.

Starts ``kneeoa app`` from this checkout on a free localhost port; each round opens a fresh
browser session (the model is already loaded: the process loads it once), hands files to the
page's file input and stops the clock when every result's "Took … ms" line is on screen. That
covers the upload over HTTP, Streamlit's rerun, decoding, the input gate, inference, Grad-CAM,
the overlay, the CSV and the zip, and drawing the page. The page's own "Took" figure (decoding,
checks, inference and Grad-CAM alone, per image) is reported beside it.

    python benchmarks/app_upload.py --rounds 10 [--markdown benchmarks/APP_UPLOAD.md] [--screenshot docs/app_page.png]

``--screenshot`` also saves the page after uploading a real validation knee (``examples/9031141R.png``)
and a blank image, which the input gate refuses.

Needs the app extra, selenium (dev extra) and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from appbrowser import REPO, chromium, free_port, missing_browser, open_page, serving, upload

EXAMPLES = sorted((REPO / "examples").glob("*.png"))


def _wait_for_results(web, count: int, timeout: float = 120) -> str:
    """Poll the page (every 10 ms) until ``count`` results show; returns the page's text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = web.execute_script("return document.body.innerText;")
        if text.count("Took ") >= count and "Running..." not in text:
            return text
        time.sleep(0.01)
    raise TimeoutError(f"{count} results did not show within {timeout} s")


def measure(rounds: int) -> dict:
    single, batch, page_ms = [], [], []
    with tempfile.TemporaryDirectory() as tmp, serving(free_port(), Path(tmp) / "server.log") as url:
        web = chromium(Path(tmp))
        try:
            for files, times in [([None], single), (EXAMPLES, batch)]:
                for i in range(rounds):
                    chosen = [EXAMPLES[i % len(EXAMPLES)]] if files == [None] else files
                    open_page(web, url)
                    start = time.perf_counter()
                    upload(web, chosen)
                    text = _wait_for_results(web, len(chosen))
                    times.append(time.perf_counter() - start)
                    page_ms += [int(ms) for ms in re.findall(r"Took (\d+) ms", text)]
        finally:
            web.quit()
    return {"single": single, "batch": batch, "page_ms": page_ms}


def screenshot(path: Path, width: int = 1400, height: int = 1900) -> None:
    """The page with a real validation knee and a blank image (refused), saved as a PNG."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp, serving(free_port(), Path(tmp) / "server.log") as url:
        blank = Path(tmp) / "blank.png"
        Image.new("L", (224, 224), 90).save(blank)
        web = chromium(Path(tmp), width, height)
        try:
            open_page(web, url)
            upload(web, [REPO / "examples" / "9031141R.png", blank])
            _wait_for_results(web, 2)
            time.sleep(2)  # the bar chart draws after the text
            web.save_screenshot(str(path))
        finally:
            web.quit()


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(results: dict, rounds: int) -> str:
    def row(name: str, values: list[float], unit_ms: bool = False) -> str:
        ms = values if unit_ms else [v * 1000 for v in values]
        return f"| {name} | {len(ms)} | {statistics.median(ms):.0f} | {min(ms):.0f} | {max(ms):.0f} |"

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return "\n".join([
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with "
        f"`python benchmarks/app_upload.py --rounds {rounds}`: {_cpu()}, {os.cpu_count()} logical cores, "
        f"load average {load} at the end (other work shares this machine).",
        "",
        "| what | n | median ms | min ms | max ms |",
        "|---|---|---|---|---|",
        row("one knee: upload to result on screen (headless Chromium)", results["single"]),
        row(f"{len(EXAMPLES)} knees at once: upload to all results on screen", results["batch"]),
        row("the page's own per-image time (decode, checks, inference, Grad-CAM)", results["page_ms"], unit_ms=True),
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--markdown", type=Path, help="Also write the table to this file.")
    parser.add_argument("--screenshot", type=Path, help="Also save a screenshot of the page here.")
    args = parser.parse_args()
    reason = missing_browser()
    if reason:
        raise SystemExit(f"app_upload: {reason}")
    text = report(measure(args.rounds), args.rounds)
    print(text)
    if args.markdown:
        args.markdown.write_text(f"# Screening page: upload to result\n\n{text}\n")
    if args.screenshot:
        screenshot(args.screenshot)


if __name__ == "__main__":
    main()
