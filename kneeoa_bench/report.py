"""A benchmark report as a text table, as ``RESULTS.md`` Markdown, and as a latency-vs-size plot."""

from __future__ import annotations

from pathlib import Path

from edge_infer.metrics import figure

COLUMNS = (
    # (cell key, text-table header, Markdown header)
    *(("mb", "MB", "MB"), ("load", "load ms", "load ms"), ("first", "1st ms", "first ms")),
    *(("median", "median", "median ms"), ("p90", "p90", "p90 ms"), ("p99", "p99", "p99 ms")),
    *(("gflops", "GFLOP/s", "GFLOP/s"), ("e2e", "e2e ms", "e2e ms"), ("ratio", "/raw", "e2e / raw")),
    *(("e2e_cam", "+CAM ms", "e2e+CAM ms"), ("ratio_cam", "/raw", "+CAM / raw")),
    *(("e2e_png", "+PNG ms", "e2e+PNG ms"), ("ratio_png", "/raw", "+PNG / raw")),
    *(("gate", "gate %", "gate cost %"), ("rss", "RSS MB", "peak RSS MB")),
    *(("acc", "acc", "accuracy"), ("qwk", "QWK", "QWK")),
)
"""The measured columns after format and threads, in order; the text table ends with agreement,
the Markdown with AUC and agreement."""


def table(report: dict) -> str:
    """The report as a readable text table, machine first."""
    mi = report["machine"]
    lines = [
        f"machine: {mi['cpu']}, {mi['logical_cores']} logical cores, SIMD {' '.join(mi['simd']) or 'n/a'}; "
        f"{mi['os']}, Python {mi['python']}; " + ", ".join(f"{k} {v}" for k, v in mi["versions"].items()),
        f"model: {report['model']} ({report['input_size']} px, {_f(report['gflop_per_image'], 1, 2)} GFLOP per image); "
        f"nominal float32 peak {_f(report['nominal_fp32_gflops_per_thread'], 1, 0)} GFLOP/s per thread",
        "",
    ]
    head = ["format", "thr", *(h for _, h, _ in COLUMNS), "agree"]
    rows = []
    for r in report["rows"]:
        if "error" in r:
            rows.append([r["format"], str(r["threads"]), _f(r.get("bytes"), 1e-6, 1), "error: " + r["error"]])
            continue
        c = _cells(r)
        rows.append([r["format"], str(r["threads"]), *(c[k] for k, _, _ in COLUMNS), c["agree"]])
    measured = [row for row in rows if len(row) == len(head)]
    widths = [max([len(h)] + [len(row[i]) for row in measured]) for i, h in enumerate(head)]
    for row in [head, *rows]:
        full = len(row) == len(head)
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) if full else "  ".join(row))
    lines += _cold_start_lines(report, markdown=False)
    return "\n".join(lines)


