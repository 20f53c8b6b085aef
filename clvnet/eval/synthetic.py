"""Deterministic synthetic GT / prediction record pairs for evaluator tests and ``scripts/bench_eval.py``.

Each GT image gets ``phrases_per_image`` (+-1) phrases made of rectangles and ellipses; about a
third are multi-target (2-3 instances). Predictions perturb the GT: shifted and resized masks,
some phrases re-worded, dropped or added, captions with word substitutions, and a few images
without any prediction.
"""

from __future__ import annotations

import numpy as np

from clvnet.data.record import GCGRecord, Phrase
from clvnet.data.rle import encode

COUNTS = ["a", "one", "two", "three", "several", "many"]
COLORS = ["white", "red", "blue", "dark", "grey", "green", "large", "small"]
NOUNS = ["car", "boat", "building", "tree", "pool", "road", "ship", "plane", "tank", "court", "bridge", "field"]
LINKS = ["near", "next to", "beside", "north of", "south of", "around", "across from"]
SYNONYMS = {"car": "vehicle", "boat": "vessel", "building": "house", "tree": "bush", "road": "street",
            "ship": "boat", "plane": "aircraft", "court": "pitch", "field": "meadow", "tank": "cistern",
            "pool": "pond", "bridge": "overpass"}


def _shape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    ch, cw = int(rng.integers(4, max(5, h // 4))), int(rng.integers(4, max(5, w // 4)))
    y0, x0 = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
    if rng.random() < 0.5:
        m[y0:y0 + ch, x0:x0 + cw] = 1
    else:
        yy, xx = np.ogrid[:h, :w]
        cy, cx = y0 + ch / 2, x0 + cw / 2
        m[((yy - cy) / (ch / 2)) ** 2 + ((xx - cx) / (cw / 2)) ** 2 <= 1] = 1
    return m


def _perturb(rng: np.random.Generator, m: np.ndarray) -> np.ndarray:
    h = m.shape[0]
    dy, dx = (int(v) for v in rng.integers(-(h // 64), h // 64 + 1, size=2))
    out = np.roll(np.roll(m, dy, axis=0), dx, axis=1)
    if rng.random() < 0.3:  # grow or shrink by a band
        k = int(rng.integers(1, 4))
        grown = out.copy()
        for sy, sx in ((k, 0), (-k, 0), (0, k), (0, -k)):
            grown |= np.roll(np.roll(out, sy, axis=0), sx, axis=1)
        out = grown
    return out


def _phrase(rng: np.random.Generator, multi: bool) -> str:
    count = rng.choice(COUNTS[2:]) if multi else rng.choice(COUNTS[:2])
    noun = str(rng.choice(NOUNS)) + ("s" if multi else "")
    return f"{count} {rng.choice(COLORS)} {noun}"


def _caption(phrases: list[str], rng: np.random.Generator) -> tuple[str, list[tuple[int, int]]]:
    parts, spans, pos = [], [], 0
    start = "The image shows "
    parts.append(start)
    pos += len(start)
    for i, p in enumerate(phrases):
        spans.append((pos, pos + len(p)))
        parts.append(p)
        pos += len(p)
        sep = f" {rng.choice(LINKS)} " if i < len(phrases) - 1 else "."
        parts.append(sep)
        pos += len(sep)
    return "".join(parts), spans


def make_pair(n_images: int, phrases_per_image: int = 5, size: int = 256, seed: int = 0,
              missing_frac: float = 0.01) -> tuple[list[GCGRecord], list[GCGRecord]]:
    """``(gt_records, pred_records)`` for ``n_images`` images of ``size`` x ``size`` pixels."""
    rng = np.random.default_rng(seed)
    gts, preds = [], []
    for n in range(n_images):
        iid = f"img{n:05d}"
        k = max(1, phrases_per_image + int(rng.integers(-1, 2)))
        texts, insts = [], []
        for _ in range(k):
            multi = rng.random() < 0.33
            texts.append(_phrase(rng, multi))
            insts.append([_shape(rng, size, size) for _ in range(int(rng.integers(2, 4)) if multi else 1)])
        caption, spans = _caption(texts, rng)
        gts.append(GCGRecord(image=f"{iid}.png", height=size, width=size, caption=caption, id=iid,
                             phrases=[Phrase(t, s, [encode(m) for m in ms]) for t, s, ms in zip(texts, spans, insts)]))
        if rng.random() < missing_frac:
            continue
        p_texts, p_masks = [], []
        for t, ms in zip(texts, insts):
            if rng.random() < 0.15:
                continue  # missed phrase
            union = np.zeros((size, size), dtype=np.uint8)
            for m in ms:
                union |= m
            words = t.split()
            if rng.random() < 0.3:
                words[-1] = SYNONYMS.get(words[-1].rstrip("s"), words[-1])
            if rng.random() < 0.1:
                words = [str(rng.choice(COLORS)), str(rng.choice(NOUNS))]
            p_texts.append(" ".join(words))
            p_masks.append(_perturb(rng, union))
        if rng.random() < 0.3:  # an extra, spurious phrase
            p_texts.append(_phrase(rng, False))
            p_masks.append(_shape(rng, size, size))
        order = rng.permutation(len(p_texts))
        p_texts = [p_texts[i] for i in order]
        p_masks = [p_masks[i] for i in order]
        p_caption, p_spans = _caption(p_texts, rng) if p_texts else ("The image shows nothing.", [])
        preds.append(GCGRecord(image=f"{iid}.png", height=size, width=size, caption=p_caption, id=iid,
                               phrases=[Phrase(t, s, [encode(m)]) for t, s, m in zip(p_texts, p_spans, p_masks)],
                               meta={"scores": [1.0] * len(p_texts)}))
    return gts, preds
