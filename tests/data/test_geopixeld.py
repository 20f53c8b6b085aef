"""GeoPixelD loader: the real sample from shared/reference, and hand-made bad inputs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from clvnet.data import rle
from clvnet.data.loaders import load_geopixeld
from clvnet.data.record import DataError, to_tagged

REF = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "geopixeld"
if not REF.is_dir():  # the work tree may live elsewhere; fall back to the absolute location
    REF = Path("/work/shared/reference/geopixeld")
SAMPLE = REF / "P0224_0_800_0_800.json"
needs_ref = pytest.mark.skipif(not SAMPLE.is_file(), reason="reference sample not available")


@needs_ref
def test_real_sample_phrases_spans_and_caption() -> None:
    (rec,) = load_geopixeld(SAMPLE)
    ann = json.loads(SAMPLE.read_text())
    assert (rec.height, rec.width) == (800, 800)
    assert [p.text for p in rec.phrases] == [f"tennis court-{i}" for i in range(1, 5)]
    for tag in ("<p>", "</p>", "[SEG]"):
        assert tag not in rec.caption
    for p in rec.phrases:
        assert rec.caption[p.span[0]:p.span[1]] == p.text
    # exact both ways: the canonical description is rebuilt character for character
    assert to_tagged(rec.caption, rec.phrases) == ann["gcg_description"]
    assert rec.box is None and rec.id == "P0224_0_800_0_800"
    assert Path(rec.image).is_file()


def _cv2_fill(polygons: list, height: int, width: int) -> np.ndarray:
    """GeoPixel's rasteriser: one ``cv2.fillPoly`` call per polygon on int32 vertices, OR-ed."""
    mask = np.zeros((height, width), np.uint8)
    for poly in polygons:
        cv2.fillPoly(mask, [np.array(poly, dtype=np.int32).reshape(-1, 2)], 1)
    return mask


@needs_ref
def test_real_sample_masks_equal_cv2_fillpoly() -> None:
    (rec,) = load_geopixeld(SAMPLE)
    ann = json.loads(SAMPLE.read_text())
    areas = []
    for p, group in zip(rec.phrases, ann["polygons"]):
        assert len(p.masks) == len(group)  # one RLE per polygon instance
        for m, poly in zip(p.masks, group):
            assert np.array_equal(rle.decode(m), _cv2_fill([poly], 800, 800))
        assert np.array_equal(rle.union(p.masks, 800, 800), _cv2_fill(group, 800, 800))
        areas.append(rle.area(p.masks[0]))
    # the contour pixels are included: tennis court-2 has 2,946 px (the COCO fill gives 2,823)
    assert areas == [17817, 2946, 2584, 2561]


def _car_trace(mask: np.ndarray) -> list[list[int]]:
    """The boundary-pixel trace of a blob, as GeoPixelD's polygons are (every step one pixel)."""
    (contour,), _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return [[int(x), int(y)] for x, y in contour.reshape(-1, 2)]


@pytest.mark.parametrize("angle", [0.0, 30.0, 63.0])
def test_small_car_keeps_its_contour(tmp_path: Path, angle: float) -> None:
    car = np.zeros((40, 50), np.uint8)
    if angle == 0.0:
        car[10:15, 20:30] = 1  # a 10x5-px car: the COCO fill keeps 36 of its 50 pixels
    else:
        box = cv2.boxPoints(((25.0, 20.0), (10.0, 5.0), angle))
        cv2.fillPoly(car, [np.round(box).astype(np.int32)], 1)
    poly = _car_trace(car)
    ann = {"gcg_description": "A <p> car </p> [SEG] parks.", "polygons": [[poly]]}
    (rec,) = load_geopixeld(_write(tmp_path, ann))
    mask = rle.decode(rec.phrases[0].masks[0])
    assert np.array_equal(mask, _cv2_fill([poly], 40, 50))
    assert np.array_equal(mask, car)  # filling the trace gives the traced object back
    assert rec.meta["clipped_polygons"] == 0


def test_phrase_with_several_polygons_is_their_union(tmp_path: Path) -> None:
    a = [[5, 5], [20, 5], [20, 15], [5, 15]]
    b = [[12, 10], [30, 8], [25, 25], [10, 22]]  # overlaps a
    c = [[40, 30], [44, 33], [41, 36]]
    ann = {"gcg_description": "Two <p> roofs </p> [SEG] and <p> a shed </p> [SEG].", "polygons": [[a, b], [c]]}
    (rec,) = load_geopixeld(_write(tmp_path, ann))
    roofs = rle.union(rec.phrases[0].masks, 40, 50)
    assert np.array_equal(roofs, _cv2_fill([a], 40, 50) | _cv2_fill([b], 40, 50))
    assert rec.phrases[0].is_multi_target and not rec.phrases[1].is_multi_target
    # (one cv2.fillPoly call with both polygons would apply the even-odd rule and punch out their overlap)
    both = np.zeros((40, 50), np.uint8)
    cv2.fillPoly(both, [np.array(a, np.int32), np.array(b, np.int32)], 1)
    assert (roofs > both).any()


def test_degenerate_polygons_are_drawn_as_cv2_draws_them(tmp_path: Path) -> None:
    dot, line, collinear = [[7, 9]], [[3, 30], [17, 21]], [[25, 2], [28, 8], [31, 14], [27, 6]]
    bowtie = [[30, 20], [45, 35], [45, 20], [30, 35]]  # self-intersecting
    ann = {"gcg_description": "A <p> dot </p> [SEG], a <p> line </p> [SEG], a <p> rope </p> [SEG] and "
                              "a <p> bowtie </p> [SEG].",
           "polygons": [[dot], [line], [collinear], [bowtie]]}
    (rec,) = load_geopixeld(_write(tmp_path, ann))
    for p, poly in zip(rec.phrases, (dot, line, collinear, bowtie)):
        assert np.array_equal(rle.decode(p.masks[0]), _cv2_fill([poly], 40, 50)), p.text
    assert rle.area(rec.phrases[0].masks[0]) == 1 and rle.area(rec.phrases[1].masks[0]) == 15


