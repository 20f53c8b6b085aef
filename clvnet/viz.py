"""Visualisation shared by ``data show``, ``predict``, the quickstart report and the demo.

* :func:`phrase_colors` -- one fixed palette, so phrase *i* has the same colour everywhere;
* :func:`render_overlay` -- image + translucent masks + contours + box, with a text panel below where
  each phrase is written in its mask's colour (inside the caption when spans are known, and in a legend);
* :func:`caption_html` -- the caption as HTML with each phrase highlighted in its colour.

Only Pillow and numpy are used; the font is Pillow's built-in default (no downloads).
"""

from __future__ import annotations

import colorsys
import html
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFont


class Phrase(Protocol):
    """What drawing needs of a grounded phrase (e.g. :class:`clvnet.data.record.Phrase`)."""

    text: str
    span: tuple[int, int]


RGB = tuple[int, int, int]

# Sasha Trubetskoy's 20 distinct colours, darker (readable on white) ones first.
_PALETTE: tuple[RGB, ...] = (
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (0, 128, 128), (240, 50, 230), (170, 110, 40), (0, 0, 128), (128, 0, 0),
    (128, 128, 0), (70, 240, 240), (210, 245, 60), (250, 190, 212), (255, 225, 25),
    (220, 190, 255), (170, 255, 195), (255, 215, 180), (128, 128, 128), (0, 0, 0),
)
BOX_COLOR: RGB = (255, 255, 255)
PANEL_BG: RGB = (255, 255, 255)
TEXT_COLOR: RGB = (20, 20, 20)


def phrase_colors(n: int) -> list[RGB]:
    """The first ``n`` colours of the fixed palette (deterministic; extended by golden-ratio hues).

    Args:
        n: number of phrases.

    Returns:
        ``n`` distinct ``(r, g, b)`` tuples of ints in [0, 255].
    """
    out = list(_PALETTE[: max(n, 0)])
    k = 0
    while len(out) < n:
        h = (0.11 + k * 0.618033988749895) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.75 if k % 2 else 0.95)
        c = (round(r * 255), round(g * 255), round(b * 255))
        if c not in out:
            out.append(c)
        k += 1
    return out


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: bitmap font, fixed size
        return ImageFont.load_default()


def _as_mask_list(masks: Any, height: int, width: int) -> list[np.ndarray]:
    if masks is None:
        return []
    if hasattr(masks, "detach"):  # torch tensor
        masks = masks.detach().cpu().numpy()
    arrs = [np.asarray(m) for m in masks]
    out = []
    for i, m in enumerate(arrs):
        if m.ndim != 2:
            raise ValueError(f"mask {i} must be 2-D (H, W), got shape {m.shape}")
        b = m > 0.5 if m.dtype.kind == "f" else m.astype(bool)
        if b.shape != (height, width):  # e.g. masks at mask_size over a larger image
            b = np.asarray(Image.fromarray(b.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)) > 127
        out.append(b)
    return out


def _contour(mask: np.ndarray, thickness: int) -> np.ndarray:
    """Inner boundary of a binary mask, ``thickness`` pixels wide."""
    inner = mask.copy()
    for _ in range(thickness):
        p = np.pad(inner, 1, constant_values=False)
        inner = p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def _phrase_texts(phrases: Sequence[str | Phrase]) -> list[str]:
    return [p if isinstance(p, str) else p.text for p in phrases]


def caption_segments(caption: str, phrases: Sequence[str | Phrase]) -> list[tuple[str, int | None]]:
    """Split the caption into (text, phrase index or None); uses spans when they match the caption."""
    spans: list[tuple[int, int, int]] = []
    for i, p in enumerate(phrases):
        if not isinstance(p, str) and 0 <= p.span[0] < p.span[1] <= len(caption) \
                and caption[p.span[0]:p.span[1]] == p.text:
            spans.append((p.span[0], p.span[1], i))
    spans.sort()
    segs: list[tuple[str, int | None]] = []
    pos = 0
    for s, e, i in spans:
        if s < pos:
            continue  # overlapping spans: keep the first
        if s > pos:
            segs.append((caption[pos:s], None))
        segs.append((caption[s:e], i))
        pos = e
    if pos < len(caption):
        segs.append((caption[pos:], None))
    return segs


def _layout_words(segs: list[tuple[str, int | None]], font: Any, width: int) -> list[list[tuple[str, int | None]]]:
    """Greedy word wrap keeping each word's phrase index; returns lines of (word-with-space, idx)."""
    lines: list[list[tuple[str, int | None]]] = [[]]
    x = 0.0
    for text, idx in segs:
        for word in text.replace("\n", " ").split(" "):
            if word == "":
                continue
            w = font.getlength(word + " ")
            if x + w > width and lines[-1]:
                lines.append([])
                x = 0.0
            lines[-1].append((word + " ", idx))
            x += w
    return lines


