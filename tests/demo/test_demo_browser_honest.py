"""The demo in headless Chromium with a SynthRS-only model card: the banner, boxes in drawing order with one colour
each (heading swatch == overlay outline), Delete and Clear, results cleared on image change, an empty-mask
phrase struck through, phrase contrast >= 4.5 from the page's own CSS colours, rotation that cannot change the
region sent, upload errors naming only the file, and the scroll to the results on a narrow screen.

Runs with ``make test-browser`` (``pytest -m browser``). Saves ``artifacts/demo_*.png`` (one per state).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clvnet.demo.render import contrast_ratio
from clvnet.demo.service import BOX_COLORS
from clvnet.models.card import ImageStats, ModelCard

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "clvnet" / "demo" / "assets"
ARTIFACTS = REPO / "artifacts"
TIMEOUT_MS = 120_000
CARD = ModelCard(data_name="synthrs", data_version="1.1", data_sources={"synthrs": 4000}, steps=1600,
                 samples_seen=12800, metrics={"synthrs-test": {"mIoU": 70.1, "AP50": 30.2, "METEOR": 38.0}},
                 image_stats=ImageStats(mean=[96.0, 112.0, 84.0], std=[40.0, 33.0, 32.0], n_images=16))


class _Recording:
    """The real predictor; records the boxes of every call, and (``empty_box``) empties the first phrase's mask
    of that box (0-based) so the page has an empty-mask phrase to mark."""

    def __init__(self, predictor: Any, empty_box: int | None = None) -> None:
        self.predictor, self.empty_box = predictor, empty_box
        self.boxes: list[list[list[float]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def predict(self, image: Any, boxes: Any, **kwargs: Any) -> Any:
        self.boxes.append([list(map(float, b)) for b in boxes])
        out = self.predictor.predict(image, boxes, **kwargs)
        return self._stream(out) if kwargs.get("stream") else [self._empty(i, p) for i, p in enumerate(out)]

    def _stream(self, items: Any) -> Any:
        k = 0
        for item in items:
            if not isinstance(item, str):
                item = self._empty(k, item)
                k += 1
            yield item

    def _empty(self, k: int, pred: Any) -> Any:
        if k == self.empty_box and pred.phrases:
            from clvnet.data import rle

            h, w = pred.height, pred.width
            pred.phrases[0].masks = [rle.encode(np.zeros((h, w), np.uint8, order="F"))]
        return pred


def _open(page: Any, url: str) -> None:
    page.goto(url, wait_until="load")
    page.wait_for_selector("#clv-run", timeout=TIMEOUT_MS)


def _status_has(page: Any, text: str) -> None:
    page.wait_for_function("(t) => document.querySelector('#clv-status').innerText.includes(t)", arg=text,
                           timeout=TIMEOUT_MS)


def _pick(page: Any, label: str, size: str = "384x384") -> None:
    page.get_by_text(label, exact=False).first.click()
    page.wait_for_selector("#clv-annotator canvas", timeout=TIMEOUT_MS)
    _status_has(page, size)


def _image_rect(page: Any, iw: int, ih: int) -> tuple[float, float, float]:
    """(left, top, scale) of the image as the annotator draws it: fitted and centred in its canvas."""
    bb = page.locator("#clv-annotator canvas").first.bounding_box()
    assert bb is not None and bb["width"] > 50 and bb["height"] > 50, bb
    s = min(bb["width"] / iw, bb["height"] / ih)
    return bb["x"] + (bb["width"] - iw * s) / 2, bb["y"] + (bb["height"] - ih * s) / 2, s


def _drag(page: Any, box: tuple[float, float, float, float], iw: int = 384, ih: int = 384) -> None:
    """Drag a rectangle over image pixels ``box`` (x0, y0, x1, y1) of the displayed (possibly rotated) view."""
    left, top, s = _image_rect(page, iw, ih)
    x0, y0, x1, y1 = (left + box[0] * s, top + box[1] * s, left + box[2] * s, top + box[3] * s)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=5)
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def _run(page: Any) -> None:
    page.click("#clv-run")
    page.wait_for_function("() => document.querySelector('#clv-status').innerText.startsWith('Done')",
                           timeout=TIMEOUT_MS)


def _rgb(css: str) -> tuple[int, int, int]:
    r, g, b = (int(float(v)) for v in re.findall(r"[\d.]+", css)[:3])
    return r, g, b


def _head_box(page: Any, i: int) -> list[float]:
    text = page.locator(f"#clv-head-{i}").inner_text()
    m = re.search(r"Box (\d+) \S: \[(\d+), (\d+), (\d+), (\d+)\]", text)
    assert m is not None and int(m.group(1)) == i + 1, text
    return [float(m.group(k)) for k in range(2, 6)]


def _overlay_pixel(page: Any, i: int, x: float, y: float) -> tuple[int, int, int]:
    """The overlay image's pixel at (x, y), read from the image the page shows."""
    rgb = page.locator(f"#clv-overlay-{i} img").evaluate(
        """(img, xy) => { const c = document.createElement('canvas'); c.width = img.naturalWidth;
             c.height = img.naturalHeight; const g = c.getContext('2d'); g.drawImage(img, 0, 0);
             return Array.from(g.getImageData(xy[0], xy[1], 1, 1).data.slice(0, 3)); }""", [x, y])
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_synthrs_card_banner_boxes_colours_order_flags_and_clearing(
        serve: Callable[..., str], browser_page: Any, gcg_predictor: Any) -> None:
    from clvnet.viz import phrase_colors

    page = browser_page
    js_errors: list[str] = []
    page.on("pageerror", lambda e: js_errors.append(str(e)))
    rec = _Recording(gcg_predictor, empty_box=1)
    _open(page, serve(rec, card=CARD))

    # the banner says what the model is, and links the README's GeoPixelD section shown on the page
    banner = page.locator("#clv-banner")
    assert banner.is_visible() and "trained only on SynthRS" in banner.inner_text()
    href = banner.locator("a").first.get_attribute("href")
    assert href == "#clv-real-imagery" and page.locator("#clv-real-imagery").count() == 1
    assert "clvnet data convert geopixeld" in page.locator("#clv-real-imagery").inner_text()
    card_text = page.locator("#clv-card").inner_text()
    assert "synthrs 1.1" in card_text and "1,600 steps" in card_text and "mIoU 70.1" in card_text
    assert not page.locator("#clv-query").is_visible()  # trained without questions: no question box
    examples = page.locator("#clv-examples").inner_text()
    assert "Real photo: out of domain for this model" in examples  # not a showcase for this checkpoint
    assert examples.index("SynthRS: river") < examples.index("Real photo")
    _shot(page, "demo_banner.png")

    _pick(page, "SynthRS: river")
    drawn = [(30, 30, 120, 105), (150, 150, 250, 225), (270, 45, 360, 150)]
    for b in drawn:
        _drag(page, b)
    page.keyboard.press("Delete")                      # right after drawing, without switching tools
    _status_has(page, "Removed the last box; 2 left.")
    _drag(page, drawn[2])
    _run(page)
    _shot(page, "demo_results.png")

    # numbered in drawing order, each with its own colour: heading swatch == overlay outline
    swatches = []
    for i, b in enumerate(drawn):
        got = _head_box(page, i)
        assert all(abs(g - w) <= 3 for g, w in zip(got, b)), (i, got, b)
        swatch = _rgb(page.locator(f"#clv-head-{i} .clv-swatch").evaluate("e => getComputedStyle(e).color"))
        x0, y0, x1, _ = got
        assert _overlay_pixel(page, i, (x0 + x1) / 2, y0 + 1) == swatch, i
        swatches.append(swatch)
    assert swatches == list(BOX_COLORS[:3])

    # every phrase highlight: chip in exactly the mask colour, text contrast >= 4.5 from the page's CSS
    phrases = page.locator(".clv-phrase")
    assert phrases.count() >= 6  # one phrase per box, in the caption and in the legend
    for k in range(phrases.count()):
        el = phrases.nth(k)
        fg, bg = el.evaluate("e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
        assert contrast_ratio(_rgb(fg), _rgb(bg)) >= 4.5, (fg, bg)
        chip = el.locator(".clv-chip").evaluate("e => getComputedStyle(e).backgroundColor")
        assert _rgb(chip) == phrase_colors(20)[int(el.get_attribute("data-phrase") or -1)]

    # box 2's phrase has an empty mask: struck through, with a tooltip, in its caption and its legend
    for where in ("#clv-caption-1", "#clv-legend-1"):
        flagged = page.locator(f"{where} .clv-flagged")
        assert flagged.count() == 1 and flagged.get_attribute("title").startswith("no mask")
        assert "line-through" in flagged.evaluate("e => getComputedStyle(e).textDecorationLine")
    assert page.locator("#clv-caption-0 .clv-flagged").count() == 0
    assert page.locator("#clv-caption-2 .clv-flagged").count() == 0

    # Clear boxes empties the annotator and the results; a new image clears the results too
    page.click("#clv-clear")
    _status_has(page, "Boxes cleared")
    assert page.locator("#clv-result-0:visible").count() == 0
    _drag(page, drawn[0])
    _run(page)
    assert len(rec.boxes[-1]) == 1 and page.locator("#clv-result-0:visible").count() >= 1
    _pick(page, "SynthRS: houses")
    page.wait_for_function("() => [...document.querySelectorAll('#clv-result-0')].every(e => e.offsetParent === null)",
                           timeout=TIMEOUT_MS)
    assert page.locator("#clv-result-0:visible").count() == 0
    _shot(page, "demo_image_changed.png")
    assert js_errors == []


def test_rotation_cannot_change_the_region_sent_and_errors_name_only_the_file(
        serve: Callable[..., str], browser_page: Any, gcg_predictor: Any, tmp_path: Path) -> None:
    page = browser_page
    rec = _Recording(gcg_predictor)
    _open(page, serve(rec, card=CARD))
    # a corrupt upload: the message names the user's file only
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    page.locator("#clv-upload input[type=file]").set_input_files(str(bad))
    _status_has(page, "notes.png is not a readable image")
    status = page.locator("#clv-status").inner_text()
    assert "/tmp" not in status and "PIL" not in status and "rasterio" not in status.lower(), status
    assert page.locator("#clv-result-0:visible").count() == 0
    toast = page.locator("[data-testid='toast-body']").first
    assert "notes.png is not a readable image" in toast.inner_text() and "/tmp" not in toast.inner_text()
    _shot(page, "demo_upload_error.png")
    page.locator("[data-testid='toast-close']").first.click()

    _pick(page, "SynthRS: river")
    _drag(page, (30, 225, 150, 345))                   # bottom-left of the upright image
    _run(page)
    upright = rec.boxes[-1]
    page.locator("#clv-annotator button[aria-label='Rotate clockwise']").click()
    _run(page)                                         # the same box, now on a rotated view
    assert rec.boxes[-1] == upright
    page.click("#clv-clear")
    _status_has(page, "Boxes cleared")
    page.locator("#clv-annotator button[aria-label='Rotate clockwise']").click()
    _drag(page, (39, 30, 159, 150))                    # top-left of the clockwise view = bottom-left upright
    _shot(page, "demo_rotated.png")
    _run(page)
    (x0, y0, x1, y1), = rec.boxes[-1]
    assert abs(x0 - 30) <= 3 and abs(y0 - 225) <= 3 and abs(x1 - 150) <= 3 and abs(y1 - 345) <= 3, rec.boxes[-1]

    # a narrow screen: Run brings the results (below the examples) into view
    page.set_viewport_size({"width": 420, "height": 800})
    _pick(page, "SynthRS: houses")
    page.locator("#clv-annotator canvas").first.scroll_into_view_if_needed()
    _drag(page, (30, 30, 120, 105))
    _run(page)                                         # clicking Run scrolls to the button; the page goes on
    top = page.locator("#clv-status").evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < 120, top                         # to the results' status line, at the top of the screen
    _shot(page, "demo_narrow.png")
