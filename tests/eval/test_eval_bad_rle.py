"""``clvnet eval`` on malformed RLEs: a clear error naming file, record and field, never a hang.

Before validation, a GT RLE whose runs do not cover H x W made pycocotools' ``merge`` / ``iou`` loop forever
(Ctrl-C did not stop it), so these runs go through a subprocess with a timeout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evalhelpers import box_mask, record
from testkit import rle_string, run_cli

from clvnet.data import rle
from clvnet.data.record import GCGRecord, write_jsonl

H = W = 10


def _pair(tmp_path: Path) -> tuple[list[GCGRecord], list[GCGRecord]]:
    a, b = box_mask(H, W, 0, 4, 0, 4), box_mask(H, W, 5, 9, 5, 9)
    gt = [record("img1", [("a car", [a, b]), ("a tree", [b])]), record("img2", [("a boat", [a])])]
    pred = [record("img1", [("a car", [a | b]), ("a tree", [b])]), record("img2", [("a boat", [a])])]
    return gt, pred


def _eval(tmp_path: Path, gt: list[GCGRecord], pred: list[GCGRecord], *extra: str) -> tuple[int, str]:
    write_jsonl(gt, tmp_path / "gt.jsonl")
    write_jsonl(pred, tmp_path / "pred.jsonl")
    rc, err, _ = run_cli(["eval", "--gt", str(tmp_path / "gt.jsonl"), "--pred", str(tmp_path / "pred.jsonl"),
                          "--no-java", *extra], timeout=60)
    return rc, err


@pytest.mark.parametrize(("counts", "message"), [
    (rle_string([0, H * W - 30]), "runs cover 70 pixels but the size 10x10 has 100"),
    ("garbage!!", "counts string has 'r' at position 2"),
])
def test_malformed_gt_rle_is_an_error_not_a_hang(tmp_path: Path, counts: str, message: str) -> None:
    gt, pred = _pair(tmp_path)
    gt[0].phrases[0].masks[1] = {"size": [H, W], "counts": counts}  # the union of two instances: merge hung here
    rc, err = _eval(tmp_path, gt, pred)
    assert rc == 2
    assert "gt.jsonl" in err and "record img1" in err and "field 'phrases[0].masks[1]'" in err and message in err, err


@pytest.mark.parametrize("engine", ["faster", "pycocotools"])
def test_prediction_rle_past_the_mask_is_not_scored(tmp_path: Path, engine: str) -> None:
    gt, pred = _pair(tmp_path)
    runs = [int(v) for v in rle.counts_from_string(pred[1].phrases[0].masks[0]["counts"])]
    runs[-1] += 50  # the last run goes 50 pixels past the end of the 10x10 mask
    pred[1].phrases[0].masks[0] = {"size": [H, W], "counts": rle_string(runs)}
    rc, err = _eval(tmp_path, gt, pred, "--engine", engine)
    assert rc == 2
    assert "pred.jsonl" in err and "record img2" in err and "phrases[0].masks[0]" in err and "cover 150" in err, err


def test_garbage_prediction_rle_names_the_record(tmp_path: Path) -> None:
    gt, pred = _pair(tmp_path)
    pred[0].phrases[1].masks[0] = {"size": [H, W], "counts": "not an rle"}
    rc, err = _eval(tmp_path, gt, pred)
    assert rc == 2 and "record img1" in err and "phrases[1].masks[0]" in err and "RLE alphabet" in err, err


def test_glamm_files_are_validated_too(tmp_path: Path) -> None:
    import json

    from clvnet.data.record import DataError
    from clvnet.eval.glamm_io import read_glamm_gt, read_glamm_prediction

    m = rle.encode(np.ones((H, W), np.uint8))
    images = [{"id": 1, "height": H, "width": W, "file_name": "1.png"}]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [H, W], "counts": rle_string([0, 99])}}]
    (tmp_path / "m.json").write_text(json.dumps({"images": images, "annotations": anns}))
    (tmp_path / "c.json").write_text(json.dumps({"images": images, "annotations": [
        {"id": 1, "image_id": 1, "caption": "a car", "labels": ["a car"]}]}))
    with pytest.raises(DataError, match=r"m\.json, record 1, field 'annotations\[0\]\.segmentation'.*cover 99"):
        read_glamm_gt(tmp_path / "m.json", tmp_path / "c.json")
    (tmp_path / "1.json").write_text(json.dumps({"image_id": 1, "caption": "a car", "phrases": ["a car"],
                                                 "pred_masks": [{"size": [H, W], "counts": m["counts"] + "!"}]}))
    with pytest.raises(DataError, match=r"1\.json, record 1, field 'pred_masks\[0\]'.*RLE alphabet"):
        read_glamm_prediction(tmp_path / "1.json")
