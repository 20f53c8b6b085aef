"""Property tests (hypothesis) for records: the tagged-text <-> record round trip, parsing arbitrary text,
the JSON round trip, and the box derivation on random records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clvnet.data import rle
from clvnet.data.boxes import BoxDerivationConfig, derive_box, phrase_extent
from clvnet.data.record import DataError, GCGRecord, Phrase, from_tagged, to_tagged, validate

FAST = settings(max_examples=150, deadline=1000)
WORD = st.text(alphabet=st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=8)
SEP = st.sampled_from([" ", ", ", " - ", ". ", "! ", "\n", ": "])


@st.composite
def captions(draw: st.DrawFn) -> tuple[str, list[Phrase]]:
    """A caption and non-overlapping phrases whose text is trimmed, non-empty and holds no tag."""
    parts: list[str] = []
    phrases: list[Phrase] = []
    pos = 0
    for _ in range(draw(st.integers(0, 6))):
        gap = draw(st.lists(WORD, max_size=3))
        lead = (" ".join(gap) + draw(SEP)) if gap else ""
        text = " ".join(draw(st.lists(WORD, min_size=1, max_size=3)))
        parts += [lead, text]
        phrases.append(Phrase(text=text, span=(pos + len(lead), pos + len(lead) + len(text))))
        pos += len(lead) + len(text)
        tail = draw(st.sampled_from(["", " ", ", ", ". "]))
        parts.append(tail)
        pos += len(tail)
    caption = "".join(parts)
    if any(t in caption for t in ("<p>", "</p>", "[SEG]")):  # a word drawn as a tag: not a canonical caption
        caption, phrases = "plain", []
    return caption, phrases


@FAST
@given(captions())
def test_tagged_round_trip(cap: tuple[str, list[Phrase]]) -> None:
    caption, phrases = cap
    tagged = to_tagged(caption, phrases)
    assert tagged.count("[SEG]") == len(phrases)
    assert from_tagged(tagged) == (caption, phrases)


TAGGY = st.lists(st.sampled_from(["<p>", "</p>", "[SEG]", " ", "a", "b c", "\n", "<", "p", ">", "é"]),
                 max_size=30).map("".join)
TAGS = ("<p>", "</p>", "[SEG]")


@FAST
@given(TAGGY | st.text(max_size=60))
def test_from_tagged_parses_any_text_into_exact_spans(tagged: str) -> None:
    caption, phrases = from_tagged(tagged)
    last = 0
    for p in phrases:
        assert caption[p.span[0]:p.span[1]] == p.text and p.span[0] >= last
        last = p.span[1]
    if not any(t in caption for t in TAGS):  # no stray tag left: tagging it again gives the same parse
        assert from_tagged(to_tagged(caption, phrases)) == (caption, phrases)


@st.composite
def records(draw: st.DrawFn) -> GCGRecord:
    """A valid record: random size, a caption of sentences and phrases with 1-3 rectangle masks each."""
    h, w = draw(st.integers(8, 48)), draw(st.integers(8, 48))
    caption, phrases = draw(captions())
    for p in phrases:
        p.masks = []
        for _ in range(draw(st.integers(1, 3))):
            m = np.zeros((h, w), np.uint8)
            y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
            m[y0:draw(st.integers(y0, h)), x0:draw(st.integers(x0, w))] = 1
            p.masks.append(rle.encode(m))
    rid = draw(st.text(alphabet="abcxyz0123456789_-", min_size=1, max_size=8))
    return GCGRecord(image=f"{rid}.png", height=h, width=w, caption=caption, phrases=phrases, id=rid)


@FAST
@given(records())
def test_record_json_round_trip(rec: GCGRecord) -> None:
    validate(rec)
    back = GCGRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec
    validate(back)


@settings(max_examples=150, deadline=2000)
@given(records(), st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 64))
def test_derived_box_covers_the_chosen_objects_and_the_record_stays_valid(
        rec: GCGRecord, seed: int, max_objects: int, min_box: int) -> None:
    cfg = BoxDerivationConfig(max_objects=max_objects, min_box_size=min_box)
    out = derive_box(rec, cfg, seed)
    assert out == derive_box(rec, cfg, seed)  # deterministic per seed and record id
    validate(out)
    assert out.box is not None
    x0, y0, x1, y1 = out.box
    assert 0 <= x0 < x1 <= rec.width and 0 <= y0 < y1 <= rec.height
    assert all(float(v).is_integer() for v in out.box)
    chosen = out.meta["derived_box"]["chosen"]
    extents = [phrase_extent(p) for p in rec.phrases]
    if not any(e is not None for e in extents):
        assert out.box == (0.0, 0.0, float(rec.width), float(rec.height)) and chosen == []
        return
    kept = {p.text for p in out.phrases}
    assert chosen and set(chosen) <= kept
    for p, ext in zip(rec.phrases, extents):
        if p.text in chosen and ext is not None and sum(q.text == p.text for q in rec.phrases) == 1:
            ex0, ey0, ex1, ey1 = ext
            assert x0 <= ex0 and y0 <= ey0 and ex1 <= x1 and ey1 <= y1, (out.box, ext)


@FAST
@given(records(), st.sampled_from(["garbage!!", "0`", [1, 2], 7]))
def test_derivation_on_a_malformed_rle_is_a_data_error(rec: GCGRecord, counts: object) -> None:
    if not rec.phrases:
        return
    rec.phrases[-1].masks[0] = {"size": [rec.height, rec.width], "counts": counts}
    with pytest.raises(DataError, match=rf"record {rec.id}, field 'phrases\[{len(rec.phrases) - 1}\]\.masks'"):
        derive_box(rec, BoxDerivationConfig(), 0)
