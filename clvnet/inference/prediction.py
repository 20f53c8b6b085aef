"""The result of one box: :class:`GCGPrediction`, and how its caption splits into a global and a local part.

Caption split (documented definition): the caption is cut into sentences (``.``, ``!`` or ``?`` followed
by white space, never inside a phrase span). The *global part* is the leading run of sentences that
mention no grounded phrase, at most :data:`MAX_GLOBAL_SENTENCES` (2) of them; when the very first sentence
already mentions a phrase, the global part is that first sentence alone (CLV-Net always opens with the
scene summary). The *local part* is the rest: the detailed descriptions centred on the box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clvnet.data.record import GCGRecord, Phrase
from clvnet.inference.masks import upsample_window

MAX_GLOBAL_SENTENCES = 2
_SENT_END = re.compile(r"[.!?](?=\s+|$)")


def sentence_bounds(caption: str, phrases: list[Phrase]) -> list[tuple[int, int]]:
    """[start, end) of each sentence of ``caption``; a sentence never ends inside a phrase span."""
    inside = [(p.span[0], p.span[1]) for p in phrases]
    bounds, start = [], 0
    for m in _SENT_END.finditer(caption):
        end = m.end()
        if any(s < end < e for s, e in inside):
            continue
        if caption[start:end].strip():
            bounds.append((start, end))
        start = end
    if caption[start:].strip():
        bounds.append((start, len(caption)))
    return bounds


def split_caption(caption: str, phrases: list[Phrase]) -> int:
    """Character offset where the global part ends and the local part begins (see module docstring)."""
    bounds = sentence_bounds(caption, phrases)
    if not bounds:
        return len(caption)
    n_global = 0
    for s, e in bounds[:MAX_GLOBAL_SENTENCES]:
        if any(s <= p.span[0] < e for p in phrases):
            break
        n_global += 1
    n_global = max(1, n_global)
    return bounds[n_global - 1][1]


@dataclass
class GCGPrediction:
    """Caption, grounded phrases and full-resolution masks for one box.

    Attributes:
        image: the image path (or ``"array"``), as in a :class:`~clvnet.data.record.GCGRecord`.
        height, width: full image size in pixels.
        box: the pixel box ``(x0, y0, x1, y1)`` used (clipped map boxes included).
        caption: plain caption (no tags).
        phrases: phrases with character spans and one full-resolution COCO RLE mask each.
        scores: one mask score per phrase.
        global_end: offset in ``caption`` where the global part ends (see :func:`split_caption`).
        tagged: the raw generated text with ``<p> ... </p> [SEG]`` tags.
        mask_logits: (N, m, n) low-resolution logits over the whole image (for overlays / GeoJSON).
        mask_windows: per phrase, the tight full-resolution window of its mask, or None when empty.
        timings: seconds per stage (``read``, ``encode``, ``generate``, ``masks``, ``total``) and
            ``cache_hit`` (1.0 when the image features came from the cache).
        id: the prediction id (output file stem).
        meta: extra fields copied into the record (e.g. the map box and its CRS).
    """

    image: str
    height: int
    width: int
    box: tuple[float, float, float, float]
    caption: str
    phrases: list[Phrase]
    scores: list[float]
    global_end: int
    tagged: str = ""
    mask_logits: np.ndarray | None = field(default=None, repr=False)
    mask_windows: list[tuple[int, int, int, int] | None] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def global_caption(self) -> str:
        """The concise scene summary (leading sentences, see :func:`split_caption`)."""
        return self.caption[: self.global_end].strip()

    @property
    def local_caption(self) -> str:
        """The detailed descriptions centred on the box."""
        return self.caption[self.global_end:].strip()

    @property
    def masks(self) -> list[dict[str, Any]]:
        """One full-resolution RLE per phrase."""
        return [p.masks[0] for p in self.phrases]

    def masks_at(self, height: int, width: int, valid: np.ndarray | None = None) -> list[np.ndarray]:
        """Masks resampled to ``(height, width)`` (e.g. an overlay preview), from the low-res logits."""
        if self.mask_logits is None:
            raise ValueError("this prediction carries no mask logits")
        out = []
        for logits in self.mask_logits:
            m = upsample_window(logits, height, width, (0, 0, width, height)) > 0
            out.append(m & valid if valid is not None else m)
        return out

    def to_record(self) -> GCGRecord:
        """The prediction as a :class:`GCGRecord` (design §8.1): one mask per phrase, scores in meta."""
        meta = dict(self.meta)
        meta.update({
            "scores": [float(s) for s in self.scores],
            "global_caption": self.global_caption,
            "local_caption": self.local_caption,
            "global_span": [0, int(self.global_end)],
            "tagged": self.tagged,
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
        })
        phrases = [Phrase(text=p.text, span=p.span, masks=list(p.masks)) for p in self.phrases]
        return GCGRecord(image=self.image, height=self.height, width=self.width, caption=self.caption,
                         phrases=phrases, box=self.box, meta=meta, id=self.id)

    def to_glamm(self) -> dict[str, Any]:
        """GLaMM's per-image GCG prediction format ``{image_id, caption, phrases, pred_masks}``."""
        return {"image_id": self.id, "caption": self.caption, "phrases": [p.text for p in self.phrases],
                "pred_masks": self.masks}
