"""What the side panel says about a model: read from its ``manifest.json`` and ``MODEL_CARD.md``,
never typed into the page, so a different model directory describes itself."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edge_infer.formats import FORMATS
from edge_infer.manifest import Manifest
from edge_infer.runtimes import INSTALL_HINTS, engine_available

MODEL_CARD_FILE = "MODEL_CARD.md"
NO_ATTRIBUTION = "This model directory has no MODEL_CARD.md with a Data section: its training data is not stated."


@dataclass(frozen=True)
class FormatFigures:
    """One shipped format and its validation figures (``None`` where the manifest has none)."""

    name: str
    engine: str
    installed: bool
    megabytes: float | None
    accuracy: float | None
    kappa: float | None
    auc: float | None
    sensitivity: float | None
    specificity: float | None
    images: int | None


@dataclass(frozen=True)
class ModelInfo:
    """The model card as the side panel shows it.

    Attributes:
        name: The model's name.
        intended_use: The manifest's statement of intended use.
        screening: The screening rule and threshold, e.g. ``KL >= 2, P ≥ 0.50``; ``None`` without one.
        formats: Each shipped format, in the registry's order.
        attribution: The model card's Data section (Markdown), or :data:`NO_ATTRIBUTION`.
        card: The whole model card (Markdown), or ``None``.
    """

    name: str
    intended_use: str
    screening: str | None
    formats: tuple[FormatFigures, ...]
    attribution: str
    card: str | None

    @property
    def installed_formats(self) -> list[str]:
        return [f.name for f in self.formats if f.installed]

    def missing_engines(self) -> list[str]:
        """One line per shipped format whose engine is not installed, naming the extra."""
        return [f"{f.name}: {INSTALL_HINTS[FORMATS[f.name].engine]}" for f in self.formats if not f.installed]


def model_info(manifest: Manifest) -> ModelInfo:
    """The side panel's view of ``manifest`` and the model card beside it."""
    data = manifest.data
    formats = tuple(_figures(name, art.info) for name, art in manifest.artifacts.items())
    s = manifest.screening
    rule = f"{s.positive_label} when P({s.rule or ' + '.join(s.positive_classes)}) ≥ {s.threshold:.2f}" if s else None
    card = _read_card(manifest.model_dir)
    return ModelInfo(
        name=manifest.name,
        intended_use=data.get("intended_use") or "Not stated in the manifest.",
        screening=rule,
        formats=formats,
        attribution=card_section(card, "Data") if card else NO_ATTRIBUTION,
        card=card,
    )


def _figures(name: str, info: dict) -> FormatFigures:
    v = info.get("parity_vs_keras") or {}
    size = info.get("bytes")
    return FormatFigures(
        name=name,
        engine=FORMATS[name].engine.value,
        installed=engine_available(FORMATS[name].engine),
        megabytes=round(size / 1e6, 1) if isinstance(size, (int, float)) else None,
        accuracy=v.get("accuracy"),
        kappa=v.get("quadratic_weighted_kappa"),
        auc=v.get("screening_auc"),
        sensitivity=v.get("sensitivity"),
        specificity=v.get("specificity"),
        images=v.get("n"),
    )


def _read_card(model_dir: Path) -> str | None:
    try:
        return (model_dir / MODEL_CARD_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def card_section(card: str, heading: str) -> str:
    """The body of a ``## heading`` section of a Markdown card, or :data:`NO_ATTRIBUTION`."""
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", card, re.M | re.S)
    return match.group(1).strip() if match and match.group(1).strip() else NO_ATTRIBUTION
