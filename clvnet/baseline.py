"""The trivial baseline that the quickstart compares the trained model against.

For every test record the baseline

- writes the **most common training caption** (exact string count; ties go to the caption seen first
  in the training file), and
- grounds **each phrase of that caption** to the **user box** itself, rasterised as a filled
  rectangle at the test image's size (the whole image when the record has no box), scored 1.0.

It needs no training and no model, so any learned model must beat it: its captions get the
n-gram overlap that a fixed generic description gets, and its masks the IoU that "the object is the
box" gets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from clvnet.data import rle
from clvnet.data.record import GCGRecord, Phrase


def most_common_caption(train_records: Sequence[GCGRecord]) -> GCGRecord:
    """The training record whose caption occurs most often (first occurrence wins ties)."""
    if not train_records:
        raise ValueError("the trivial baseline needs at least one training record")
    counts = Counter(r.caption for r in train_records)
    best = max(counts.values())
    return next(r for r in train_records if counts[r.caption] == best)


def box_mask(record: GCGRecord) -> np.ndarray:
    """(H, W) uint8 mask of the record's box (pixel centres inside it); all ones without a box."""
    h, w = record.height, record.width
    if record.box is None:
        return np.ones((h, w), dtype=np.uint8)
    x0, y0, x1, y1 = record.box
    xs = np.arange(w) + 0.5
    ys = np.arange(h) + 0.5
    mx = (xs >= x0) & (xs <= x1)
    my = (ys >= y0) & (ys <= y1)
    return (my[:, None] & mx[None, :]).astype(np.uint8)


def predict_baseline(train_records: Sequence[GCGRecord], test_records: Sequence[GCGRecord]) -> list[GCGRecord]:
    """Baseline predictions for ``test_records`` (same ids), built from ``train_records`` only."""
    ref = most_common_caption(train_records)
    preds = []
    for r in test_records:
        m = rle.encode(box_mask(r))
        phrases = [Phrase(p.text, p.span, [m]) for p in ref.phrases]
        preds.append(GCGRecord(image=r.image, height=r.height, width=r.width, caption=ref.caption,
                               phrases=phrases, box=r.box, id=r.id,
                               meta={"scores": [1.0] * len(phrases), "baseline": "most-common-caption+box"}))
    return preds
