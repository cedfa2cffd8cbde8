"""A benchmark report as a text table, as ``RESULTS.md`` Markdown, and as a latency-vs-size plot."""

from __future__ import annotations

from pathlib import Path

from edge_infer.metrics import figure


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
    head = [
        "format",
        "thr",
        "MB",
        "load ms",
        "1st ms",
        "median",
        "p90",
        "p99",
        "GFLOP/s",
        "e2e ms",
        "/raw",
        "+CAM ms",
        "/raw",
        "+PNG ms",
        "/raw",
        "RSS MB",
        "acc",
        "QWK",
        "agree",
    ]
    rows = []
    for r in report["rows"]:
        if "error" in r:
            rows.append([r["format"], str(r["threads"]), _f(r.get("bytes"), 1e-6, 1), "error: " + r["error"]])
            continue
        c = _cells(r)
        rows.append(
            [
                r["format"],
                str(r["threads"]),
                *(
                    c[k]
                    for k in (
                        "mb",
                        "load",
                        "first",
                        "median",
                        "p90",
                        "p99",
                        "gflops",
                        "e2e",
                        "ratio",
                        "e2e_cam",
                        "ratio_cam",
                        "e2e_png",
                        "ratio_png",
                        "rss",
                        "acc",
                        "qwk",
                        "agree",
                    )
                ),
            ]
        )
    measured = [row for row in rows if len(row) == len(head)]
    widths = [max([len(h)] + [len(row[i]) for row in measured]) for i, h in enumerate(head)]
    lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in rows:
        lines.append(
            "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) if len(row) == len(head) else "  ".join(row)
        )
    for c in report["cold_start"]:
        if "error" in c:
            lines.append(f"cold start {c['format']}: error {c['error']}")
        else:
            lines.append(
                f"cold start, whole process (median): edge-infer --format {c['format']} one image {c['edge_infer_s']:.2f} s; "
                f"importing numpy+Pillow+runtime alone {c['imports_s']:.2f} s; ratio {c['ratio']:.2f}"
            )
    return "\n".join(lines)


def markdown(report: dict, command: str) -> str:
    """``benchmarks/RESULTS.md``: the machine, the command, one table, and the ratios that matter."""
    mi = report["machine"]
    lines = [
        f"# Benchmark results: {report['model']}",
        "",
        f"Measured {report.get('created', '')} by:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"- Machine: {mi['cpu']}, {mi['logical_cores']} logical cores, SIMD: {', '.join(mi['simd']) or 'n/a'}; "
        f"{mi['os']}; Python {mi['python']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in mi["versions"].items()) + ".",
        f"- Model: {report['input_size']} px input, {_f(report['gflop_per_image'], 1, 2)} GFLOP per image "
        "(2 × multiply-adds of its convolutions and dense layers, from the manifest). Nominal float32 peak of "
        f"this CPU: {_f(report['nominal_fp32_gflops_per_thread'], 1, 0)} GFLOP/s per thread (clock × FLOP per cycle of its widest FMA).",
        f"- Latency: the raw runtime call on one preprocessed image, batch 1, after {report['settings']['warmup']} "
        f"warm-up calls, for at least {report['settings']['min_time_s']} s of such calls and {report['settings']['min_runs']} calls.",
        "- End to end (e2e): time per knee of a batch of image files run as `edge-infer` runs it: the next files "
        "decoded and preprocessed in a background thread while the network runs, then the result record. +CAM: the "
        "same batch through `Classifier.predict_many(heatmap=True)`, which also computes each Grad-CAM map; +PNG: "
        "`edge-infer --heatmap-dir`, which also writes each overlay as a PNG. Raw invoke and batches alternate "
        'in rounds of one batch each; "/ raw" is the median over rounds of that round\'s ratio to the raw invoke.',
        "- Load: checksum and session or interpreter creation. Each row runs in a fresh process; RSS is that process's peak.",
        "",
        "| format | threads | MB | load ms | first ms | median ms | p90 ms | p99 ms | GFLOP/s | e2e ms | e2e / raw | "
        "e2e+CAM ms | +CAM / raw | e2e+PNG ms | +PNG / raw | peak RSS MB | accuracy | QWK | AUC | agreement |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        if "error" in r:
            lines.append(
                f"| `{r['format']}` | {r['threads']} | {_f(r.get('bytes'), 1e-6, 1)} | error: {r['error']} |"
                + " |" * 16
            )
            continue
        c = _cells(r)
        agree = f"{c['agree']} vs {r['agreement_with']}" if r.get("agreement_with") else "–"
        lines.append(
            f"| `{r['format']}` | {r['threads']} | "
            + " | ".join(
                c[k]
                for k in (
                    "mb",
                    "load",
                    "first",
                    "median",
                    "p90",
                    "p99",
                    "gflops",
                    "e2e",
                    "ratio",
                    "e2e_cam",
                    "ratio_cam",
                    "e2e_png",
                    "ratio_png",
                    "rss",
                    "acc",
                    "qwk",
                    "auc",
                )
            )
            + f" | {agree} |"
        )
    lines += ["", f"Whole-process cold start, one image (median of {report.get('cold_start_repeats', 5)} runs):", ""]
    for c in report["cold_start"]:
        if "error" in c:
            lines.append(f"- `{c['format']}`: error {c['error']}")
        else:
            lines.append(
                f"- `edge-infer --format {c['format']} knee.png`: {c['edge_infer_s']:.2f} s; a Python process that only "
                f"imports numpy, Pillow and the runtime: {c['imports_s']:.2f} s; ratio {c['ratio']:.2f}."
            )
    lines.append("")
    return "\n".join(lines)


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
