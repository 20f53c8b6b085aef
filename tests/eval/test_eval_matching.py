"""Recall: the greedy rule with its stop-at-first-failing-pair, and the uni/multi split, by hand."""

from __future__ import annotations

import numpy as np
import pytest
from evalhelpers import box_mask, record

from clvnet.eval.inputs import align, gt_from_records, pred_from_records
from clvnet.eval.masks import iou_matrix
from clvnet.eval.matching import greedy_recall_matches, phrases_needing_embeddings, recall_scores

H = W = 10


def exact(a: str, b: str) -> float:
    """A text similarity: 1 for equal phrases, else 0."""
    return 1.0 if a == b else 0.0


def test_stop_at_first_failing_pair() -> None:
    ious = np.array([[0.9, 0.0], [0.0, 0.7]])  # GT x pred
    sims = {(0, 0): 0.2, (1, 1): 0.9}
    # the best-IoU pair fails on text -> stop, although (1, 1) would pass
    assert greedy_recall_matches(ious, lambda r, c: sims.get((r, c), 0.0)) == []
    sims[(0, 0)] = 0.5  # at the threshold passes
    assert greedy_recall_matches(ious, lambda r, c: sims.get((r, c), 0.0)) == [(0, 0), (1, 1)]


def test_stop_when_best_iou_below_half_and_similarity_only_for_inspected_pairs() -> None:
    calls: list[tuple[int, int]] = []

    def sim(r: int, c: int) -> float:
        calls.append((r, c))
        return 1.0

    assert greedy_recall_matches(np.array([[0.49, 0.3]]), sim) == []
    assert calls == []
    assert greedy_recall_matches(np.array([[0.6, 0.55], [0.7, 0.1]]), sim) == [(1, 0), (0, 1)]
    assert calls == [(1, 0), (0, 1)]
    assert greedy_recall_matches(np.zeros((0, 2)), sim) == []


def test_many_to_one_and_one_to_many() -> None:
    a, c = box_mask(H, W, 0, 5, 0, 5), box_mask(H, W, 0, 5, 5, 10)
    wide = box_mask(H, W, 0, 5, 0, 10)
    # one prediction covering two GT phrases (IoU 0.5 each): one true positive
    gts = gt_from_records([record("x", [("a car", [a]), ("a car", [c])])])
    preds, _ = align(gts, pred_from_records([record("x", [("a car", [wide])])]))
    m = iou_matrix(preds[0].masks, gts[0].masks).T
    assert m.tolist() == [[0.5], [0.5]]
    assert recall_scores(gts, preds, [m], exact)["overall"] == pytest.approx(0.5)
    # two predictions on one GT phrase: one true positive
    gts = gt_from_records([record("x", [("a car", [a])])])
    preds, _ = align(gts, pred_from_records([record("x", [("a car", [a]), ("a car", [a])])]))
    m = iou_matrix(preds[0].masks, gts[0].masks).T
    assert recall_scores(gts, preds, [m], exact)["overall"] == pytest.approx(1.0)


def test_recall_over_dataset_with_split_and_missing_prediction() -> None:
    multi = [box_mask(H, W, 0, 5, 0, 2), box_mask(H, W, 0, 5, 3, 5)]
    b = box_mask(H, W, 5, 10, 5, 10)
    gt = [record("a", [("two small cars", multi), ("a red boat", [b])]),
          record("b", [("a tree", [b])]),
          record("c", [("a pool", [b]), ("a road", [multi[0]])])]
    pred = [record("a", [("a red boat", [box_mask(H, W, 5, 10, 5, 8)]), ("two small cars", [multi[0] | multi[1]])]),
            record("c", [("a pool", [b]), ("a river", [multi[0]])])]   # 2nd fails on text: stop
    gts = gt_from_records(gt)
    preds, missing = align(gts, pred_from_records(pred))
    assert missing == ["b"]
    mats = [iou_matrix(p.masks, g.masks).T for g, p in zip(gts, preds)]
    s = recall_scores(gts, preds, mats, exact)
    # TPs: image a -> 2 (multi + uni); image b -> 0; image c -> "a pool" (IoU 1, first) then stop on "a river"
    assert s["tp"] == 3
    assert s["overall"] == pytest.approx(3 / 5)
    assert s["multi"] == pytest.approx(1 / 1)
    assert s["uni"] == pytest.approx(2 / 4)


def test_phrases_needing_embeddings_are_those_in_passing_iou_pairs() -> None:
    a, b = box_mask(H, W, 0, 5, 0, 5), box_mask(H, W, 5, 10, 5, 10)
    gts = gt_from_records([record("a", [("a car", [a]), ("a boat", [b])])])
    preds, _ = align(gts, pred_from_records([record("a", [("cars", [a]), ("nothing", [box_mask(H, W, 9, 10, 9, 10)])])]))
    mats = [iou_matrix(p.masks, g.masks).T for g, p in zip(gts, preds)]
    assert phrases_needing_embeddings(gts, preds, mats) == ["a car", "cars"]
