"""The demo's Gradio-free logic: box parsing and checks, upload loading, the split coloured caption."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clvnet.data.record import Phrase
from clvnet.demo.service import (
    DemoInputError,
    DemoService,
    check_boxes,
    parse_boxes,
    parse_request,
    split_caption_html,
)
from clvnet.viz import phrase_colors

ASSETS = Path(__file__).resolve().parents[2] / "clvnet" / "demo" / "assets"


def test_parse_boxes_accepts_annotator_dicts_lists_and_json() -> None:
    ann = [{"xmin": 1, "ymin": 2, "xmax": 30, "ymax": 40, "label": "", "color": [0, 0, 0]}]
    assert parse_boxes(ann) == [(1.0, 2.0, 30.0, 40.0)]
    assert parse_boxes("[[1, 2, 30, 40], [5, 6, 7, 8]]") == [(1.0, 2.0, 30.0, 40.0), (5.0, 6.0, 7.0, 8.0)]
    assert parse_boxes("[1, 2, 30, 40]") == [(1.0, 2.0, 30.0, 40.0)]
    assert parse_boxes('{"xmin": 1, "ymin": 2, "xmax": 3, "ymax": 4}') == [(1.0, 2.0, 3.0, 4.0)]
    assert parse_boxes("") == [] and parse_boxes(None) == [] and parse_boxes([]) == []


@pytest.mark.parametrize("bad, match", [
    ("[[1, 2, 3]]", "box 1"),
    ("[[1, 2, 3, 4], {\"xmin\": 1}]", "box 2"),
    ("not json", "not valid JSON"),
    ('"text"', "expected a list"),
    ("[[1, 2, NaN, 4]]", "finite"),
])
def test_parse_boxes_names_the_bad_box(bad: str, match: str) -> None:
    with pytest.raises(DemoInputError, match=match):
        parse_boxes(bad)


def test_parse_request_takes_pixel_boxes_or_map_boxes_with_a_crs() -> None:
    assert parse_request("[[1, 2, 3, 4]]") == ([(1.0, 2.0, 3.0, 4.0)], None)
    assert parse_request('{"boxes": [[1, 2, 3, 4]], "crs": "EPSG:4326"}') == ([(1.0, 2.0, 3.0, 4.0)], "EPSG:4326")
    assert parse_request('{"boxes": [[1, 2, 3, 4]]}') == ([(1.0, 2.0, 3.0, 4.0)], None)
    with pytest.raises(DemoInputError, match=r"unknown key\(s\) \['srs'\]"):
        parse_request('{"boxes": [[1, 2, 3, 4]], "srs": "EPSG:4326"}')
    with pytest.raises(DemoInputError, match="'crs' must be"):
        parse_request('{"boxes": [[1, 2, 3, 4]], "crs": 4326}')


def test_check_boxes_rejects_missing_empty_outside_and_too_many() -> None:
    with pytest.raises(DemoInputError, match="No box drawn"):
        check_boxes([], 100, 100, 4)
    with pytest.raises(DemoInputError, match=r"Box 2 .* zero area"):
        check_boxes([(0, 0, 10, 10), (5, 5, 5, 20)], 100, 100, 4)
    with pytest.raises(DemoInputError, match="outside the 100x80 image"):
        check_boxes([(0, 0, 101, 10)], 100, 80, 4)
    with pytest.raises(DemoInputError, match="at most 2"):
        check_boxes([(0, 0, 1, 1)] * 3, 100, 100, 2)
    assert check_boxes([(0, 0, 100, 80)], 100, 80, 1) == [(0, 0, 100, 80)]


def test_load_writes_a_preview_and_maps_boxes_to_full_resolution(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (1500, 3000, 3), dtype=np.uint8)).save(big)
    service = DemoService(predictor=None, workdir=tmp_path / "work", max_boxes=2)
    img = service.load(big)
    assert (img.height, img.width, img.georeferenced) == (1500, 3000, False)
    with Image.open(img.preview_path) as prev:
        assert max(prev.size) == 1024
    assert img.scale == pytest.approx(3000 / 1024)
    assert service.boxes_from_preview(img, [(0, 0, 512, 256)]) == [pytest.approx((0, 0, 1500, 750))]
    with pytest.raises(DemoInputError, match="zero area"):
        service.boxes_from_preview(img, [(10, 10, 10, 40)])


def test_load_unreadable_file_is_a_readable_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    service = DemoService(predictor=None, workdir=tmp_path / "work")
    with pytest.raises(DemoInputError, match=r"^broken\.png is not a readable image \(PNG, JPEG or GeoTIFF\)\.$"):
        service.load(bad)


def test_example_assets_are_small_images() -> None:
    files = sorted(p for p in ASSETS.iterdir() if p.suffix in (".png", ".jpg"))
    assert files, "no example images in clvnet/demo/assets"
    for p in files:
        assert p.stat().st_size < 300_000, p
        with Image.open(p) as im:
            assert max(im.size) <= 512 and im.mode == "RGB", p


def test_split_caption_keeps_phrase_colours_and_indices_in_both_parts() -> None:
    caption = "A harbour with boats. two white cars park beside the pier."
    g = caption.index("two") - 1
    phrases = [Phrase("boats", (15, 20)), Phrase("two white cars", (g + 1, g + 15)),
               Phrase("the pier", (caption.index("the pier"), caption.index("the pier") + 8))]
    colors = phrase_colors(3)
    out = split_caption_html(caption, phrases, colors, g)
    assert out.count('class="clv-phrase"') == 3
    # each phrase: its chip in exactly the mask colour, then its text
    spans = re.findall(r'data-phrase="(\d)"[^>]*><span class="clv-chip" style="background:rgb\((\d+),(\d+),(\d+)\)">'
                       r'</span>([^<]*)<', out)
    assert [(int(i), (int(r), int(gg), int(b)), t) for i, r, gg, b, t in spans] == [
        (0, colors[0], "boats"), (1, colors[1], "two white cars"), (2, colors[2], "the pier")]
    assert out.index("Scene:") < out.index("boats") < out.index("In the box:") < out.index("two white cars")
    # no split point: one paragraph with every phrase
    single = split_caption_html(caption, phrases, colors, len(caption))
    assert single.count('class="clv-phrase"') == 3 and "Scene:" not in single
