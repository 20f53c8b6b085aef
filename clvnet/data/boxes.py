"""Box derivation for datasets without user boxes (GeoPixelD, GranD-f; design §4).

For each record:

1. every grounded phrase is an *object* whose extent is the tight box of its instance masks;
2. an anchor object is drawn, then up to ``max_objects - 1`` of its nearest neighbours whose centres lie
   within ``cluster_radius`` (a fraction of the image diagonal) join it (their number is drawn too);
3. the box is the chosen objects' union box, each side expanded by a random margin (a fraction of
   the box size in ``[margin_min, margin_max]``), shifted by a random jitter that never uncovers the
   chosen objects, grown to ``min_box_size`` and clipped to the image; corners are whole pixels;
4. the caption keeps its *global* sentences (the leading sentences that ground nothing, at most
   ``max_global_sentences``, and always the first sentence) plus every sentence that mentions a
   chosen phrase; phrase spans are recomputed exactly for the shortened caption.

Randomness comes from ``seed`` and the record id only, so a record gets the same box whatever the
order or subset of records being converted.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from clvnet.data import rle as rle_utils
from clvnet.data.record import DataError, GCGRecord, Phrase, validate

log = logging.getLogger(__name__)
_SENT_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class BoxDerivationConfig:
    """How boxes are derived (all fractions are of the chosen objects' box size unless stated)."""

    min_objects: int = 1
    max_objects: int = 3
    cluster_radius: float = 0.35  # fraction of the image diagonal
    margin_min: float = 0.05
    margin_max: float = 0.30
    jitter: float = 0.10
    min_box_size: int = 16  # pixels
    max_global_sentences: int = 2
    boxes_per_record: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}")
        if not 0 <= self.margin_min <= self.margin_max:
            raise ValueError(f"need 0 <= margin_min <= margin_max, got {self.margin_min}, {self.margin_max}")
        if self.boxes_per_record < 1:
            raise ValueError(f"boxes_per_record must be >= 1, got {self.boxes_per_record}")


def record_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``key`` (stable across runs and platforms)."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def phrase_extent(p: Phrase) -> tuple[float, float, float, float] | None:
    """Tight ``(x0, y0, x1, y1)`` box of all instance masks of a phrase, or None if all are empty.

    Raises:
        ValueError: a malformed RLE (:func:`clvnet.data.rle.check_rle`).
    """
    boxes = [b for b in (rle_utils.rle_box(m) for m in p.masks) if b is not None]
    if not boxes:
        return None
    a = np.asarray(boxes)
    return float(a[:, 0].min()), float(a[:, 1].min()), float(a[:, 2].max()), float(a[:, 3].max())


def sentence_spans(caption: str, phrases: list[Phrase]) -> list[tuple[int, int]]:
    """Sentence ``(start, end)`` offsets; never splits inside a phrase; whitespace between is excluded."""
    inside = [(p.span[0], p.span[1]) for p in phrases]
    spans, start = [], 0
    for m in _SENT_END.finditer(caption):
        if any(s < m.start() < e for s, e in inside):
            continue
        spans.append((start, m.start()))
        start = m.end()
    if start < len(caption):
        spans.append((start, len(caption.rstrip())))
    return [(s, e) for s, e in spans if e > s]


def _choose(extents: list[tuple[float, float, float, float]], cfg: BoxDerivationConfig, diag: float,
            rng: np.random.Generator) -> list[int]:
    centres = np.asarray([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in extents])
    anchor = int(rng.integers(len(extents)))
    k = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    dist = np.linalg.norm(centres - centres[anchor], axis=1)
    order = [int(i) for i in np.argsort(dist, kind="stable") if i != anchor and dist[i] <= cfg.cluster_radius * diag]
    return sorted([anchor, *order[: k - 1]])


def _box(ext: tuple[float, float, float, float], cfg: BoxDerivationConfig, width: int, height: int,
         rng: np.random.Generator) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = ext
    bw, bh = x1 - x0, y1 - y0
    ml, mr = rng.uniform(cfg.margin_min, cfg.margin_max, 2) * bw
    mt, mb = rng.uniform(cfg.margin_min, cfg.margin_max, 2) * bh
    dx = float(np.clip(rng.uniform(-cfg.jitter, cfg.jitter) * bw, -mr, ml))
    dy = float(np.clip(rng.uniform(-cfg.jitter, cfg.jitter) * bh, -mb, mt))
    bx0, by0, bx1, by1 = x0 - ml + dx, y0 - mt + dy, x1 + mr + dx, y1 + mb + dy
    for lo, hi, size, limit in ((0, 2, cfg.min_box_size, width), (1, 3, cfg.min_box_size, height)):
        b = [bx0, by0, bx1, by1]
        grow = max(0.0, min(size, limit) - (b[hi] - b[lo])) / 2
        b[lo], b[hi] = b[lo] - grow, b[hi] + grow
        bx0, by0, bx1, by1 = b
    out = (float(max(0, np.floor(bx0))), float(max(0, np.floor(by0))),
           float(min(width, np.ceil(bx1))), float(min(height, np.ceil(by1))))
    if out[2] <= out[0] or out[3] <= out[1]:  # object hugging the border: keep at least one pixel
        out = (min(out[0], width - 1.0), min(out[1], height - 1.0), max(out[2], out[0] + 1), max(out[3], out[1] + 1))
    return out


