"""Property tests (hypothesis): the GeoPixelD and GranD-f loaders fed arbitrary JSON, and valid annotations
with arbitrary parts replaced, either load valid records or raise DataError; never another exception."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from clvnet.data import rle
from clvnet.data.loaders import load_geopixeld, load_grandf
from clvnet.data.record import DataError, GCGRecord, validate

H, W = 12, 16
FUZZ = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

SCALARS = (st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.integers(-3, 40)
           | st.floats(allow_nan=True, allow_infinity=True) | st.floats(-50, 50) | st.text(max_size=12)
           | st.sampled_from(["scene.png", "<p> a </p> [SEG]", "[SEG]", "../x", "\x00", "0`", "garbage!!"]))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                           max_size=4), max_leaves=12)


def _rect(y0: int, y1: int, x0: int, x1: int) -> dict[str, Any]:
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return rle.encode(m)


GEOPIXELD = {"id": 0, "img": "scene.png",
             "gcg_description": "A field. <p> a car </p> [SEG] near <p> two trees </p> [SEG].",
             "polygons": [[[[1, 1], [5, 1], [5, 5]]], [[[2, 2], [8, 2], [8, 9], [2, 9]], [10, 1, 14, 1, 14, 6]]]}
GEOPIXELD_RLE = {**{k: v for k, v in GEOPIXELD.items() if k != "polygons"},
                 "segmentation": [[_rect(1, 5, 1, 5)], [_rect(2, 9, 2, 8), _rect(1, 6, 10, 14)]]}
GRANDF = [{"file_name": "scene.png", "caption": "A car near two trees.",
           "groundings": {"car": {"token_positives": [2, 5], "rle_masks": [_rect(1, 5, 1, 5)]},
                          "two trees": {"token_positives": [11, 20], "rle_masks": [_rect(2, 9, 2, 8), _rect(1, 6, 10, 14)]}}}]


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw: st.DrawFn, base: Any) -> Any:
    """``base`` with 1-3 of its parts (any depth) replaced by arbitrary JSON, or removed."""
    obj = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.integers(0, 4)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return obj


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(Path(d) / "scene.png")
        yield Path(d)


def _loads_or_data_error(load: Callable[[], list[GCGRecord]]) -> None:
    try:
        records = load()
    except DataError:
        event("DataError")
        return
    event("loaded")
    for rec in records:
        validate(rec)
        assert (rec.height, rec.width) == (H, W)


def _write(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_the_base_annotations_load(folder: Path) -> None:
    (gp,) = load_geopixeld(_write(folder / "scene.json", GEOPIXELD))
    (gp_rle,) = load_geopixeld(_write(folder / "scene.json", GEOPIXELD_RLE))
    (gf,) = load_grandf(_write(folder / "g.json", GRANDF), images=folder)
    assert [p.text for p in gp.phrases] == [p.text for p in gp_rle.phrases] == ["a car", "two trees"]
    assert [p.text for p in gf.phrases] == ["car", "two trees"]


@FUZZ
@given(obj=JSON | mutated(GEOPIXELD) | mutated(GEOPIXELD_RLE))
def test_geopixeld_annotation(folder: Path, obj: Any) -> None:
    _loads_or_data_error(lambda: load_geopixeld(_write(folder / "scene.json", obj)))


@FUZZ
@given(obj=JSON | mutated([{"id": 0, "image": "scene.png", "polygons": "scene.json",
                            "conversations": [{"from": "human", "value": "Describe."},
                                              {"from": "gpt", "value": GEOPIXELD["gcg_description"]}]}]),
       ann=mutated(GEOPIXELD) | st.just(GEOPIXELD))
def test_geopixeld_training_list(folder: Path, obj: Any, ann: Any) -> None:
    _write(folder / "scene.json", ann)
    _loads_or_data_error(lambda: load_geopixeld(_write(folder / "list.json", obj)))


@FUZZ
@given(obj=JSON | mutated(GRANDF), jsonl=st.booleans(), check_images=st.booleans())
def test_grandf_annotations(folder: Path, obj: Any, jsonl: bool, check_images: bool) -> None:
    if jsonl:
        items = obj if isinstance(obj, list) else [obj]
        path = folder / "g.jsonl"
        path.write_text("".join(json.dumps(i) + "\n" for i in items))
    else:
        path = _write(folder / "g.json", obj)
    _loads_or_data_error(lambda: load_grandf(path, images=folder, check_images=check_images))
