"""mIoU, IoU and AP50: hand-computed cases and equality with a direct pycocotools computation."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from evalhelpers import box_mask, record

from clvnet.data.rle import encode
from clvnet.eval import evaluate_masks
from clvnet.eval.inputs import gt_from_records, pred_from_records
from clvnet.eval.masks import (
    ap50_from_dicts,
    ap50_scores,
    coco_dicts,
    greedy_miou_pairs,
    iou_matrix,
    miou_scores,
)
from clvnet.eval.synthetic import make_pair

H = W = 10
A = box_mask(H, W, 0, 5, 0, 5)       # 25 px
B = box_mask(H, W, 5, 10, 5, 10)     # 25 px
P2 = box_mask(H, W, 5, 10, 5, 8)     # 15 px inside B -> IoU 0.6
P3 = box_mask(H, W, 0, 5, 0, 2)      # 10 px inside A -> IoU 0.4
EMPTY = np.zeros((H, W), dtype=np.uint8)


def test_two_empty_masks_have_iou_zero_not_nan() -> None:
    m = iou_matrix([encode(EMPTY)], [encode(EMPTY), encode(A)])
    assert m.shape == (1, 2)
    assert not np.isnan(m).any()
    assert m.tolist() == [[0.0, 0.0]]


def test_iou_matrix_exact_values() -> None:
    m = iou_matrix([encode(A), encode(P2), encode(P3)], [encode(A), encode(B)])
    assert m.tolist() == [[1.0, 0.0], [0.0, 0.6], [0.4, 0.0]]


def test_greedy_takes_row_major_global_max_and_stops_at_zero() -> None:
    # picking (0, 0) first leaves only a 0 -> one pair; picking (0, 1) would have given 0.6 and 0.2
    pairs = greedy_miou_pairs(np.array([[0.6, 0.6], [0.2, 0.0]]))
    assert pairs == [(0, 0, 0.6)]
    assert greedy_miou_pairs(np.zeros((2, 3))) == []
    assert greedy_miou_pairs(np.zeros((0, 3))) == []
    # deletion keeps original indices
    assert greedy_miou_pairs(np.array([[0.1, 0.9], [0.8, 0.3]])) == [(0, 1, 0.9), (1, 0, 0.8)]


def test_miou_many_to_one_and_missing_prediction() -> None:
    gt = [record("a", [("two white cars", [A]), ("a red boat", [B])]), record("b", [("a tree", [A])])]
    # p3 is a second prediction on A (many-to-one): unpaired, not penalised
    pred = [record("a", [("two white cars", [A]), ("a red boat", [P2]), ("two white cars", [P3])])]
    out = evaluate_masks(gt, pred)
    assert out["mIoU"] == pytest.approx(100 * (((1.0 + 0.6) / 2) + 0.0) / 2)
    assert out["counts"]["missing_predictions"] == 1
    assert out["counts"]["missing_prediction_ids"] == ["b"]


def test_miou_one_to_many() -> None:
    left, right = box_mask(H, W, 0, 5, 0, 5), box_mask(H, W, 0, 5, 5, 10)
    wide = box_mask(H, W, 0, 5, 0, 10)  # covers both GT: IoU 0.5 each, only one pair
    gts = gt_from_records([record("a", [("a car", [left]), ("a boat", [right])])])
    preds = pred_from_records([record("a", [("cars", [wide])])])
    m = iou_matrix(preds[0].masks, gts[0].masks)
    assert greedy_miou_pairs(m) == [(0, 0, 0.5)]
    assert miou_scores(gts, [m])["overall"] == pytest.approx(0.5)


def test_uni_multi_split_of_miou() -> None:
    multi_a = [box_mask(H, W, 0, 5, 0, 2), box_mask(H, W, 0, 5, 3, 5)]  # union 20 px
    union_a = multi_a[0] | multi_a[1]
    gt = [record("a", [("two small cars", multi_a), ("a red boat", [B])]), record("b", [("a tree", [A])])]
    pred = [record("a", [("two small cars", [union_a]), ("a red boat", [P2])])]
    gts, preds = gt_from_records(gt), pred_from_records(pred)
    assert gts[0].n_instances == [2, 1] and gts[0].is_multi(0) and not gts[0].is_multi(1)
    ious = [iou_matrix(preds[0].masks, gts[0].masks), iou_matrix([], gts[1].masks)]
    s = miou_scores(gts, ious)
    assert s["overall"] == pytest.approx(((1.0 + 0.6) / 2 + 0.0) / 2)
    assert s["uni"] == pytest.approx((0.6 + 0.0) / 2)
    assert s["multi"] == pytest.approx(1.0)


def _direct_pycocotools_ap50(gt_recs: list, pred_recs: list) -> float:
    """GLaMM's AP code path on COCO dicts with the original string image ids, written independently."""
    from pycocotools import mask as mu
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns = [], []
    for r in gt_recs:
        images.append({"id": r.id, "height": r.height, "width": r.width})
        for p in r.phrases:
            rles = [{"size": m["size"], "counts": m["counts"].encode()} for m in p.masks]
            u = mu.merge(rles, intersect=0) if len(rles) > 1 else rles[0]
            anns.append({"id": len(anns) + 1, "image_id": r.id, "category_id": 1, "segmentation": u,
                         "area": float(mu.area(u)), "bbox": list(mu.toBbox(u)), "iscrowd": 0})
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1}]}
    coco_gt.createIndex()
    dets = [{"image_id": r.id, "category_id": 1, "segmentation": copy.deepcopy(p.masks[0]), "score": 1.0}
            for r in pred_recs for p in r.phrases]
    ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "segm")
    ev.params.catIds = [1]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return float(ev.stats[1])


