"""GranD-f / GLaMM GCG loaders on small hand-made fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from clvnet.data import rle
from clvnet.data.loaders import load_glamm_coco_gt, load_grandf
from clvnet.data.record import DataError

H, W = 30, 40


def _mask(x0: int, y0: int, x1: int, y1: int, h: int = H, w: int = W) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def _uncompressed(m: np.ndarray) -> dict:
    """COCO's uncompressed RLE (counts as a list, column-major runs starting with zeros)."""
    flat = m.flatten(order="F")
    runs, cur, n = [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    runs.append(n)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": runs}


def _item(name: str) -> dict:
    caption = "A harbour with two boats next to a long pier ."
    return {
        "file_name": f"{name}.jpg",
        "caption": caption,
        "groundings": {  # deliberately not in caption order; the pier span carries a trailing space
            "a long pier": {"token_positives": [33, 45], "rle_masks": [rle.encode(_mask(20, 5, 38, 10))]},
            "two boats": {"token_positives": [15, 24],
                          "rle_masks": [rle.encode(_mask(2, 2, 6, 6)), _uncompressed(_mask(8, 2, 12, 6))]},
        },
    }


def _images(folder: Path, *names: str, size: tuple[int, int] = (H, W)) -> None:
    for n in names:
        Image.new("RGB", (size[1], size[0]), (0, 90, 160)).save(folder / f"{n}.jpg")


def test_grandf_json_and_jsonl(tmp_path: Path) -> None:
    _images(tmp_path, "one", "two")
    (tmp_path / "gcg.json").write_text(json.dumps([_item("one"), _item("two")]))
    recs = load_grandf(tmp_path / "gcg.json")
    assert [r.id for r in recs] == ["one", "two"]
    r = recs[0]
    assert (r.height, r.width) == (H, W) and r.box is None
    assert [p.text for p in r.phrases] == ["two boats", "a long pier"]
    assert [p.span for p in r.phrases] == [(15, 24), (33, 44)]  # trailing space trimmed
    assert len(r.phrases[0].masks) == 2 and isinstance(r.phrases[0].masks[1]["counts"], str)
    assert np.array_equal(rle.decode(r.phrases[0].masks[1]), _mask(8, 2, 12, 6))
    assert Path(r.image).is_file()
    (tmp_path / "gcg.jsonl").write_text("\n".join(json.dumps(x) for x in [_item("one"), _item("two")]) + "\n")
    again = load_grandf(tmp_path / "gcg.jsonl")
    assert [(x.id, x.caption, x.phrases) for x in again] == [(x.id, x.caption, x.phrases) for x in recs]


def test_grandf_image_folder_and_missing_image(tmp_path: Path) -> None:
    imgs = tmp_path / "images"
    imgs.mkdir()
    _images(imgs, "one")
    (tmp_path / "gcg.json").write_text(json.dumps([_item("one")]))
    assert load_grandf(tmp_path / "gcg.json", images=imgs)[0].image == str((imgs / "one.jpg").resolve())
    with pytest.raises(DataError, match=r"image 'one\.jpg' not found") as e:
        load_grandf(tmp_path / "gcg.json")
    assert "gcg.json" in str(e.value) and "record one.jpg" in str(e.value)
    assert load_grandf(tmp_path / "gcg.json", check_images=False)[0].height == H
    _images(tmp_path, "one", size=(H + 2, W))
    with pytest.raises(DataError, match=f"is {H + 2}x{W} but its masks are {H}x{W}"):
        load_grandf(tmp_path / "gcg.json")


def test_grandf_span_and_rle_errors(tmp_path: Path) -> None:
    _images(tmp_path, "one")
    bad = _item("one")
    bad["groundings"]["two boats"]["token_positives"] = [13, 22]
    (tmp_path / "a.json").write_text(json.dumps([bad]))
    with pytest.raises(DataError, match="expected the phrase 'two boats'") as e:
        load_grandf(tmp_path / "a.json")
    assert "field 'groundings['two boats'].token_positives'" in str(e.value)
    bad = _item("one")
    bad["groundings"]["two boats"]["rle_masks"].append(rle.encode(_mask(1, 1, 3, 3, h=H + 1)))
    (tmp_path / "b.json").write_text(json.dumps([bad]))
    with pytest.raises(DataError, match=f"RLE size {H + 1}x{W} differs from the image size {H}x{W}") as e:
        load_grandf(tmp_path / "b.json")
    assert "rle_masks[2]" in str(e.value)
    (tmp_path / "c.jsonl").write_text(json.dumps(_item("one")) + "\n" + json.dumps(_item("one"))[:50] + "\n")
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        load_grandf(tmp_path / "c.jsonl")


def _coco_pair(tmp_path: Path, labels: list[str]) -> tuple[Path, Path]:
    poly = [[20.0, 5.0, 38.0, 5.0, 38.0, 10.0, 20.0, 10.0]]
    inst = {
        "images": [{"id": 7, "file_name": "one.jpg", "height": H, "width": W}],
        "annotations": [
            {"id": 1, "image_id": 7, "segmentation": rle.encode(_mask(2, 2, 12, 6)), "category_id": 1},
            {"id": 2, "image_id": 7, "segmentation": poly, "category_id": 1},
        ],
        "categories": [{"id": 1, "name": "object"}],
    }
    caps = {"images": [{"id": 7, "file_name": "one.jpg"}],
            "annotations": [{"id": 1, "image_id": 7, "labels": labels,
                             "caption": "A harbour with two boats next to a long pier."}]}
    (tmp_path / "mask_gt.json").write_text(json.dumps(inst))
    (tmp_path / "cap_gt.json").write_text(json.dumps(caps))
    return tmp_path / "mask_gt.json", tmp_path / "cap_gt.json"


def test_glamm_coco_gt_pair(tmp_path: Path) -> None:
    _images(tmp_path, "one")
    m, c = _coco_pair(tmp_path, ["Two Boats", "a long pier"])
    (r,) = load_glamm_coco_gt(m, c)
    assert [(p.text, p.span) for p in r.phrases] == [("two boats", (15, 24)), ("a long pier", (33, 44))]
    poly = mask_utils.decode(mask_utils.frPyObjects([[20.0, 5.0, 38.0, 5.0, 38.0, 10.0, 20.0, 10.0]], H, W))[..., 0]
    assert np.array_equal(rle.decode(r.phrases[1].masks[0]), poly)
    assert r.meta["image_id"] == 7
    m, c = _coco_pair(tmp_path, ["two boats", "a short pier"])
    with pytest.raises(DataError, match="label 'a short pier' does not occur") as e:
        load_glamm_coco_gt(m, c)
    assert "cap_gt.json" in str(e.value) and "labels[1]" in str(e.value)
    m, c = _coco_pair(tmp_path, ["two boats"])
    with pytest.raises(DataError, match="1 labels but 2 mask annotations"):
        load_glamm_coco_gt(m, c)