@needs_ref
def test_training_list_and_folder_give_the_same_record(tmp_path: Path) -> None:
    (single,) = load_geopixeld(SAMPLE)
    (from_list,) = load_geopixeld(REF / "GeoPixelD-list-sample.json")
    assert from_list.caption == single.caption and from_list.phrases == single.phrases
    assert "in-depth analysis" in from_list.meta["question"]
    folder = tmp_path / "anns"
    folder.mkdir()
    shutil.copy(SAMPLE, folder)
    shutil.copy(REF / "P0224_0_800_0_800.png", folder)
    (from_dir,) = load_geopixeld(folder)
    assert from_dir.phrases == single.phrases


def _write(tmp_path: Path, ann: dict, size: tuple[int, int] = (40, 50), name: str = "t") -> Path:
    Image.new("RGB", (size[1], size[0]), (9, 9, 9)).save(tmp_path / f"{name}.png")
    ann.setdefault("img", f"{name}.png")
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(ann))
    return path


def test_seg_polygon_count_mismatch(tmp_path: Path) -> None:
    ann = {"gcg_description": "A <p> car </p> [SEG] and <p> boat </p> [SEG].",
           "polygons": [[[[1, 1], [5, 1], [5, 5]]]]}
    with pytest.raises(DataError, match=r"2 \[SEG\] phrases but 1 mask groups") as e:
        load_geopixeld(_write(tmp_path, ann))
    assert "t.json" in str(e.value)


def test_polygon_outside_image_is_clipped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    poly = [[-10, -5], [30, 2], [25, 60], [-3, 35]]  # leaves a 40x50 image at top, left and bottom
    edge = [[40, 5], [50, 5], [50, 9], [40, 9]]  # its right column x = 50 is one past the image's last
    ann = {"gcg_description": "A <p> field </p> [SEG], a <p> roof </p> [SEG] and a <p> wall </p> [SEG].",
           "polygons": [[poly], [[[20, 10], [30, 10], [30, 20], [20, 20]], [[60, 0], [70, 0], [70, 9]]], [edge]]}
    with caplog.at_level(logging.WARNING):
        (rec,) = load_geopixeld(_write(tmp_path, ann))
    assert "3 polygon(s) extend outside the 50x40 image" in caplog.text
    assert rec.meta["clipped_polygons"] == 3
    # the clipped mask is the in-image window of the same polygon filled whole (by cv2, on a larger canvas)
    big = [[x + 100, y + 100] for x, y in poly]
    assert np.array_equal(rle.decode(rec.phrases[0].masks[0]), _cv2_fill([big], 300, 300)[100:140, 100:150])
    assert rle.area(rec.phrases[1].masks[1]) == 0  # the instance wholly outside stays, empty
    wall = rle.decode(rec.phrases[2].masks[0])
    assert wall.sum() == 50 and wall[5:10, 40:50].all()


def test_phrase_entirely_outside_and_bad_polygons(tmp_path: Path) -> None:
    ann = {"gcg_description": "A <p> ghost </p> [SEG].", "polygons": [[[[60, 60], [70, 60], [70, 70]]]]}
    with pytest.raises(DataError, match="no pixel inside") as e:
        load_geopixeld(_write(tmp_path, ann))
    assert "polygons[0]" in str(e.value)
    for k, (bad, msg) in enumerate([([[1, 1], [5, 5], []], "not a list of"),
                                    ([], "at least one"),
                                    ([1, 2, 3], "at least one"),
                                    ([[1, 1], [5, float("nan")], [3, 7]], "finite"),
                                    ([[1, 1], [2**31, 1], [3, 7]], "int32")]):
        ann = {"gcg_description": "A <p> shed </p> [SEG].", "polygons": [[[[2, 2], [6, 2], [6, 6]], bad]]}
        with pytest.raises(DataError, match=msg) as e:
            load_geopixeld(_write(tmp_path, ann, name=f"bad{k}"))
        assert "polygons[0][1]" in str(e.value) and f"bad{k}.json" in str(e.value)


def test_segmentation_rle_variant_and_wrong_size(tmp_path: Path) -> None:
    m = np.zeros((40, 50), np.uint8)
    m[3:9, 4:20] = 1
    ann = {"gcg_description": "Here <p> a pool </p> [SEG] sits.", "segmentation": [[rle.encode(m)]]}
    (rec,) = load_geopixeld(_write(tmp_path, ann))
    assert np.array_equal(rle.decode(rec.phrases[0].masks[0]), m)
    ann = {"gcg_description": "Here <p> a pool </p> [SEG] sits.", "segmentation": [rle.encode(m[:30])]}
    with pytest.raises(DataError, match="RLE size 30x50 differs from the image size 40x50") as e:
        load_geopixeld(_write(tmp_path, ann, name="w"))
    assert "segmentation[0][0]" in str(e.value) and "w.json" in str(e.value)


def test_missing_image_and_bad_json(tmp_path: Path) -> None:
    p = tmp_path / "x.json"
    p.write_text(json.dumps({"img": "nope.png", "gcg_description": "", "polygons": []}))
    with pytest.raises(DataError, match=r"nope\.png.*not found"):
        load_geopixeld(p)
    p.write_text('{"img": "nope.png", "gcg_')
    with pytest.raises(DataError, match=r"x\.json.*not valid JSON"):
        load_geopixeld(p)