@pytest.mark.parametrize("engine", ["pycocotools", "faster"])
def test_ap50_equals_direct_pycocotools_on_random_set(engine: str) -> None:
    gt, pred = make_pair(50, phrases_per_image=5, size=64, seed=3, missing_frac=0.0)
    rng = np.random.default_rng(0)
    pred = [pred[i] for i in rng.permutation(len(pred))]  # prediction file order must not matter
    # non-monotonic string ids check that image ranking follows COCOeval's sorted ids
    for r in gt + pred:
        r.id = {"0": "z", "1": "b", "2": "m"}.get(r.id[-1], "") + r.id
    direct = _direct_pycocotools_ap50(gt, sorted(pred, key=lambda r: r.id))
    ours = evaluate_masks(gt, pred, engine=engine)["AP50"]  # type: ignore[arg-type]
    assert 0.05 < direct < 0.95
    assert ours == pytest.approx(100 * direct, abs=1e-10)


def test_faster_engine_equals_pycocotools_per_group() -> None:
    gt, pred = make_pair(50, phrases_per_image=5, size=64, seed=5)
    gts, preds = gt_from_records(gt), pred_from_records(pred)
    from clvnet.eval.inputs import align

    preds, _ = align(gts, preds)
    ious = [iou_matrix(p.masks, g.masks) for g, p in zip(gts, preds)]
    a = ap50_scores(gts, preds, ious, engine="pycocotools")
    b = ap50_scores(gts, preds, ious, engine="faster")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] is not None and b[k] is not None
        assert a[k] == pytest.approx(b[k], abs=1e-12), k


def test_ap50_no_detections_is_zero_and_no_gt_is_none() -> None:
    gts = gt_from_records([record("a", [("a car", [A])])])
    preds = pred_from_records([record("a", [])])
    for engine in ("pycocotools", "faster"):
        assert ap50_from_dicts(*coco_dicts(gts, preds), engine=engine) == 0.0  # type: ignore[arg-type]
    gt_dict, dets = coco_dicts(gts, preds, gt_keep=lambda i, k: False)
    assert ap50_from_dicts(gt_dict, dets) is None
    assert not math.isnan(evaluate_masks(gts, preds)["mIoU"])
