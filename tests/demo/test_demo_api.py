"""The served app through ``gradio_client``: same result as the Predictor called directly; readable errors.

Every test here runs the real Predictor on a tiny scripted checkpoint (see conftest) and a real
Gradio server on a free loopback port.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from testkit import question_card

from clvnet.demo.service import DemoInputError, DemoService, box_color

ASSETS = Path(__file__).resolve().parents[2] / "clvnet" / "demo" / "assets"
AERIAL = ASSETS / "aerial_residential.jpg"


def _client(url: str) -> Any:
    from gradio_client import Client

    return Client(url, verbose=False)


def test_predict_api_matches_the_predictor(serve: Callable[..., str], gcg_predictor: Any, tmp_path: Path) -> None:
    from gradio_client import handle_file

    from clvnet.inference.outputs import write_png
    from clvnet.inference.raster import open_raster
    from clvnet.viz import phrase_colors

    boxes = [[100, 120, 300, 330], [10, 10, 90, 60]]
    records, overlays = _client(serve(gcg_predictor)).predict(
        handle_file(str(AERIAL)), json.dumps(boxes), "", api_name="/predict_api")
    direct = gcg_predictor.predict(str(AERIAL), boxes, ids=["aerial_residential_box1", "aerial_residential_box2"])

    assert len(records) == len(overlays) == len(direct) == 2
    for k, (rec, overlay, pred) in enumerate(zip(records, overlays, direct)):
        assert tuple(rec["box_color"]) == box_color(k) and rec["flags"] == [None] * len(rec["phrases"])
        assert rec["id"] == pred.id and rec["box"] == [float(v) for v in pred.box]
        assert rec["caption"] == pred.caption and rec["caption"].strip()
        assert [(p["text"], tuple(p["span"])) for p in rec["phrases"]] == [(p.text, p.span) for p in pred.phrases]
        assert [p["masks"] for p in rec["phrases"]] == [p.masks for p in pred.phrases]
        assert rec["meta"]["scores"] == pytest.approx(pred.scores)
        assert [tuple(c) for c in rec["colors"]] == phrase_colors(len(pred.phrases))
        assert len(rec["phrases"]) >= 1  # the scripted model grounds one phrase
        with open_raster(AERIAL) as raster:
            expected = write_png(pred, raster, tmp_path / f"{pred.id}.png")
        shown = np.asarray(Image.open(overlay).convert("RGB"))
        want = np.asarray(Image.open(expected).convert("RGB"))
        # the same overlay, except that the box outline (white there) is in the box's own colour
        differ = (shown != want).any(axis=-1)
        box_rgb = np.asarray(rec["box_color"], dtype=np.uint8)
        assert differ.any() and (shown[differ] == box_rgb).all() and (want[differ] == 255).all()
        for color in rec["colors"]:  # the mask contour and legend are drawn in exactly the phrase's colour
            assert (shown == np.asarray(color, dtype=np.uint8)).all(axis=-1).sum() > 20


def test_stream_gives_text_first_and_the_same_result_as_run(gcg_predictor: Any, tmp_path: Path) -> None:
    service = DemoService(gcg_predictor, workdir=tmp_path)
    img = service.load(AERIAL)
    events = list(service.stream(img, [(100, 120, 300, 330)], None))
    texts = [e for e in events if e.result is None]
    assert len(texts) >= 3 and len(events) == len(texts) + 1
    assert [len(e.text) for e in texts] == sorted(len(e.text) for e in texts)  # growing text
    final = events[-1].result
    assert final is not None
    (ran,) = service.run(img, [(100, 120, 300, 330)], None)
    for key in ("caption", "phrases", "id"):
        assert final.record[key] == ran.record[key]
    assert final.caption_html == ran.caption_html and 'class="clv-phrase"' in final.caption_html
    assert [Path(f).suffix for f in final.files] == [".json", ".png"]
    assert json.loads(Path(final.files[0]).read_text())["caption"] == final.record["caption"]


def test_geotiff_upload_offers_geojson(gcg_predictor: Any, tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine

    arr = np.asarray(Image.open(AERIAL).convert("RGB")).transpose(2, 0, 1)
    tif = tmp_path / "scene.tif"
    with rasterio.open(tif, "w", driver="GTiff", height=arr.shape[1], width=arr.shape[2], count=3,
                       dtype="uint8", crs="EPSG:32633", transform=Affine(0.5, 0, 500000, 0, -0.5, 4650000)) as dst:
        dst.write(arr)
    service = DemoService(gcg_predictor, workdir=tmp_path / "work")
    img = service.load(tif)
    assert img.georeferenced
    (res,) = service.run(img, [(100, 120, 300, 330)], None)
    assert [Path(f).suffix for f in res.files] == [".json", ".png", ".geojson"]
    gj = json.loads(Path(res.files[2]).read_text())
    assert gj["type"] == "FeatureCollection" and len(gj["features"]) == len(res.record["phrases"])

    # the same box in map coordinates (UTM 33N, 0.5 m pixels) gives the same prediction
    (by_map,) = service.run(img, [(500050.0, 4649835.0, 500150.0, 4649940.0)], None, box_crs="EPSG:32633")
    assert by_map.box == pytest.approx((100, 120, 300, 330))
    assert by_map.record["caption"] == res.record["caption"]
    assert [p["masks"] for p in by_map.record["phrases"]] == [p["masks"] for p in res.record["phrases"]]
    assert by_map.record["meta"]["box_crs"] == "EPSG:32633"
    with pytest.raises(DemoInputError, match="outside"):
        service.run(img, [(0.0, 0.0, 10.0, 10.0)], None, box_crs="EPSG:32633")
    png = service.load(AERIAL)
    with pytest.raises(DemoInputError, match="need a georeferenced image"):
        service.run(png, [(0.0, 0.0, 10.0, 10.0)], None, box_crs="EPSG:4326")


@pytest.mark.parametrize("boxes, message", [
    ("[]", "No box drawn"),
    ("[[100, 100, 100, 200]]", "zero area"),
    ("[[0, 0, 600, 100]]", "outside the 512x512 image"),
    ("[[1, 2, 3]]", "box 1: expected"),
    ('{"boxes": [[0, 0, 10, 10]], "crs": "EPSG:4326"}', "need a georeferenced image"),
])
def test_bad_requests_give_readable_errors(serve: Callable[..., str], gcg_predictor: Any, boxes: str,
                                           message: str) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        _client(serve(gcg_predictor)).predict(handle_file(str(AERIAL)), boxes, "", api_name="/predict_api")
    assert message in str(err.value) and "Traceback" not in str(err.value)


class _Broken:
    """A predictor whose model fails at run time (e.g. out of memory)."""

    def open(self, path: Any) -> Any:
        from clvnet.inference.raster import open_raster

        return open_raster(path)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory (simulated)")


def test_model_failure_is_a_short_message_without_traceback(serve: Callable[..., str]) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as err:
        _client(serve(_Broken())).predict(handle_file(str(AERIAL)), "[[0, 0, 10, 10]]", "", api_name="/predict_api")
    text = str(err.value)
    assert "The model failed on this request (RuntimeError: CUDA out of memory (simulated))" in text
    assert "Traceback" not in text and "File " not in text


def test_unreadable_and_oversized_uploads_are_refused(serve: Callable[..., str], gcg_predictor: Any,
                                                      tmp_path: Path) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    client = _client(serve(gcg_predictor, max_upload_mb=0.05))  # 50 kB; the example is ~90 kB
    with pytest.raises(AppError, match=r"^notes\.png is not a readable image \(PNG, JPEG or GeoTIFF\)\.$"):
        client.predict(handle_file(str(bad)), "[[0, 0, 10, 10]]", "", api_name="/predict_api")
    assert AERIAL.stat().st_size > 50_000
    with pytest.raises(Exception, match=r"(?i)exceeds the maximum file size|file size|too large|413"):
        client.predict(handle_file(str(AERIAL)), "[[0, 0, 10, 10]]", "", api_name="/predict_api")


class _Timed:
    """The real predictor, recording when each ``predict`` call starts and ends, and its query."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.spans: list[tuple[float, float]] = []
        self.queries: list[str | None] = []

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        self.queries.append(kwargs.get("query"))
        t0 = time.monotonic()
        out = self.predictor.predict(*args, **kwargs)
        self.spans.append((t0, time.monotonic()))
        return out


def test_model_runs_one_request_at_a_time(serve: Any, gcg_predictor: Any) -> None:
    from gradio_client import handle_file

    timed = _Timed(gcg_predictor)
    client = _client(serve(timed, max_upload_mb=7, card=question_card()))
    demo = serve.apps[-1]
    assert demo.max_file_size == 7 * 1024 * 1024 and demo.local_url.startswith("http://127.0.0.1:")
    queries = ["", "  Describe the pools. ", "   "]
    jobs = [client.submit(handle_file(str(AERIAL)), f"[[{10 * k}, 0, 200, 200]]", q, api_name="/predict_api")
            for k, q in enumerate(queries)]
    assert all(len(job.result(timeout=120)[0]) == 1 for job in jobs)
    spans = sorted(timed.spans)
    assert len(spans) == 3
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans)), spans
    assert sorted(timed.queries, key=str) == sorted([None, "Describe the pools.", None], key=str)