def derive_box(rec: GCGRecord, cfg: BoxDerivationConfig, seed: int, index: int = 0) -> GCGRecord:
    """Return a copy of ``rec`` with a derived box and a caption centred on it.

    Args:
        rec: a record with grounded phrases (its ``box`` is ignored).
        cfg: derivation settings.
        seed: global seed; the draw also depends on ``rec.id`` and ``index``.
        index: which of several boxes for the same record (changes the draw and the id suffix).

    Returns:
        A new record; ``meta["derived_box"]`` holds the seed, the chosen phrase texts and the original
        caption. A record with no grounded phrase gets the whole image as its box.

    Raises:
        DataError: a malformed RLE in ``rec``, or the result does not validate (should not happen for valid
            input).
    """
    rng = record_rng(seed, f"{rec.id}#{index}")
    new_id = rec.id if cfg.boxes_per_record == 1 else f"{rec.id}#b{index}"
    extents = []
    for i, p in enumerate(rec.phrases):
        try:
            extents.append(phrase_extent(p))
        except ValueError as exc:
            raise DataError(f"not a valid COCO RLE: {exc}", record=rec.id, field=f"phrases[{i}].masks") from exc
    objects = [i for i, e in enumerate(extents) if e is not None]
    meta: dict[str, Any] = {**rec.meta, "derived_box": {"seed": seed, "index": index}}
    if not objects:
        log.debug("%s: no grounded object, the box is the whole image", rec.id)
        meta["derived_box"]["chosen"] = []
        return replace(rec, id=new_id, box=(0.0, 0.0, float(rec.width), float(rec.height)), meta=meta)
    diag = float(np.hypot(rec.width, rec.height))
    pick = _choose([extents[i] for i in objects], cfg, diag, rng)  # type: ignore[misc]
    chosen = [objects[i] for i in pick]
    ext = np.asarray([extents[i] for i in chosen])
    union = (float(ext[:, 0].min()), float(ext[:, 1].min()), float(ext[:, 2].max()), float(ext[:, 3].max()))
    box = _box(union, cfg, rec.width, rec.height, rng)
    caption, phrases = keep_sentences(rec, set(chosen), cfg.max_global_sentences)
    meta["derived_box"].update(chosen=[rec.phrases[i].text for i in chosen], original_caption=rec.caption)
    out = replace(rec, id=new_id, box=box, caption=caption, phrases=phrases, meta=meta)
    try:
        validate(out, check_masks=False)
    except DataError as exc:
        raise DataError(f"box derivation produced an invalid record: {exc}", record=rec.id) from exc
    return out


def keep_sentences(rec: GCGRecord, chosen: set[int], max_global: int) -> tuple[str, list[Phrase]]:
    """The caption reduced to its global sentences plus those mentioning ``chosen`` phrase indices.

    Global sentences are the leading sentences that ground no phrase (at most ``max_global``); the first
    sentence is always kept. Kept sentences are joined by their original separator when adjacent, else
    by one space. Every phrase inside a kept sentence stays (with its masks), its span shifted exactly.
    """
    sents = sentence_spans(rec.caption, rec.phrases)
    if not sents:
        return rec.caption, list(rec.phrases)
    owner = [[i for i, p in enumerate(rec.phrases) if s <= p.span[0] < e] for s, e in sents]
    keep = {0}
    j = 0
    while j < len(sents) and not owner[j] and j < max_global:
        keep.add(j)
        j += 1
    keep |= {j for j, ids in enumerate(owner) if chosen & set(ids)}
    parts: list[str] = []
    phrases: list[Phrase] = []
    length, prev = 0, None
    for j in sorted(keep):
        s, e = sents[j]
        if prev is not None:
            sep = rec.caption[sents[prev][1]:s] if prev == j - 1 else " "
            parts.append(sep)
            length += len(sep)
        shift = length - s
        for i in owner[j]:
            p = rec.phrases[i]
            phrases.append(Phrase(text=p.text, span=(p.span[0] + shift, p.span[1] + shift), masks=p.masks))
        parts.append(rec.caption[s:e])
        length += e - s
        prev = j
    return "".join(parts), phrases


def derive_boxes(records: list[GCGRecord], cfg: BoxDerivationConfig, seed: int = 0) -> list[GCGRecord]:
    """Apply :func:`derive_box` to every record (``cfg.boxes_per_record`` boxes each)."""
    out = []
    whole = 0
    for rec in records:
        for k in range(cfg.boxes_per_record):
            r = derive_box(rec, cfg, seed, k)
            whole += not r.meta["derived_box"].get("chosen")
            out.append(r)
    if whole:
        log.warning("%d record(s) ground no object; their box is the whole image", whole)
    return out
