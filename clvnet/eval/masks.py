"""Mask metrics: IoU matrices, greedy mIoU and COCO AP50 (GCG_EVAL.md, "AP50" and "mIoU").

- IoUs come from ``pycocotools.mask.iou`` on RLEs: exact integer pixel counts, and two empty masks
  give IoU 0 (not NaN).
- **mIoU**: per image, the IoU matrix is *predicted x GT*; repeatedly take its global maximum
  (row-major tie-break), record it, delete its row and column; stop when the matrix is empty or its
  maximum is 0. The image scores the mean of the recorded IoUs (0 when none, e.g. no prediction);
  mIoU is the plain mean over GT images. Extra and missed masks are not penalised (published
  behaviour).
- **AP50**: ``COCOeval(gt, dt, "segm")`` with ``catIds=[1]``, every detection scored 1.0, other
  parameters at their defaults; AP50 is ``stats[1]``. Detections keep ``[SEG]`` order within an
  image; COCOeval ranks images by sorted image id, so ids are remapped to integers in sorted order of
  the original ids, which keeps the ranking identical.

Uni-/multi-target split (our definition; GeoPixel published none):
- mIoU: the overall greedy pairs are partitioned by their GT phrase's group; a group's image score is
  the mean of its pairs' IoUs (0 if none), averaged over the images that have a GT phrase of that group.
- AP50: COCOeval run on the group's GT phrases only, with the predictions whose best-overlapping GT
  phrase (highest IoU, first on ties) is in the group; a prediction overlapping no GT phrase is a
  false positive in both groups.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pycocotools import mask as mask_utils

from clvnet.eval.inputs import CocoRLE, GTImage, PredImage

Engine = Literal["pycocotools", "faster"]
Group = Literal["uni", "multi"]


def iou_matrix(rows: Sequence[CocoRLE], cols: Sequence[CocoRLE]) -> np.ndarray:
    """(len(rows), len(cols)) float64 IoUs; empty vs empty is 0."""
    if not rows or not cols:
        return np.zeros((len(rows), len(cols)), dtype=np.float64)
    m = mask_utils.iou(list(rows), list(cols), [0] * len(cols))
    return np.asarray(m, dtype=np.float64).reshape(len(rows), len(cols))


def greedy_miou_pairs(ious: np.ndarray) -> list[tuple[int, int, float]]:
    """Greedy one-to-one pairs ``(row, col, iou)`` of a pred x GT IoU matrix (GLaMM's mIoU rule)."""
    rows = list(range(ious.shape[0]))
    cols = list(range(ious.shape[1]))
    m = ious.copy()
    pairs: list[tuple[int, int, float]] = []
    while m.size > 0 and np.max(m) > 0:
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        pairs.append((rows[r], cols[c], float(m[r, c])))
        m = np.delete(np.delete(m, r, axis=0), c, axis=1)
        del rows[r], cols[c]
    return pairs


def image_miou(ious: np.ndarray) -> float:
    """One image's score: mean of the greedy pairs' IoUs, 0 if there are none."""
    pairs = greedy_miou_pairs(ious)
    return float(np.mean([p[2] for p in pairs])) if pairs else 0.0


def miou_scores(gts: Sequence[GTImage], ious: Sequence[np.ndarray]) -> dict[str, float | None]:
    """mIoU overall and per group (x1, not x100) from per-image pred x GT IoU matrices.

    Returns:
        ``{"overall", "uni", "multi"}``; a group with no GT phrase in any image is ``None``.
    """
    overall: list[float] = []
    per_group: dict[str, list[float]] = {"uni": [], "multi": []}
    for g, m in zip(gts, ious):
        pairs = greedy_miou_pairs(m)
        overall.append(float(np.mean([p[2] for p in pairs])) if pairs else 0.0)
        for grp, want_multi in (("uni", False), ("multi", True)):
            if not any(g.is_multi(k) == want_multi for k in range(len(g.phrases))):
                continue
            vals = [v for _, c, v in pairs if g.is_multi(c) == want_multi]
            per_group[grp].append(float(np.mean(vals)) if vals else 0.0)
    return {"overall": float(np.mean(overall)) if overall else 0.0,
            "uni": float(np.mean(per_group["uni"])) if per_group["uni"] else None,
            "multi": float(np.mean(per_group["multi"])) if per_group["multi"] else None}


# --------------------------------------------------------------------------- AP50
def _bbox(rle: CocoRLE) -> list[float]:
    return [float(v) for v in mask_utils.toBbox(rle)]


def coco_dicts(gts: Sequence[GTImage], preds: Sequence[PredImage], *, gt_keep: Any = None,
               dt_keep: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Build fresh COCO GT dataset / detection list dicts (COCOeval mutates them, so never reuse).

    Args:
        gts: GT images.
        preds: predictions aligned with ``gts``.
        gt_keep: optional ``gt_keep(i, k) -> bool`` selecting GT phrase ``k`` of image ``i``.
        dt_keep: optional ``dt_keep(i, j) -> bool`` selecting predicted mask ``j`` of image ``i``.
    """
    order = sorted(range(len(gts)), key=lambda i: gts[i].image_id)  # type: ignore[arg-type,return-value]
    int_id = {i: n + 1 for n, i in enumerate(order)}
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    dets: list[dict[str, Any]] = []
    for i, g in enumerate(gts):
        images.append({"id": int_id[i], "height": g.height, "width": g.width})
        for k, rle in enumerate(g.masks):
            if gt_keep is not None and not gt_keep(i, k):
                continue
            anns.append({"id": len(anns) + 1, "image_id": int_id[i], "category_id": 1,
                         "segmentation": {"size": list(rle["size"]), "counts": rle["counts"]},
                         "area": float(mask_utils.area(rle)), "bbox": _bbox(rle), "iscrowd": 0})
    for i, p in enumerate(preds):
        for j, rle in enumerate(p.masks):
            if dt_keep is not None and not dt_keep(i, j):
                continue
            dets.append({"image_id": int_id[i], "category_id": 1,
                         "segmentation": {"size": list(rle["size"]), "counts": rle["counts"]}, "score": 1.0})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}
    return gt, dets


def ap50_from_dicts(gt: dict[str, Any], dets: list[dict[str, Any]], engine: Engine = "faster") -> float | None:
    """COCO segm AP at IoU 0.5 (``stats[1]``), or None when there is no GT annotation."""
    if not gt["annotations"]:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        if engine == "faster":
            from faster_coco_eval import COCO as FCOCO
            from faster_coco_eval import COCOeval_faster

            coco_gt = FCOCO(gt)
            coco_dt = coco_gt.loadRes(dets) if dets else FCOCO({**gt, "annotations": []})
            ev: Any = COCOeval_faster(coco_gt, coco_dt, "segm", print_function=lambda *a, **k: None)
        elif engine == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            coco_gt = COCO()
            coco_gt.dataset = gt
            coco_gt.createIndex()
            coco_dt = coco_gt.loadRes(dets) if dets else _empty_res(coco_gt)
            ev = COCOeval(coco_gt, coco_dt, "segm")
        else:
            raise ValueError(f"unknown AP engine {engine!r}; choose 'faster' or 'pycocotools'")
        ev.params.catIds = [1]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ap = float(ev.stats[1])
    return ap


def _empty_res(coco_gt: Any) -> Any:
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": [],
                   "categories": list(coco_gt.dataset["categories"])}
    res.createIndex()
    return res


def pred_groups(gts: Sequence[GTImage], ious: Sequence[np.ndarray]) -> list[list[set[str]]]:
    """For each image and predicted mask, the set of groups it is evaluated in (see module doc)."""
    out: list[list[set[str]]] = []
    for g, m in zip(gts, ious):
        row: list[set[str]] = []
        for j in range(m.shape[0]):
            if m.shape[1] == 0 or float(m[j].max()) <= 0:
                row.append({"uni", "multi"})
            else:
                row.append({"multi" if g.is_multi(int(np.argmax(m[j]))) else "uni"})
        out.append(row)
    return out


def ap50_scores(gts: Sequence[GTImage], preds: Sequence[PredImage], ious: Sequence[np.ndarray],
                engine: Engine = "faster") -> dict[str, float | None]:
    """AP50 overall and per group (x1). ``ious[i]`` is image i's pred x GT IoU matrix."""
    out: dict[str, float | None] = {"overall": ap50_from_dicts(*coco_dicts(gts, preds), engine=engine)}
    groups = pred_groups(gts, ious)
    for grp in ("uni", "multi"):
        want = grp == "multi"
        gt, dets = coco_dicts(gts, preds, gt_keep=lambda i, k, w=want: gts[i].is_multi(k) == w,
                              dt_keep=lambda i, j, s=grp: s in groups[i][j])
        out[grp] = ap50_from_dicts(gt, dets, engine=engine)
    return out
