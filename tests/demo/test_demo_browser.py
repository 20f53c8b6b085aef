"""The demo in a real headless Chromium: pick an example, drag a box, Run, see phrases and the overlay.

Runs with ``make test-browser`` (``pytest -m browser``); needs ``/usr/bin/chromium``
(``scripts/ci_browser_setup.sh``). Saves ``artifacts/demo.png``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testkit import question_card

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "clvnet" / "demo" / "assets"
ARTIFACTS = REPO / "artifacts"
TIMEOUT_MS = 120_000


def _drag_box(page: Any, fx0: float, fy0: float, fx1: float, fy1: float) -> None:
    """Drag a rectangle on the annotator canvas, corners given as fractions of the canvas."""
    canvas = page.locator("#clv-annotator canvas").first
    bb = canvas.bounding_box()
    assert bb is not None and bb["width"] > 50 and bb["height"] > 50, bb
    x0, y0 = bb["x"] + fx0 * bb["width"], bb["y"] + fy0 * bb["height"]
    x1, y1 = bb["x"] + fx1 * bb["width"], bb["y"] + fy1 * bb["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=6)
    page.mouse.move(x1, y1, steps=6)
    page.mouse.up()


def _open(page: Any, url: str) -> None:
    page.goto(url, wait_until="load")
    page.wait_for_selector("#clv-run", timeout=TIMEOUT_MS)


def _rgb(css: str) -> tuple[int, ...]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])


def test_example_box_run_shows_coloured_phrases_and_overlay(
        serve: Callable[..., str], browser_page: Any, gcg_predictor: Any) -> None:
    from clvnet.viz import phrase_colors

    page = browser_page
    url = serve(gcg_predictor)
    outside: list[str] = []
    js_errors: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(url) else None)
    page.on("pageerror", lambda e: js_errors.append(str(e)))
    _open(page, url)
    page.get_by_text("Real photo: out of domain", exact=False).first.click()
    page.wait_for_selector("#clv-annotator canvas", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#clv-status').innerText.includes('512x512')",
                           timeout=TIMEOUT_MS)

    # Run before drawing a box: a readable message, no traceback.
    page.click("#clv-run")
    page.wait_for_function("() => document.querySelector('#clv-status').innerText.includes('No box drawn')",
                           timeout=TIMEOUT_MS)
    page.wait_for_selector("[data-testid='toast-body']", timeout=TIMEOUT_MS)
    assert "No box drawn" in page.locator("[data-testid='toast-body']").first.inner_text()
    assert "Traceback" not in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo_error.png"))
    page.locator("[data-testid='toast-close']").first.click()

    _drag_box(page, 0.30, 0.35, 0.62, 0.70)
    page.click("#clv-run")
    page.wait_for_selector("#clv-overlay-0 img", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#clv-status').innerText.startsWith('Done')",
                           timeout=TIMEOUT_MS)
    caption = page.locator("#clv-caption-0")
    assert caption.inner_text().strip(), "the caption area is empty"
    assert page.locator("#clv-overlay-0 img").evaluate("img => img.naturalWidth") >= 480
    assert page.locator("#clv-files-0").inner_text().count(".json") == 1
    assert "Traceback" not in page.content()

    phrases = caption.locator(".clv-phrase")
    n = phrases.count()
    if n:  # each phrase's chip is in exactly its mask's colour in the overlay
        colors = phrase_colors(n)
        for i in range(n):
            el = phrases.nth(i)
            idx = int(el.get_attribute("data-phrase") or -1)
            assert _rgb(el.locator(".clv-chip").evaluate("e => getComputedStyle(e).backgroundColor")) == colors[idx]
    head = page.locator("#clv-head-0").inner_text()
    assert re.search(r"Box 1 \S?: \[\d+, \d+, \d+, \d+\]", head), head
    assert outside == [] and js_errors == []  # nothing fetched from elsewhere, no script errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo.png"), full_page=True)


class _Paced:
    """The real predictor, with its text stream slowed down so the page can be seen streaming."""

    def __init__(self, predictor: Any, delay_s: float) -> None:
        self.predictor, self.delay_s = predictor, delay_s
        self.queries: list[str | None] = []

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        self.queries.append(kwargs.get("query"))
        out = self.predictor.predict(*args, **kwargs)
        return self._paced(out) if kwargs.get("stream") else out

    def _paced(self, items: Any) -> Any:
        for item in items:
            if isinstance(item, str):
                time.sleep(self.delay_s)
            yield item


def test_upload_two_boxes_stream_into_two_result_blocks(
        serve: Callable[..., str], browser_page: Any, gcg_predictor: Any) -> None:
    paced = _Paced(gcg_predictor, delay_s=0.3)
    page = browser_page
    _open(page, serve(paced, card=question_card()))  # a model trained with questions: the box is shown
    synth = sorted(ASSETS.glob("synthrs_*.png")) or sorted(ASSETS.glob("*.jpg"))
    page.locator("#clv-upload input[type=file]").set_input_files(str(synth[0]))
    page.wait_for_selector("#clv-annotator canvas", timeout=TIMEOUT_MS)
    page.wait_for_function("() => document.querySelector('#clv-status').innerText.includes('Now drag')",
                           timeout=TIMEOUT_MS)
    _drag_box(page, 0.10, 0.10, 0.40, 0.40)
    _drag_box(page, 0.55, 0.55, 0.90, 0.90)
    page.fill("#clv-query textarea", "Describe the cars.")
    page.click("#clv-run")
    # the caption streams: partial text (with a cursor) appears before the box's result is complete
    page.wait_for_selector("#clv-caption-0 .clv-streaming", timeout=TIMEOUT_MS)
    assert page.locator("#clv-overlay-0 img").count() == 0
    page.wait_for_function("() => document.querySelector('#clv-status').innerText.startsWith('Done')",
                           timeout=TIMEOUT_MS)
    for i in (0, 1):
        page.wait_for_selector(f"#clv-overlay-{i} img", timeout=TIMEOUT_MS)
        assert page.locator(f"#clv-caption-{i}").inner_text().strip()
    assert not page.locator("#clv-head-2").is_visible()
    assert paced.queries == ["Describe the cars."]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "demo_two_boxes.png"), full_page=True)
