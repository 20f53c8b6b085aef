"""Recall: greedy matching of GT and predicted phrases by mask IoU and text similarity (GCG_EVAL.md).

Per image, with the IoU matrix *GT x predicted* and the text-similarity matrix *GT phrases x predicted
phrases*: repeatedly take the pair with the global maximum IoU (row-major tie-break). If its IoU is
below 0.5 **or** its text similarity is below 0.5, stop for this image (even if another pair would
pass). Otherwise count a true positive and zero that row and column in both matrices.
Recall = sum of true positives / sum of GT phrases over the dataset.

Only the similarity of the pairs the loop actually inspects matters, so embeddings are computed
just for phrases that take part in a pair with IoU >= 0.5 (a superset of the inspected ones), in
batches, once per unique phrase. The outcome is identical to filling the full matrix.

Uni-/multi-target split: true positives are partitioned by their GT phrase's group and divided by
the number of GT phrases of that group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from clvnet.eval.inputs import GTImage, PredImage

IOU_THRESHOLD = 0.5
TEXT_SIM_THRESHOLD = 0.5

Similarity = Callable[[str, str], float]


def greedy_recall_matches(ious: np.ndarray, sim: Callable[[int, int], float],
                          iou_threshold: float = IOU_THRESHOLD,
                          text_threshold: float = TEXT_SIM_THRESHOLD) -> list[tuple[int, int]]:
    """True-positive pairs ``(gt, pred)`` of one image under the stop-at-first-failing-pair rule.

    Args:
        ious: (n_gt, n_pred) IoU matrix.
        sim: ``sim(gt_index, pred_index)`` text similarity, called only for inspected pairs.
        iou_threshold: minimum IoU of a true positive.
        text_threshold: minimum text similarity of a true positive.
    """
    m = ious.copy()
    matches: list[tuple[int, int]] = []
    while m.size > 0:
        r, c = (int(v) for v in np.unravel_index(int(np.argmax(m)), m.shape))
        # IoU first: a pair below the IoU threshold stops the loop whatever its similarity, so the
        # similarity is only computed for pairs that could pass (zeroed pairs have IoU 0).
        if m[r, c] < iou_threshold or sim(r, c) < text_threshold:
            break
        matches.append((r, c))
        m[r, :] = 0
        m[:, c] = 0
    return matches


def phrases_needing_embeddings(gts: Sequence[GTImage], preds: Sequence[PredImage],
                               gt_by_pred: Sequence[np.ndarray],
                               iou_threshold: float = IOU_THRESHOLD) -> list[str]:
    """Unique phrases that appear in some (GT, pred) pair with IoU >= threshold, in first-seen order."""
    seen: dict[str, None] = {}
    for g, p, m in zip(gts, preds, gt_by_pred):
        if m.size == 0:
            continue
        rows, cols = np.nonzero(m >= iou_threshold)
        for r in np.unique(rows):
            seen.setdefault(g.phrases[int(r)], None)
        for c in np.unique(cols):
            seen.setdefault(p.phrases[int(c)], None)
    return list(seen)


def recall_scores(gts: Sequence[GTImage], preds: Sequence[PredImage], gt_by_pred: Sequence[np.ndarray],
                  similarity: Similarity) -> dict[str, float | None]:
    """Recall overall and per group (x1).

    Args:
        gts: GT images.
        preds: predictions aligned with ``gts``.
        gt_by_pred: per image, the (n_gt, n_pred) IoU matrix.
        similarity: text similarity of a GT phrase and a predicted phrase.

    Returns:
        ``{"overall", "uni", "multi", "tp", "tp_uni", "tp_multi"}``; a group without GT phrases is None.
    """
    tp = {"uni": 0, "multi": 0}
    n = {"uni": 0, "multi": 0}
    for g, p, m in zip(gts, preds, gt_by_pred):
        for k in range(len(g.phrases)):
            n["multi" if g.is_multi(k) else "uni"] += 1
        def sim(r: int, c: int, g: GTImage = g, p: PredImage = p) -> float:
            return similarity(g.phrases[r], p.phrases[c])

        matches = greedy_recall_matches(m, sim)
        for r, _ in matches:
            tp["multi" if g.is_multi(r) else "uni"] += 1
    total = n["uni"] + n["multi"]
    return {"overall": (tp["uni"] + tp["multi"]) / total if total else 0.0,
            "uni": tp["uni"] / n["uni"] if n["uni"] else None,
            "multi": tp["multi"] / n["multi"] if n["multi"] else None,
            "tp": float(tp["uni"] + tp["multi"]), "tp_uni": float(tp["uni"]), "tp_multi": float(tp["multi"])}
