"""Tests for clvnet.viz: palette, overlay rendering and caption HTML."""

from __future__ import annotations

import numpy as np
import pytest

from clvnet.data.record import Phrase
from clvnet.viz import caption_html, phrase_colors, render_overlay


def test_phrase_colors_fixed_and_distinct() -> None:
    a = phrase_colors(40)
    assert a == phrase_colors(40)
    assert len(set(a)) == 40
    assert phrase_colors(3) == a[:3]
    assert all(0 <= v <= 255 for c in a for v in c)


def _scene() -> tuple[np.ndarray, list[np.ndarray]]:
    img = np.full((64, 96, 3), 100, np.uint8)
    m0 = np.zeros((64, 96), bool)
    m0[10:30, 10:40] = True
    m1 = np.zeros((64, 96), np.uint8)
    m1[35:60, 50:90] = 1
    return img, [m0, m1]


def test_render_overlay_colours_masks_contours_and_legend() -> None:
    img, masks = _scene()
    phrases = [Phrase("a red car", (2, 11)), Phrase("green field", (16, 27))]
    caption = "A a red car and green field."
    assert caption[2:11] == "a red car" and caption[16:27] == "green field"
    out = np.asarray(render_overlay(img, masks, phrases, box=(5, 5, 45, 35), caption=caption))
    h, w = img.shape[:2]
    assert out.shape[0] > h and out.shape[1] >= w
    cols = phrase_colors(2)
    # mask interior is a blend of the image and the colour
    expect = np.round(0.55 * 100 + 0.45 * np.asarray(cols[0])).astype(int)
    assert np.abs(out[20, 25].astype(int) - expect).max() <= 1
    # contours are drawn in the exact colour
    assert tuple(out[45, 50]) == cols[1]
    # untouched background stays untouched
    assert tuple(out[2, 80]) == (100, 100, 100)
    # the box outline is white
    assert tuple(out[20, 5]) == (255, 255, 255)
    # the panel holds pixels of each phrase colour (legend swatch + text)
    panel = out[h:]
    for c in cols:
        assert np.all(panel == np.asarray(c, np.uint8), axis=-1).sum() > 20


def test_render_overlay_resizes_small_masks_and_checks_pairs() -> None:
    img, masks = _scene()
    small = np.zeros((2, 16, 16), np.float32)
    small[0, :8, :8] = 1.0
    out = np.asarray(render_overlay(img, small, ["a", "b"]))
    assert out.shape[1] == 480  # min panel width
    with pytest.raises(ValueError, match="2 masks but 1 phrases"):
        render_overlay(img, masks, ["only one"])
    with pytest.raises(ValueError, match="must be"):
        render_overlay(img[..., 0], masks, ["a", "b"])


def test_caption_html_escapes_and_colours() -> None:
    caption = "Two <cars> near a pond & road."
    phrases = [Phrase("Two <cars>", (0, 10)), Phrase("a pond", (16, 22))]
    out = caption_html(caption, phrases)
    assert "&lt;cars&gt;" in out and "&amp; road." in out
    r, g, b = phrase_colors(2)[1]
    assert f'data-phrase="1" style="color:rgb({r},{g},{b})' in out
    assert out.count("clv-phrase") == 2


def test_render_overlay_draws_a_box_under_one_pixel() -> None:
    """A small box on a large scene is under one pixel on the preview; Pillow refused the rectangle (x1 < x0)."""
    img = np.zeros((40, 40, 3), np.uint8)
    out = np.asarray(render_overlay(img, [], [], box=[10.2, 10.2, 10.5, 10.6]).convert("RGB"))
    assert (out[:40, :40] != 0).any()  # the box is drawn on the black image
