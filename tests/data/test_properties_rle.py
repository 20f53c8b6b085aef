"""Property tests (hypothesis) for the RLE helpers: encode/decode round trips, the counts decoder against
pycocotools' own encoder, unions against numpy, and arbitrary counts never reaching pycocotools unchecked."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils
from testkit import rle_string

from clvnet.data import rle
from clvnet.eval.inputs import to_coco_rle, union_rle

FAST = settings(max_examples=150, deadline=1000)


@st.composite
def masks(draw: st.DrawFn, max_side: int = 40) -> np.ndarray:
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kind = draw(st.sampled_from(["random", "blocks"]))
    if kind == "random":
        return draw(arrays(np.uint8, (h, w), elements=st.integers(0, 1)))
    m = np.zeros((h, w), np.uint8)
    for _ in range(draw(st.integers(0, 4))):
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        m[y0:draw(st.integers(y0, h)), x0:draw(st.integers(x0, w))] = 1
    return m


def _runs(mask: np.ndarray) -> list[int]:
    """Column-major run lengths, starting with a (possibly empty) run of zeros, as COCO counts them."""
    flat = mask.reshape(-1, order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat.size and flat[0] == 1 else runs


@FAST
@given(masks())
def test_encode_decode_round_trip_and_counts(mask: np.ndarray) -> None:
    r = rle.encode(mask)
    assert rle.check_rle(r) == mask.shape
    assert np.array_equal(rle.decode(r), mask)
    assert rle.area(r) == int(mask.sum())
    assert rle.counts_from_string(r["counts"]).tolist() == _runs(mask)
    assert rle_string(_runs(mask)) == r["counts"]
    assert np.array_equal(rle.decode({"size": list(mask.shape), "counts": _runs(mask)}), mask)
    box = rle.rle_box(r)
    assert box == (None if not mask.any() else tuple(float(v) for v in rle.bbox(mask)))  # type: ignore[arg-type]


@settings(max_examples=60, deadline=2000)
@given(st.integers(20, 80), st.integers(20, 80), st.data())
def test_long_counts_strings_decode_like_short_ones(h: int, w: int, data: st.DataObject) -> None:
    """Strings of 512+ characters take the numpy path; it must agree with pycocotools' encoder."""
    mask = data.draw(arrays(np.uint8, (h, w), elements=st.integers(0, 1)))
    counts = rle.encode(mask)["counts"]
    assert rle.counts_from_string(counts).tolist() == _runs(mask)


@FAST
@given(st.data())
def test_union_matches_numpy(data: st.DataObject) -> None:
    h, w = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 30))
    parts = data.draw(st.lists(arrays(np.uint8, (h, w), elements=st.integers(0, 1)), min_size=1, max_size=5))
    want = np.zeros((h, w), np.uint8)
    for m in parts:
        want |= m
    rles = [rle.encode(m) for m in parts]
    assert np.array_equal(rle.union(rles, h, w), want)
    coco = [to_coco_rle(r, h, w) for r in rles]
    assert np.array_equal(mask_utils.decode(union_rle(coco, h, w)), want)


@st.composite
def counts(draw: st.DrawFn, h: int, w: int) -> object:
    """Counts of every kind: valid and invalid strings, run lists, runs that cover the mask or not."""
    runs = draw(st.lists(st.integers(-3, h * w + 3), max_size=10))
    if draw(st.booleans()) and h * w:  # often make the runs cover the mask exactly, as pycocotools writes them
        cuts = sorted(draw(st.sets(st.integers(1, max(1, h * w - 1)), max_size=8)) - {h * w})
        runs = [0] * draw(st.integers(0, 1)) + np.diff([0, *cuts, h * w]).tolist()
    return draw(st.one_of(
        st.just(rle_string(runs)),
        st.just(runs),
        st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=111), max_size=30),
        st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=300), max_size=30),
        st.binary(max_size=20),
    ))


@settings(max_examples=300, deadline=500)
@given(st.data())
def test_arbitrary_counts_are_checked_before_pycocotools(data: st.DataObject) -> None:
    """Whatever the counts, check_rle either accepts them (and then pycocotools decodes, measures and merges
    them exactly, with no hang) or raises ValueError; decode/area refuse what check_rle refuses."""
    h, w = data.draw(st.integers(0, 12)), data.draw(st.integers(0, 12))
    r = {"size": [h, w], "counts": data.draw(counts(h, w))}
    try:
        rle.check_rle(r)
    except ValueError:
        event("refused")
        with pytest.raises(ValueError):
            rle.decode(r)
        with pytest.raises(ValueError):
            rle.area(r)
        return
    event("accepted")
    c = r["counts"]
    runs = list(c) if isinstance(c, list) else rle.counts_from_string(c).tolist()  # type: ignore[arg-type]
    assert all(v >= 0 for v in runs) and sum(runs) == h * w
    m = rle.decode(r)
    assert m.shape == (h, w) and int(m.sum()) == sum(runs[1::2]) == rle.area(r)
    if h * w:
        merged = union_rle([to_coco_rle(r, h, w), to_coco_rle(rle.encode(1 - m), h, w)], h, w)
        assert int(mask_utils.area(merged)) == h * w
