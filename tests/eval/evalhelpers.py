"""Small record builders shared by the evaluator tests."""

from __future__ import annotations

import numpy as np

from clvnet.data.record import GCGRecord, Phrase
from clvnet.data.rle import encode


def box_mask(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def record(rid: str, phrases: list[tuple[str, list[np.ndarray]]], caption: str | None = None,
           h: int = 10, w: int = 10) -> GCGRecord:
    """A record whose caption is the phrases joined by ' and ' (spans computed)."""
    texts = [t for t, _ in phrases]
    cap = " and ".join(texts) if caption is None else caption
    out, pos = [], 0
    for t, masks in phrases:
        s = cap.index(t, pos) if t in cap[pos:] else 0
        out.append(Phrase(t, (s, s + len(t)), [encode(m) for m in masks]))
        pos = s + len(t)
    return GCGRecord(image=f"{rid}.png", height=h, width=w, caption=cap, phrases=out, id=rid)
