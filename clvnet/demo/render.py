"""HTML the demo page shows: captions with readable phrase highlights, the phrase legend, the model card.

Phrase highlighting keeps the mask colours exact and the text readable: each phrase carries a chip in its
mask's colour, and its text is dark on an opaque light tint of that colour (contrast >= 4.5:1, WCAG AA, for
every colour; :func:`contrast_ratio` checks it). A phrase whose mask is empty or mostly outside the image is
struck through, with the reason as a tooltip, in the caption and in the legend.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from clvnet.viz import caption_segments

RGB = tuple[int, int, int]
TEXT_RGB: RGB = (17, 17, 17)  # phrase text colour (on the tint)
TINT = 0.78                   # share of white in a phrase's background tint
MIN_CONTRAST = 4.5            # WCAG AA for normal text


def tint(color: RGB, white: float = TINT) -> RGB:
    """``color`` mixed with white (``white`` = share of white), as an opaque colour."""
    return tuple(round(c + (255 - c) * white) for c in color)  # type: ignore[return-value]


def _lin(c: int) -> float:
    s = c / 255.0
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def luminance(color: RGB) -> float:
    """WCAG relative luminance of an sRGB colour."""
    r, g, b = (_lin(c) for c in color)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio of two opaque colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _css(c: RGB) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


def phrase_span(text: str, idx: int, color: RGB, flag: str | None) -> str:
    """One highlighted phrase: a chip in the mask colour, dark text on a light tint; struck through if flagged."""
    cls = "clv-phrase clv-flagged" if flag else "clv-phrase"
    title = f' title="{html.escape(flag)}"' if flag else ""
    return (f'<span class="{cls}" data-phrase="{idx}"{title} style="background:{_css(tint(color))};'
            f'color:{_css(TEXT_RGB)};border-bottom:2px solid {_css(color)}">'
            f'<span class="clv-chip" style="background:{_css(color)}"></span>{html.escape(text)}</span>')


def caption_html(caption: str, phrases: Sequence[Any], colors: Sequence[RGB], flags: Sequence[str | None]) -> str:
    """The caption as HTML, each phrase highlighted by :func:`phrase_span` (``data-phrase`` = its index)."""
    parts = []
    for text, idx in caption_segments(caption, phrases):
        parts.append(html.escape(text) if idx is None else phrase_span(text, idx, colors[idx], flags[idx]))
    return "".join(parts)


def legend_html(phrases: Sequence[Any], colors: Sequence[RGB], flags: Sequence[str | None]) -> str:
    """The phrases as a list, each with its mask colour; a flagged one struck through with its reason."""
    if not phrases:
        return '<p class="clv-legend-empty">No grounded phrase in this caption.</p>'
    items = []
    for i, p in enumerate(phrases):
        note = f' <span class="clv-flag-note">({html.escape(flags[i] or "")})</span>' if flags[i] else ""
        items.append(f'<li>{phrase_span(p.text, i, colors[i], flags[i])}{note}</li>')
    return f'<ul class="clv-legend">{"".join(items)}</ul>'


def box_swatch(color: RGB) -> str:
    """The square shown in a result heading, in its box's colour (the box outline in the overlay)."""
    return f'<span class="clv-swatch" style="color:{_css(color)}">\u25a0</span>'


# --------------------------------------------------------------------------- the model card on the page
README_SECTION = "The paper path (GeoPixelD, 7B, GPUs)"
REAL_IMAGERY_ANCHOR = "clv-real-imagery"


def card_banner(card: Any) -> str:
    """Markdown of the warning shown above everything when the checkpoint is SynthRS-only or has no card ("")
    otherwise). ``card`` is a :class:`clvnet.models.card.ModelCard` or None."""
    link = f'[README: "{README_SECTION}"](#{REAL_IMAGERY_ANCHOR})'
    needs = ("A model for real aerial photos needs training on real annotated imagery, such as GeoPixelD, with "
             f"the pretrained vision encoder and LLM of the paper preset (GPUs): see {link}.")
    if card is None:
        return ("**\u26a0 This checkpoint has no model card**, so nothing says what it was trained on. "
                "Checkpoints from `clvnet quickstart` are trained on synthetic SynthRS scenes only; on real "
                "photos such a model names objects it has never seen. " + needs)
    if card.synthetic_only:
        return ("**\u26a0 This model was trained only on SynthRS, synthetic aerial scenes.** On real aerial photos "
                "its captions and masks are not meaningful: it names the synthetic objects it knows (cars, "
                "storage tanks, boats ...) wherever it looks. " + needs)
    return ""


def card_details(card: Any) -> str:
    """Markdown: the card's facts in a few lines (or a note that there is none)."""
    if card is None:
        return "**Model card:** none (this checkpoint was saved without `model_card.json`)."
    data = card.data_name + (f" {card.data_version}" if card.data_version else "")
    lines = [f"**Model card:** trained on **{data}**, {card.steps:,} steps, {card.samples_seen:,} samples; "
             + ("trained with questions." if card.trained_with_questions else
                "trained without questions (one fixed captioning instruction).")]
    for split, vals in card.metrics.items():
        lines.append(f"Test metrics on {split}: " + ", ".join(f"{k} {v:.1f}" for k, v in vals.items()) + ".")
    if not card.metrics:
        lines.append("No test metrics recorded.")
    return "  \n".join(lines)


def readme_section(title: str = README_SECTION) -> str:
    """The README's section ``title`` (the source tree's README.md, else the installed package's long
    description, which is the README), or "" when neither has it."""
    from importlib.metadata import PackageNotFoundError, metadata
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "README.md"
    text = source.read_text(encoding="utf-8") if source.is_file() else ""
    if not text:
        try:
            text = str(metadata("clvnet").get_payload() or "")  # type: ignore[attr-defined]
        except PackageNotFoundError:
            return ""
    lines = text.splitlines()
    head = f"## {title}"
    if head not in lines:
        return ""
    start = lines.index(head) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip()
