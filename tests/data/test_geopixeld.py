"""GeoPixelD loader: the real sample from shared/reference, and hand-made bad inputs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

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


@needs_ref
def test_real_sample_masks_equal_pycocotools_polygon_fill() -> None:
    (rec,) = load_geopixeld(SAMPLE)
    ann = json.loads(SAMPLE.read_text())
    for p, group in zip(rec.phrases, ann["polygons"]):
        assert len(p.masks) == len(group)  # one RLE per polygon instance
        flat = [np.asarray(poly, float).reshape(-1).tolist() for poly in group]
        ref = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(flat, 800, 800)))
        ours = rle.union(p.masks, 800, 800)
        assert ours.sum() > 1000
        assert np.array_equal(ours, ref)
        # PIL's fill includes the contour pixels; COCO's fill keeps about half of them. So the COCO mask
        # lies between PIL's mask eroded by one pixel and PIL's mask (this also rules out swapped x/y).
        im = Image.new("L", (800, 800), 0)
        for poly in group:
            ImageDraw.Draw(im).polygon([tuple(pt) for pt in poly], fill=1, outline=1)
        pil = np.asarray(im).astype(bool)
        pad = np.pad(pil, 1)
        eroded = pad[1:-1, 1:-1] & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
        assert not (eroded & ~ours.astype(bool)).any()
        assert (ours.astype(bool) & ~pil).sum() <= 8


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
    ann = {"gcg_description": "A <p> field </p> [SEG] and <p> roof </p> [SEG].",
           "polygons": [[poly], [[[20, 10], [30, 10], [30, 20], [20, 20]], [[60, 0], [70, 0], [70, 9]]]]}
    with caplog.at_level(logging.WARNING):
        (rec,) = load_geopixeld(_write(tmp_path, ann))
    assert "2 polygon(s) extend outside the 50x40 image" in caplog.text
    assert rec.meta["clipped_polygons"] == 2
    # the clipped mask equals the in-image window of the same polygon drawn on a larger canvas
    big = [v + 100 for pt in poly for v in pt]
    canvas = mask_utils.decode(mask_utils.frPyObjects([big], 300, 300))[..., 0]
    assert np.array_equal(rle.decode(rec.phrases[0].masks[0]), canvas[100:140, 100:150])


def test_phrase_entirely_outside_and_degenerate_polygon(tmp_path: Path) -> None:
    ann = {"gcg_description": "A <p> ghost </p> [SEG].", "polygons": [[[[60, 60], [70, 60], [70, 70]]]]}
    with pytest.raises(DataError, match="no pixel inside") as e:
        load_geopixeld(_write(tmp_path, ann))
    assert "polygons[0]" in str(e.value)
    ann = {"gcg_description": "A <p> line </p> [SEG].", "polygons": [[[[1, 1], [5, 5]]]]}
    with pytest.raises(DataError, match="degenerate polygon"):
        load_geopixeld(_write(tmp_path, ann, name="d"))


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