def markdown(report: dict, command: str) -> str:
    """``benchmarks/RESULTS.md``: the machine, the command, one table, and the ratios that matter."""
    lines = [f"# Benchmark results: {report['model']}", "", f"Measured {report.get('created', '')} by:", ""]
    lines += ["```bash", command, "```", "", *_method_lines(report), ""]
    head = ["format", "threads", *(h for _, _, h in COLUMNS), "AUC", "agreement"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["rows"]:
        if "error" in r:
            cells = [f"`{r['format']}`", str(r["threads"]), _f(r.get("bytes"), 1e-6, 1), f"error: {r['error']}"]
            lines.append("| " + " | ".join(cells) + " |" + " |" * (len(head) - len(cells)))
            continue
        c = _cells(r)
        agree = f"{c['agree']} vs {r['agreement_with']}" if r.get("agreement_with") else "–"
        cells = [f"`{r['format']}`", str(r["threads"]), *(c[k] for k, _, _ in COLUMNS), c["auc"], agree]
        lines.append("| " + " | ".join(cells) + " |")
    repeats = report.get("cold_start_repeats", 5)
    lines += ["", f"Whole-process cold start, one image (median of {repeats} runs):", ""]
    lines += _cold_start_lines(report, markdown=True)
    return "\n".join([*lines, ""])


def _method_lines(report: dict) -> list[str]:
    """How each figure of the Markdown table was measured."""
    mi, settings = report["machine"], report["settings"]
    return [
        f"- Machine: {mi['cpu']}, {mi['logical_cores']} logical cores, SIMD: {', '.join(mi['simd']) or 'n/a'}; "
        f"{mi['os']}; Python {mi['python']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in mi["versions"].items()) + ".",
        f"- Model: {report['input_size']} px input, {_f(report['gflop_per_image'], 1, 2)} GFLOP per image "
        "(2 × multiply-adds of its convolutions and dense layers, from the manifest). Nominal float32 peak of "
        f"this CPU: {_f(report['nominal_fp32_gflops_per_thread'], 1, 0)} GFLOP/s per thread (clock × FLOP per cycle "
        "of its widest FMA).",
        f"- Latency: the raw runtime call on one preprocessed image, batch 1, after {settings['warmup']} "
        f"warm-up calls, for at least {settings['min_time_s']} s of such calls and {settings['min_runs']} calls.",
        "- End to end (e2e): time per knee of a batch of image files run as `edge-infer` runs it: the next files "
        "decoded and preprocessed in a background thread while the network runs, then the result record. +CAM: the "
        "same batch through `Classifier.predict_many(heatmap=True)`, which also computes each Grad-CAM map; +PNG: "
        "`edge-infer --heatmap-dir`, which also writes each overlay as a PNG. Raw invoke and batches alternate "
        'in rounds of one batch each; "/ raw" is the median over rounds of that round\'s ratio to the raw invoke.',
        "- Gate cost: the plain batch with the input gate's checks against the same batch with the gate off, "
        "as the median over rounds of that round's ratio, minus 1.",
        "- Load: checksum and session or interpreter creation. Each row runs in a fresh process; RSS is that "
        "process's peak.",
    ]


def _cold_start_lines(report: dict, markdown: bool) -> list[str]:
    lines = []
    for c in report["cold_start"]:
        if "error" in c:
            lines.append(
                f"- `{c['format']}`: error {c['error']}"
                if markdown
                else f"cold start {c['format']}: error {c['error']}"
            )
        elif markdown:
            lines.append(
                f"- `edge-infer --format {c['format']} knee.png`: {c['edge_infer_s']:.2f} s; a Python process that only "
                f"imports numpy, Pillow and the runtime: {c['imports_s']:.2f} s; ratio {c['ratio']:.2f}."
            )
        else:
            lines.append(
                f"cold start, whole process (median): edge-infer --format {c['format']} one image "
                f"{c['edge_infer_s']:.2f} s; importing numpy+Pillow+runtime alone {c['imports_s']:.2f} s; "
                f"ratio {c['ratio']:.2f}"
            )
    return lines


def _cells(r: dict) -> dict[str, str]:
    """A measured row's figures, formatted once for both the text table and the Markdown."""
    acc = r.get("accuracy") or {}
    e2e, cam, png = (r.get(k) or {} for k in ("end_to_end", "end_to_end_gradcam", "end_to_end_heatmap_png"))
    return {
        "mb": _f(r.get("bytes"), 1e-6, 1),
        "load": _f(r["load_ms"]),
        "first": _f(r["first_ms"], 1, 1),
        **{k: _f(r["latency"][f"{k}_ms"], 1, 2) for k in ("median", "p90", "p99")},
        "gflops": _f(r.get("gflop_per_s"), 1, 1),
        "e2e": _f(e2e.get("median_ms"), 1, 2),
        "e2e_cam": _f(cam.get("median_ms"), 1, 2),
        "e2e_png": _f(png.get("median_ms"), 1, 2),
        "ratio": _f(e2e.get("ratio_to_raw"), 1, 2),
        "ratio_cam": _f(cam.get("ratio_to_raw"), 1, 2),
        "ratio_png": _f(png.get("ratio_to_raw"), 1, 2),
        "rss": _f(r["peak_rss_mb"]),
        "gate": _f(r.get("gate_cost"), 100, 1),
        "acc": _f(acc.get("accuracy"), 1, 3),
        "qwk": _f(acc.get("quadratic_weighted_kappa"), 1, 3),
        "auc": _f(acc.get("screening_auc"), 1, 3),
        "agree": _f(r.get("agreement"), 1, 3),
    }


def _f(v, scale: float = 1.0, digits: int = 0) -> str:
    return figure(v, digits, scale, missing="–")


def plot(report: dict, path: str | Path) -> Path:
    """Latency (median, most threads) against file size, each point labelled with accuracy."""
    from .plots import scatter_png

    best: dict[str, dict] = {}
    for r in report["rows"]:
        if "error" not in r and (r["format"] not in best or r["threads"] > best[r["format"]]["threads"]):
            best[r["format"]] = r
    accuracy = {r["format"]: r["accuracy"]["accuracy"] for r in report["rows"] if r.get("accuracy")}
    points = []
    for name, r in best.items():
        acc = accuracy.get(name)
        points.append(
            (r["bytes"] / 1e6, r["latency"]["median_ms"], name + (f" (acc {acc:.3f})" if acc is not None else ""))
        )
    return scatter_png(
        points,
        path,
        f"{report['model']}: latency vs size",
        "file size (MB)",
        f"median latency (ms), batch 1, {max(report['settings']['threads'])} threads",
    )