def render_overlay(
    image: np.ndarray,
    masks: Any,
    phrases: Sequence[str | Phrase],
    box: Sequence[float] | None = None,
    caption: str | None = None,
    alpha: float = 0.45,
    *,
    title: str | None = None,
    font_size: int = 14,
    min_panel_width: int = 480,
) -> Image.Image:
    """Draw masks, contours, the box and a colour-coded caption/legend panel.

    Args:
        image: (H, W, 3) uint8 RGB image.
        masks: N masks, each (H, W) bool/uint8 (or float, thresholded at 0.5); a list or an (N, H, W)
            array/tensor. Masks of another size are resized (nearest) to the image.
        phrases: N phrase texts or :class:`~clvnet.data.record.Phrase` objects; phrase ``i`` belongs to
            mask ``i`` and shares its colour. With ``Phrase`` spans the caption's phrases are coloured.
        box: optional ``[x0, y0, x1, y1]`` in image pixels.
        caption: optional plain caption printed in the panel.
        alpha: mask opacity.
        title: optional first line of the panel (e.g. the record id).
        font_size: panel font size in pixels.
        min_panel_width: the canvas is at least this wide so text stays readable for small images.

    Returns:
        An RGB ``PIL.Image``: the overlay on top, the text panel below.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {img.shape}")
    img = img.astype(np.uint8)
    h, w = img.shape[:2]
    mlist = _as_mask_list(masks, h, w)
    if len(mlist) != len(phrases):
        raise ValueError(f"{len(mlist)} masks but {len(phrases)} phrases: they must pair up one to one")
    colors = phrase_colors(len(mlist))
    out = img.astype(np.float32)
    thick = max(1, round(min(h, w) / 300))
    for m, c in zip(mlist, colors):
        out[m] = (1 - alpha) * out[m] + alpha * np.asarray(c, np.float32)
    for m, c in zip(mlist, colors):
        out[_contour(m, thick)] = c
    overlay = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(overlay)
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)  # a box under one pixel (a small box on a large scene) still shows
        bw = max(2, thick + 1)
        draw.rectangle([x0 - bw, y0 - bw, x1 + bw - 1, y1 + bw - 1], outline=(0, 0, 0), width=1)
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=BOX_COLOR, width=bw)

    font = _font(font_size)
    canvas_w = max(w, min_panel_width)
    pad, line_h = 8, int(font_size * 1.4)
    texts = _phrase_texts(phrases)
    lines: list[list[tuple[str, int | None]]] = []
    if title:
        lines.append([(title, None)])
    if caption:
        lines += _layout_words(caption_segments(caption, phrases), font, canvas_w - 2 * pad)
    legend = [[("\u25a0 ", i), (t, i)] for i, t in enumerate(texts)]
    panel_h = pad * 2 + line_h * (len(lines) + len(legend)) + (line_h // 2 if lines and legend else 0)
    canvas = Image.new("RGB", (canvas_w, h + panel_h), PANEL_BG)
    canvas.paste(overlay, (0, 0))
    d = ImageDraw.Draw(canvas)
    y = h + pad
    for line in lines:
        x = float(pad)
        for word, idx in line:
            d.text((x, y), word, fill=TEXT_COLOR if idx is None else colors[idx], font=font)
            x += font.getlength(word)
        y += line_h
    if lines and legend:
        y += line_h // 2
    sw = max(6, font_size - 4)
    for i, t in enumerate(texts):
        d.rectangle([pad, y + 2, pad + sw, y + 2 + sw], fill=colors[i])
        d.text((pad + sw + 6, y), f"[{i}] {t}", fill=colors[i], font=font)
        y += line_h
    return canvas


def caption_html(caption: str, phrases: Sequence[Phrase], colors: Sequence[RGB] | None = None) -> str:
    """The caption as an HTML fragment with each phrase highlighted in its colour.

    Args:
        caption: plain caption text.
        phrases: phrases with spans into ``caption`` (phrase ``i`` gets ``colors[i]``).
        colors: one colour per phrase; defaults to :func:`phrase_colors`.

    Returns:
        HTML (escaped text; phrases wrapped in ``<span class="clv-phrase" ...>``).
    """
    cols = list(colors) if colors is not None else phrase_colors(len(phrases))
    if len(cols) < len(phrases):
        raise ValueError(f"{len(cols)} colours for {len(phrases)} phrases")
    parts = []
    for text, idx in caption_segments(caption, phrases):
        if idx is None:
            parts.append(html.escape(text))
        else:
            r, g, b = cols[idx]
            parts.append(
                f'<span class="clv-phrase" data-phrase="{idx}" style="color:rgb({r},{g},{b});'
                f'background:rgba({r},{g},{b},0.15);border-bottom:2px solid rgb({r},{g},{b});'
                f'font-weight:600">{html.escape(text)}</span>'
            )
    return "".join(parts)
