"""Twin-confusion rate: how often a generated phrase names the visual twin of the object its mask covers.

SynthRS draws each twin pair (``car`` / ``boat``, ``storage tank`` / ``roundabout``) from one
appearance distribution, so only context tells the two apart (design §6). The rate asks whether a
model that segments such an object also names it right. Definition (design §7):

1. GT records are SynthRS records: GT phrase ``k`` has the class ``meta["classes"][k]`` and the mask
   that is the union of its instance masks (as in :mod:`clvnet.eval.inputs`). A prediction has one
   mask per phrase; predictions are matched to GT images by record id.
2. Per image, every predicted phrase is matched to the GT phrase whose mask has the highest IoU with
   its mask (pycocotools IoU; the lowest GT index on ties), if that IoU is at least ``iou_threshold``
   (0.5). Each predicted phrase is judged on its own, so two predicted phrases may match one GT phrase.
3. Only matches whose GT class belongs to a twin pair count. With ``c`` the GT class and ``t`` its
   twin, the predicted phrase *names* a class when it contains the class name or its plural as whole
   words, case-insensitively (``"two white cars"`` names ``car``). The match is
   ``correct`` (names ``c``, not ``t``), ``confused`` (names ``t``, not ``c``), ``both`` or ``neither``.
4. ``rate = confused / (correct + confused)``: among matched phrases that name exactly one class of
   the pair, the share that names the wrong one. ``None`` when no phrase qualifies.

``per_class`` splits the counts by GT class and ``per_pair`` by twin pair, each with its own rate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from clvnet.data.record import DataError, GCGRecord
from clvnet.data.synth.objects import PLURALS, TWINS
from clvnet.eval.inputs import align, gt_from_records, pred_from_records
from clvnet.eval.masks import iou_matrix

OUTCOMES = ("correct", "confused", "both", "neither")


def class_pattern(cls: str) -> re.Pattern[str]:
    """Regex that finds ``cls`` or its plural as whole words (any spacing, any case)."""
    forms = sorted({cls, PLURALS.get(cls, cls + "s")}, key=len, reverse=True)
    alt = "|".join(r"\s+".join(re.escape(w) for w in f.split()) for f in forms)
    return re.compile(rf"\b(?:{alt})\b", re.IGNORECASE)


def _counts() -> dict[str, Any]:
    return {k: 0 for k in OUTCOMES}


def _with_rate(c: dict[str, Any]) -> dict[str, Any]:
    n = c["correct"] + c["confused"]
    return {**c, "rate": c["confused"] / n if n else None}


def _gt_classes(rec: GCGRecord) -> list[str]:
    classes = rec.meta.get("classes")
    if not isinstance(classes, list) or len(classes) != len(rec.phrases):
        got = "missing" if classes is None else f"{len(classes) if isinstance(classes, list) else classes!r}"
        raise DataError(f"GT record needs meta.classes with one class per phrase ({len(rec.phrases)}), got {got}",
                        record=rec.id, field="meta.classes")
    return [str(c) for c in classes]


def twin_confusion(gt_records: Sequence[GCGRecord], pred_records: Sequence[GCGRecord],
                   iou_threshold: float = 0.5,
                   pairs: Sequence[tuple[str, str]] = TWINS) -> dict[str, Any]:
    """The twin-confusion rate of predictions against SynthRS GT records (see the module doc).

    Returns:
        ``rate`` (x1, or None), the outcome counts ``correct`` / ``confused`` / ``both`` / ``neither``,
        ``matched`` (predicted phrases matched to a twin-class GT phrase), ``phrases`` (predicted phrases
        seen), ``images`` and ``missing`` (GT images without a prediction), and ``per_class`` /
        ``per_pair`` dicts of counts with their own ``rate``.

    Raises:
        DataError: a GT record without one ``meta.classes`` entry per phrase, a prediction for an
            image not in the GT, a phrase without exactly one mask, or a mask of the wrong size.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    twin_of: dict[str, str] = {}
    for a, b in pairs:
        if a == b or a in twin_of or b in twin_of:
            raise ValueError(f"twin pairs must be disjoint pairs of two classes, got {list(pairs)}")
        twin_of[a], twin_of[b] = b, a
    patterns = {c: class_pattern(c) for c in twin_of}
    classes = [_gt_classes(r) for r in gt_records]
    gts = gt_from_records(gt_records)
    preds, missing = align(gts, pred_from_records(pred_records))
    total, per_class = _counts(), {c: _counts() for c in twin_of}
    n_phrases = matched = 0
    for g, p, cls in zip(gts, preds, classes):
        n_phrases += len(p.phrases)
        if not p.phrases or not g.phrases:
            continue
        ious = iou_matrix(p.masks, g.masks)  # (pred, GT)
        for j, text in enumerate(p.phrases):
            k = int(np.argmax(ious[j]))
            c = cls[k]
            if ious[j, k] < iou_threshold or c not in twin_of:
                continue
            right, wrong = bool(patterns[c].search(text)), bool(patterns[twin_of[c]].search(text))
            outcome = ("both" if wrong else "correct") if right else ("confused" if wrong else "neither")
            total[outcome] += 1
            per_class[c][outcome] += 1
            matched += 1
    per_pair = {f"{a}/{b}": _with_rate({k: per_class[a][k] + per_class[b][k] for k in OUTCOMES}) for a, b in pairs}
    return {**_with_rate(total), "matched": matched, "phrases": n_phrases, "images": len(gts),
            "missing": len(missing), "iou_threshold": iou_threshold,
            "per_class": {c: _with_rate(v) for c, v in per_class.items()}, "per_pair": per_pair}
