"""``MODEL_CARD.md`` rendered from ``manifest.json``, so every figure in the card is one that
``kneeoa convert`` (and ``kneeoa train`` before it) measured and recorded."""

from __future__ import annotations

from pathlib import Path

from edge_infer.manifest import MANIFEST_FILE, load_manifest
from edge_infer.metrics import figure
from kneeoa_train.config import training_command
from kneeoa_train.model import NO_WEIGHTS
from kneeoa_train.swa import chosen_checkpoint

CARD_FILE = "MODEL_CARD.md"

_fmt = figure


def _artifact_rows(m) -> list[str]:
    rows = [
        "| format | file | MB | top-1 agreement with Keras (all / clear calls¹) | max abs Δp | Grad-CAM r (mean) | accuracy | kappa | AUC (KL ≥ 2) | sensitivity / specificity² |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, art in m.artifacts.items():
        p = art.info["parity_vs_keras"]
        clear = p.get("top1_agreement_when_keras_margin_ge_0.1")
        rows.append(
            f"| `{name}` | `{art.file}` | {art.info['bytes'] / 1e6:.1f} | {_fmt(p['top1_agreement'])} / {_fmt(clear)} | "
            f"{p['max_abs_dp']:.4f} | {_fmt(p['gradcam_r_mean'])} | {_fmt(p['accuracy'])} | "
            f"{_fmt(p.get('quadratic_weighted_kappa'))} | {_fmt(p.get('screening_auc'))} | "
            f"{_fmt(p.get('sensitivity'))} / {_fmt(p.get('specificity'))} |"
        )
    return rows


def _limits(m, cfg: dict, cited: bool) -> list[str]:
    limits = [
        "- Trained and validated on single-knee crops"
        + (" from one cohort (OAI, via the dataset above)" if cited else "")
        + "; other populations, projections, implants and whole-leg films are outside what it was shown.",
        "- Figures are on the validation split that also selected the checkpoint; no held-out test split was used.",
        f"- The feature map is {m.feature_shape[0]}×{m.feature_shape[1]}, so the Grad-CAM heatmap is "
        + ("coarse." if min(m.feature_shape[:2]) < 8 else "of moderate resolution."),
    ]
    if cfg.get("weights") in NO_WEIGHTS:
        limits.insert(
            1,
            "- Trained from scratch (no ImageNet weights were available); expect lower accuracy than "
            "ImageNet-pretrained models (Chen et al. 2019 reached 69.7% on this dataset's official test split).",
        )
    return limits


def _model_summary(m, cfg: dict) -> str:
    d = m.data
    origin = (
        "trained from scratch"
        if cfg.get("weights") in NO_WEIGHTS
        else f"backbone initialised from {cfg.get('weights')}"
    )
    text = (
        f"InceptionV3 cut at `{d['outputs']['features']['layer']}` ({origin}); head: {d['gradcam_head']['architecture']}. "
        f"Input {m.preprocess.size}×{m.preprocess.size} px grey ({d['preprocess']['resize']}). "
        f"Classes: {', '.join(m.classes)}."
    )
    if m.screening:
        s = m.screening
        text += (
            f" Screening: {s.positive_label} when the summed probability of {', '.join(s.positive_classes)} "
            f"({s.rule}) is at least {s.threshold}, else {s.negative_label}."
        )
    return text


def _dropped_and_agreement(d: dict) -> list[str]:
    lines = []
    pairs = d.get("agreement_between_formats") or {}
    if pairs:
        lines += [
            "Top-1 agreement between the shipped formats: " + "; ".join(f"{k} {v:.3f}" for k, v in pairs.items()) + ".",
            "",
        ]
    dropped = d.get("dropped_formats") or {}
    if dropped:
        lines += ["Formats measured but not shipped in this directory:", ""]
        lines += [
            f"- `{n}` ({e['bytes'] / 1e6:.1f} MB, top-1 agreement {_fmt(e['parity_vs_keras']['top1_agreement'])}, "
            f"Grad-CAM r {_fmt(e['parity_vs_keras']['gradcam_r_mean'])}): {e['reason']}"
            for n, e in dropped.items()
        ]
        lines.append("")
    return lines


def _model_dir_arg(m) -> str:
    """``models/<name>`` for a model directory inside a checkout, else its path."""
    return f"models/{m.model_dir.name}" if m.model_dir.parent.name == "models" else str(m.model_dir)


def _training_commands(training: dict) -> list[str]:
    stages = [st for st in training.get("earlier_stages") or [] if st.get("config")]
    if not stages:
        return ["```bash", training_command(training["config"]), "```"]
    lines = [
        f"Trained in {len(stages) + 1} stages: each stage starts from the previous stage's selected "
        "checkpoint (`--init-from`), at a larger input size (progressive resizing) or at the same size "
        "to average weights (`--swa-epochs`).",
        "",
        "```bash",
    ]
    for st in stages:
        v = (st.get("validation") or {}).get("val", {})
        lines += [
            f"# {st['config']['input_size']} px: selected {chosen_checkpoint(st.get('validation') or {})}, "
            f"val accuracy {_fmt(v.get('accuracy'))}, QWK {_fmt(v.get('quadratic_weighted_kappa'))}",
            training_command(st["config"]),
        ]
    return lines + [f"# {training['config']['input_size']} px: this model", training_command(training["config"]), "```"]


def render_model_card(model_dir: str | Path) -> str:
    """The card as Markdown, from the model directory's manifest."""
    m = load_manifest(model_dir)
    d = m.data
    training = d["training"]
    lines = [
        f"# Model card: {m.name}",
        "",
        f"Created {d['created']} by `kneeoa convert`; every figure below is read from `{MANIFEST_FILE}`.",
        "",
        "## Intended use",
        "",
        d["intended_use"],
        "",
        "## Model",
        "",
        _model_summary(m, training["config"]),
        "",
        "## Data",
        "",
        training.get("data_citation") or "See the training configuration below.",
        "",
        f"Images per class (train / validation): {training['counts']['train']} / {training['counts']['val']}.",
        "",
        *_training_section(d),
        *_validation_section(m),
        *_gate_section(d),
        *_uncertainty_section(d),
        "## Limits",
        "",
        *_limits(m, training["config"], bool(training.get("data_citation"))),
        "",
        *(["## Development notes", "", d["notes"].strip(), ""] if d.get("notes") else []),
    ]
    return "\n".join(lines)


def _training_section(d: dict) -> list[str]:
    training = d["training"]
    cfg = training["config"]
    chosen = training.get("validation") or {}
    return [
        "## Training",
        "",
        *_training_commands(training),
        "",
        f"The Keras model it writes (`{d['source_model']['file']}`, {d['source_model'].get('bytes', 0) / 1e6:.0f} MB, "
        f"sha256 `{d['source_model']['sha256'][:16]}…`) is kept out of git; "
        f"{'these commands rebuild' if training.get('earlier_stages') else 'this command rebuilds'} it "
        "(training from scratch is not bit-for-bit repeatable, so expect figures close to, not equal to, these).",
        "",
        f"Checkpoint chosen on validation {chosen.get('selected_on', '')}: {chosen_checkpoint(chosen)} "
        f"(the run had {cfg['epochs']} epochs).",
        "",
        *_strategy_line(training.get("strategy")),
    ]


def _strategy_line(strategy: dict | None) -> list[str]:
    """How the run was distributed (``kneeoa train --strategy``); runs before strategies existed say nothing."""
    if not strategy:
        return []
    return [
        f"Distribution: `{strategy['name']}` strategy, {strategy['replicas']} replica(s) on {strategy['workers']} "
        f"worker(s) (asked: `--strategy {strategy['asked']}`).",
        "",
    ]


def _validation_section(m) -> list[str]:
    d = m.data
    val = (d["training"].get("validation") or {}).get("val", {})
    first = next(iter(m.artifacts.values())).info["parity_vs_keras"]
    return [
        "## Validation",
        "",
        f"Float32 Keras model on the validation split (n = {val.get('n', 'n/a')}): accuracy {_fmt(val.get('accuracy'))}, "
        f"balanced accuracy {_fmt(val.get('balanced_accuracy'))}, quadratic weighted kappa {_fmt(val.get('quadratic_weighted_kappa'))}, "
        f"MAE {_fmt(val.get('mean_absolute_error'))} KL grades, AUC (KL ≥ 2) {_fmt(val.get('screening_auc'))}.",
        "",
        f"Each shipped format, run on the edge runtime over {first['n']} images of `{first['source']}`:",
        "",
        *_artifact_rows(m),
        "",
        f"¹ Clear calls: knees where the Keras model's two most probable grades differ by at least 0.1 "
        f"({_fmt(first.get('keras_margin_ge_0.1_share'))} of these images); disagreements concentrate on the rest, "
        "where the float model itself hesitates between neighbouring grades.",
        f"² Screening at the operating threshold (summed P(KL ≥ 2) ≥ {m.screening.threshold if m.screening else 'n/a'}).",
        "",
        *_dropped_and_agreement(d),
        *_reproduce(m, first),
    ]


def _gate_section(d: dict) -> list[str]:
    gate = d.get("gate")
    if not gate:
        return ["## Input gate", "", "No fitted input gate: only the image checks (blank, aspect ratio) run. "
                "Fit one with `kneeoa gate`.", ""]  # fmt: skip
    fitted = gate["fitted_on"]
    rows = ["| format | validation knees refused | refusal rate | refused first by image checks / distance / "
            "orientation / polarity | scored as negatives |", "|---|---|---|---|---|"]  # fmt: skip
    for fmt, entry in gate["formats"].items():
        v = entry["validation"]
        by = v["refused_by"]
        rows.append(f"| `{fmt}` | {v['refused']} of {v['n']} | {v['false_refusal_rate']:.3f} | {by.get('image', 0)} / "
                    f"{by['distance']} / {by['not_upright']} / {by['negative']} | {v.get('negatives', '')} |")  # fmt: skip
    return [
        "## Input gate",
        "",
        f"Before a grade is reported, every image is checked ({gate['method']}). Fitted per format on "
        f"{fitted['images']} training knees of `{fitted['source']}` and their wrong versions "
        f"({', '.join(fitted['transforms'])}); thresholds set on `{gate['validation_source']}` so that at most "
        f"{gate['target_false_refusal_rate']:.1%} of its knees are refused:",
        "",
        *rows,
        "",
        *_negatives_note(gate),
        "A refused image gets no grade and no Normal/Osteoarthritis label, only the reason. Measure it on "
        "images that are not knee crops with `kneeoa evaluate VAL --ood DIR` (`python -m kneeoa_bench.oodset` "
        "builds such a set).",
        "",
    ]


def _negatives_note(gate: dict) -> list[str]:
    """What the gate does with radiographs stored as negatives, in the data it was fitted on."""
    if "polarity_boundary" not in gate:
        return []
    left_out = gate["fitted_on"].get("left_out_as_stored_negatives", 0)
    gaps = "; ".join(
        f"`{fmt}`: negatives {p['negatives_min']} and up, every other knee {p['others_max']} and down"
        for fmt, e in gate["formats"].items()
        if (p := e["validation"].get("polarity_scores")) and None not in p.values()
    )
    return [
        "The polarity check refuses at its regression's own boundary (log-odds "
        f"{gate['polarity_boundary']:g}), not at a percentile: a negative image (bone dark) is never what the "
        "model was made for, even when the dataset holds it, and such knees count against the refusal budget. "
        f"{left_out} training knees stored as negatives were left out of the fit."
        + (f" Polarity scores of the validation knees: {gaps}." if gaps else ""),
        "",
    ]


def _uncertainty_section(d: dict) -> list[str]:
    blocks = {fmt: a["calibration"] for fmt, a in d["artifacts"].items() if a.get("calibration")}
    if not blocks:
        return ["## Calibration and referral", "", "Not calibrated: the probabilities are the network's own and no "
                "knee is referred. Fit with `kneeoa calibrate MODEL_DIR --val DIR`.", ""]  # fmt: skip
    rows = ["| format | temperature | ECE before → after | NLL before → after | Refer band (P(OA)) | referred | "
            "sensitivity / specificity of the knees called |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for fmt, c in blocks.items():
        band = f"[{c['refer_band'][0]:.3f}, {c['refer_band'][1]:.3f})" if c.get("refer_band") else "none"
        called = (f"{c['called_sensitivity']:.3f} / {c['called_specificity']:.3f}" if c.get("reached")
                  else "targets not reached: every knee referred")  # fmt: skip
        rows.append(f"| `{fmt}` | {c['temperature']:.3f} | {c['ece_before']:.3f} → {c['ece_after']:.3f} | "
                    f"{c['nll_before']:.3f} → {c['nll_after']:.3f} | {band} | {c['referral_rate']:.1%} | {called} |")  # fmt: skip
    first = next(iter(blocks.values()))
    return [
        "## Calibration and referral",
        "",
        f"Fitted per format by `kneeoa convert` (or `kneeoa calibrate`) on the {first['n']} knees of "
        f"`{first.get('fitted_on', 'the validation folder')}` that the input gate passes, through that format as the "
        "device runs it. The device reports `softmax(log p / T)` (temperature scaling: the KL grade never changes), "
        "and calls a knee `Refer` (uncertain: a clinician reads it) when its calibrated P(OA) falls in the band: "
        f"the narrowest band with which the knees it does call reach sensitivity ≥ {first['target_sensitivity']:.2f} "
        f"and specificity ≥ {first['target_specificity']:.2f}. ECE: expected calibration error of the top class, "
        "15 bins.",
        "",
        *rows,
        "",
        "The band and temperature were chosen on the same knees these figures are measured on, so on new knees "
        "expect somewhat more referrals or lower figures. `kneeoa evaluate` measures them on any labelled folder.",
        "",
    ]


def _reproduce(m, first: dict) -> list[str]:
    how = (
        "Reproduce a format's row from what ships, on the runtime-only install (no TensorFlow); it also writes "
        "the confusion matrix, ROC curve and per-image predictions:"
        if first.get("source_images") == first["n"]
        else f"Score what ships on the whole folder (the table above used a class-balanced draw of {first['n']} of its "
        f"{first.get('source_images', 'n/a')} images), on the runtime-only install; it also writes the confusion "
        "matrix, ROC curve and per-image predictions:"
    )
    evaluate = [
        f"kneeoa evaluate {first['source']} --model {_model_dir_arg(m)} --format {name} --out eval-{name}"
        for name in m.artifacts
    ]
    return [
        "Reproduce the table: train as above, then",
        "",
        "```bash",
        m.data.get("conversion", {}).get("command", "kneeoa convert"),
        "```",
        "",
        how,
        "",
        "```bash",
        *evaluate,
        "```",
        "",
        "`python -m pytest tests/test_default_model.py` checks that what ships still reaches these figures.",
        "",
    ]


def write_model_card(model_dir: str | Path) -> Path:
    path = Path(model_dir) / CARD_FILE
    path.write_text(render_model_card(model_dir))
    return path
