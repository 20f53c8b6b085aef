"""The full evaluator: robustness to bad input (each failure named), missing predictions, and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from evalhelpers import box_mask, record

from clvnet.data.record import DataError, GCGRecord, Phrase
from clvnet.data.rle import encode
from clvnet.eval import evaluate, evaluate_masks, format_table
from clvnet.eval.glamm_io import read_glamm_prediction
from clvnet.eval.inputs import PredImage, align, gt_from_records

H = W = 10
A, B = box_mask(H, W, 0, 5, 0, 5), box_mask(H, W, 5, 10, 5, 10)


def _gt() -> list[GCGRecord]:
    return [record("a", [("two white cars", [A]), ("a red boat", [B])]), record("b", [("a tree", [A])])]


def test_full_evaluate_without_java(tiny_encoder_dir: Path) -> None:
    pred = [record("a", [("two white cars", [A]), ("a red boat", [box_mask(H, W, 5, 10, 5, 8)])])]
    m = evaluate(_gt(), pred, text_encoder=tiny_encoder_dir, use_java=False)
    assert m["METEOR"] is None and m["tokenizer"] == "simple"
    assert m["mIoU"] == pytest.approx(100 * ((1.0 + 0.6) / 2 + 0.0) / 2)
    assert m["Recall"] == pytest.approx(100 * 2 / 3)  # identical phrases have similarity 1 under any encoder
    assert m["uni_target"]["Recall"] == m["Recall"] and m["multi_target"] == {"AP50": None, "mIoU": None,
                                                                              "Recall": None}
    c = m["counts"]
    assert (c["images"], c["gt_phrases"], c["pred_phrases"], c["missing_predictions"]) == (2, 3, 2, 1)
    assert m["text_encoder"] == str(tiny_encoder_dir)
    assert m["versions"]["pycocotools"] and m["versions"]["pycocoevalcap"] == "1.2"
    json.dumps(m)  # JSON-safe
    table = format_table(m)
    assert "| overall | 3 |" in table and "missing predictions: 1" in table and str(tiny_encoder_dir) in table


def test_missing_prediction_scores_zero_for_that_image() -> None:
    gt = _gt()
    full = evaluate_masks(gt, [record("a", [("x", [A]), ("y", [B])]), record("b", [("z", [A])])])
    part = evaluate_masks(gt, [record("a", [("x", [A]), ("y", [B])])])
    assert full["mIoU"] == pytest.approx(100.0)
    assert part["mIoU"] == pytest.approx(50.0)
    assert part["counts"]["missing_predictions"] == 1 and part["counts"]["missing_prediction_ids"] == ["b"]
    none = evaluate_masks(gt, [])
    assert none["mIoU"] == 0.0 and none["AP50"] == 0.0 and none["counts"]["missing_predictions"] == 2


def test_phrase_count_different_from_mask_count_raises_naming_image(tmp_path: Path) -> None:
    gts = gt_from_records(_gt())
    with pytest.raises(DataError, match=r"record b.*2 phrases but 1 masks"):
        align(gts, [PredImage("b", "a tree", ["a tree", "x"], [encode(A)])])
    bad = GCGRecord(image="a.png", height=H, width=W, caption="a car", id="a",
                    phrases=[Phrase("a car", (0, 5), [encode(A), encode(B)])])
    with pytest.raises(DataError, match=r"record a.*exactly one mask per phrase"):
        evaluate_masks(_gt(), [bad])
    f = tmp_path / "a.json"
    f.write_text(json.dumps({"image_id": "a", "caption": "c", "phrases": ["p", "q"], "pred_masks": []}))
    with pytest.raises(DataError, match=r"a\.json.*2 phrases but 0 masks"):
        read_glamm_prediction(f)


def test_duplicate_ids_raise() -> None:
    with pytest.raises(DataError, match="duplicate GT image id 'a'"):
        evaluate_masks([*_gt(), record("a", [("x", [A])])], [])
    with pytest.raises(DataError, match="duplicate prediction image id 'a'"):
        evaluate_masks(_gt(), [record("a", [("x", [A])]), record("a", [("y", [B])])])


def test_rle_size_mismatch_raises_naming_image() -> None:
    small = record("a", [("x", [np.ones((5, 5), dtype=np.uint8)])], h=5, w=5)
    with pytest.raises(DataError, match=r"record a, field 'phrases\[0\]\.masks\[0\]': RLE size 5x5 differs from "
                                        r"the GT image size 10x10"):
        evaluate_masks(_gt(), [small])
    bad_gt = record("g", [("x", [A])])
    bad_gt.height = 12
    with pytest.raises(DataError, match=r"record g, field 'phrases\[0\]\.masks\[0\]': RLE size 10x10 differs"):
        evaluate_masks([bad_gt], [])


def test_prediction_for_unknown_image_raises() -> None:
    with pytest.raises(DataError, match="not in the GT"):
        evaluate_masks(_gt(), [record("zzz", [("x", [A])])])


def test_scores_length_checked() -> None:
    p = record("a", [("x", [A])])
    p.meta["scores"] = [0.5, 0.2]
    with pytest.raises(DataError, match=r"meta\.scores has 2 values for 1 phrases"):
        evaluate_masks(_gt(), [p])


def test_java_missing_is_reported_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  tiny_encoder_dir: Path) -> None:
    from clvnet.eval.captions import JavaNotFoundError

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match="Java was not found"):
        evaluate(_gt(), [], text_encoder=tiny_encoder_dir)
    m = evaluate(_gt(), [], text_encoder=tiny_encoder_dir, use_java=False)
    assert m["METEOR"] is None and m["versions"]["java"] is None


def test_gt_image_without_phrases_and_empty_gt_mask(tiny_encoder_dir: Path) -> None:
    empty = np.zeros((H, W), dtype=np.uint8)
    gt = [GCGRecord(image="n.png", height=H, width=W, caption="nothing here", id="n"),
          record("e", [("a car", [empty])])]
    pred = [record("n", [("a car", [A])]), record("e", [("a car", [empty])])]
    m = evaluate(gt, pred, text_encoder=tiny_encoder_dir, use_java=False)
    assert m["mIoU"] == 0.0 and m["Recall"] == 0.0  # empty vs empty is IoU 0, never NaN
    assert m["counts"]["gt_phrases"] == 1 and m["counts"]["pred_phrases"] == 2
    assert m["AP50"] is not None and not np.isnan(m["AP50"])
