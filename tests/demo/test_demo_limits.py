"""Every demo request is bounded before the model runs (question length in the model's tokens, boxes,
pixels), and error messages reach API clients as plain text without server paths."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from testkit import question_card

from clvnet.demo.service import DemoInputError, DemoService, parse_request

ASSETS = Path(__file__).resolve().parents[2] / "clvnet" / "demo" / "assets"
AERIAL = ASSETS / "aerial_residential.jpg"


class _Counting:
    """The real predictor, counting how often the model is asked to predict."""

    def __init__(self, predictor: Any) -> None:
        self.predictor, self.calls = predictor, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.predictor, name)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.predictor.predict(*args, **kwargs)


def test_question_is_capped_in_the_models_tokens_for_run_and_stream(gcg_predictor: Any, tmp_path: Path) -> None:
    counting = _Counting(gcg_predictor)
    service = DemoService(counting, workdir=tmp_path, card=question_card())
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(tmp_path / "scene.png")
    img = service.load(tmp_path / "scene.png")
    limit = gcg_predictor.max_query_tokens()
    ctx = gcg_predictor.model.processor.max_length
    assert limit is not None and 0 < limit < ctx  # context less the image, box and prompt tokens and the answer
    words = ["describe", "the", "cars", "near", "the", "road"]

    def question(n: int) -> str:
        return " ".join(words[k % len(words)] for k in range(n))

    lo, hi = 1, 4 * limit  # the longest question that fits, by bisection on its word count
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if gcg_predictor.query_tokens(question(mid)) <= limit else (lo, mid - 1)
    fits = question(lo)
    assert gcg_predictor.query_tokens(fits) <= limit < gcg_predictor.query_tokens(question(lo + 1))
    assert service.check_query(f"  {fits} ") == fits
    too_long = question(lo + 1)
    n = gcg_predictor.query_tokens(too_long)
    for call in (lambda q: service.run(img, [(0, 0, 50, 50)], q), lambda q: list(service.stream(img, [(0, 0, 50, 50)], q))):
        with pytest.raises(DemoInputError, match=rf"Question too long: {n:,} tokens; this model reads at most {limit:,}"):
            call(too_long)
        with pytest.raises(DemoInputError, match=r"Question too long: 200,000 characters"):  # refused untokenised
            call("x" * 200_000)
    assert counting.calls == 0
    assert len(service.run(img, [(0, 0, 50, 50)], fits)) == 1 and counting.calls == 1


def test_the_predictor_refuses_a_prompt_past_its_context(gcg_predictor: Any) -> None:
    with pytest.raises(ValueError, match=r"--query is \d+ tokens long; this model takes at most \d+ \(its context"):
        gcg_predictor.predict(AERIAL, [[0, 0, 50, 50]], query="cars " * 5000)


def test_pixels_and_boxes_per_request_are_capped(gcg_predictor: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(big)
    service = DemoService(gcg_predictor, workdir=tmp_path / "w", max_pixels=100_000, max_boxes=2)
    with pytest.raises(DemoInputError, match=r"big\.png is 400x300 = 0 megapixels; this demo takes images of at most 0"):
        service.load(big)
    assert not list((tmp_path / "w").glob("*/big_preview.png"))  # refused on the header, no preview made
    with pytest.raises(DemoInputError, match="3 boxes drawn, but this demo runs at most 2"):
        parse_request("[" + ",".join(["[0, 0, 5, 5]"] * 3) + "]", max_boxes=2)
    with pytest.raises(DemoInputError, match="100000 boxes drawn"):  # counted before any box is converted
        parse_request('{"boxes": [' + ",".join(["[0, 0, 5, 5]"] * 100_000) + "]}", max_boxes=2)


def test_scrub_paths_keeps_names_only() -> None:
    from clvnet.demo.service import scrub_paths

    text = "file /tmp/gradio/5f3a/notes.png: rasterio: '/tmp/gradio/5f3a/notes.png' not recognized (see /a/b)"
    assert scrub_paths(text) == "file notes.png: rasterio: 'notes.png' not recognized (see b)"
    assert scrub_paths("shown at 1/2.00, http://127.0.0.1:7860/x/y, EPSG:4326") == \
        "shown at 1/2.00, http://127.0.0.1:7860/x/y, EPSG:4326"


def test_api_errors_are_plain_text_without_server_paths(serve: Callable[..., str], gcg_predictor: Any,
                                                        tmp_path: Path) -> None:
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(serve(gcg_predictor, card=question_card()), verbose=False)
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    cases = [
        (AERIAL, "[[1, 2, 3]]", "", "box 1: expected [x0, y0, x1, y1] or {'xmin', 'ymin', 'xmax', 'ymax'}, got [1, 2, 3]"),
        (bad, "[[0, 0, 10, 10]]", "", "notes.png is not a readable image (PNG, JPEG or GeoTIFF)."),
        (AERIAL, "[[0, 0, 10, 10]]", "cars " * 5000, "Question too long"),
    ]
    for image, boxes, query, message in cases:
        with pytest.raises(AppError) as err:
            client.predict(handle_file(str(image)), boxes, query, api_name="/predict_api")
        text = str(err.value)
        assert message in text, text
        assert "&#x27;" not in text and "&lt;" not in text and "/tmp/" not in text and "gradio/" not in text, text
