"""Twin-confusion rate: hand-computed cases, tie-breaks, bad input, and SynthRS-hard end to end."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from evalhelpers import box_mask, record

from clvnet.data.record import DataError, GCGRecord, Phrase, read_jsonl
from clvnet.data.rle import decode, encode
from clvnet.eval.twins import class_pattern, twin_confusion


def _gt(rid: str, phrases: list[tuple[str, str, list[np.ndarray]]]) -> GCGRecord:
    rec = record(rid, [(t, m) for t, _, m in phrases])
    rec.meta["classes"] = [c for _, c, _ in phrases]
    return rec


def _m(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    return box_mask(10, 10, y0, y1, x0, x1)


def _pred(rid: str, phrases: list[tuple[str, np.ndarray]]) -> GCGRecord:
    return record(rid, [(t, [m]) for t, m in phrases])


GT = [
    _gt("a", [("a car", "car", [_m(0, 2, 0, 4)]),                            # 8 px
              ("two boats", "boat", [_m(4, 6, 0, 2), _m(4, 6, 4, 6)]),      # union 8 px
              ("a house", "house", [_m(8, 10, 6, 10)])]),
    _gt("b", [("a storage tank", "storage tank", [_m(0, 3, 0, 3)]),
              ("a roundabout", "roundabout", [_m(5, 8, 5, 8)])]),
    _gt("c", [("a car", "car", [_m(0, 2, 0, 2)])]),                          # no prediction
]
UNION_BOATS = _m(4, 6, 0, 2) | _m(4, 6, 4, 6)
PRED = [
    _pred("a", [("a white car", _m(0, 2, 0, 4)),        # IoU 1 with the car: correct
                ("two cars", UNION_BOATS),              # covers the boats, names cars: confused
                ("a house", _m(8, 10, 6, 10)),          # not a twin class: not counted
                ("a boat", _m(0, 2, 0, 2)),             # IoU 4/8 = 0.5 with the car: confused
                ("a car and a boat", UNION_BOATS),      # both
                ("a roundabout", _m(0, 2, 0, 4)),       # names neither car nor boat
                ("a cart", _m(0, 2, 0, 4)),             # "cart" is not "car": neither
                ("a car", _m(0, 2, 0, 3)),              # IoU 6/8: correct
                ("a boat", _m(0, 1, 0, 1))]),           # IoU 1/8 < 0.5: unmatched
    _pred("b", [("two Storage  Tanks", _m(0, 3, 0, 3)),  # plural, case and spacing: correct
                ("a storage tank", _m(5, 8, 5, 8))]),    # covers the roundabout: confused
]


def test_hand_computed_counts_and_rates() -> None:
    r = twin_confusion(GT, PRED)
    assert {k: r[k] for k in ("correct", "confused", "both", "neither")} == \
        {"correct": 3, "confused": 3, "both": 1, "neither": 2}
    assert r["rate"] == pytest.approx(3 / 6)
    assert (r["matched"], r["phrases"], r["images"], r["missing"]) == (9, 11, 3, 1)
    pc = r["per_class"]
    assert (pc["car"]["correct"], pc["car"]["confused"], pc["car"]["neither"]) == (2, 1, 2)
    assert pc["car"]["rate"] == pytest.approx(1 / 3)
    assert (pc["boat"]["confused"], pc["boat"]["both"], pc["boat"]["rate"]) == (1, 1, 1.0)
    assert pc["storage tank"]["rate"] == 0.0 and pc["roundabout"]["rate"] == 1.0
    assert r["per_pair"]["car/boat"]["rate"] == pytest.approx(2 / 4)
    assert r["per_pair"]["storage tank/roundabout"]["rate"] == pytest.approx(1 / 2)


def test_threshold_and_no_qualifying_phrase() -> None:
    strict = twin_confusion(GT, PRED, iou_threshold=0.8)  # drops the two matches at IoU 0.5 and 0.75
    assert (strict["correct"], strict["confused"]) == (2, 2)
    none = twin_confusion(GT, [_pred("a", [("a house", _m(8, 10, 6, 10))])])
    assert none["rate"] is None and none["matched"] == 0 and none["per_class"]["car"]["rate"] is None


def test_ties_go_to_the_lower_gt_index() -> None:
    gt = [_gt("t", [("a car", "car", [_m(0, 1, 0, 4)]), ("a boat", "boat", [_m(1, 2, 0, 4)])])]
    r = twin_confusion(gt, [_pred("t", [("a boat", _m(0, 2, 0, 4))])])  # IoU 0.5 with both
    assert (r["confused"], r["per_class"]["car"]["confused"]) == (1, 1)


def test_class_pattern_whole_words() -> None:
    p = class_pattern("storage tank")
    assert p.search("three white storage tanks") and p.search("A Storage\ntank")
    assert not p.search("a storage tanker") and not p.search("a tank")
    assert class_pattern("car").search("Cars.") and not class_pattern("car").search("carpark")


def test_bad_input_raises_naming_the_record() -> None:
    no_classes = record("x", [("a car", [_m(0, 2, 0, 2)])])
    with pytest.raises(DataError, match=r"record x, field 'meta\.classes'"):
        twin_confusion([no_classes], [])
    with pytest.raises(DataError, match="not in the GT"):
        twin_confusion(GT, [_pred("zzz", [("a car", _m(0, 2, 0, 2))])])
    two = GCGRecord(image="a.png", height=10, width=10, caption="a car", id="a",
                    phrases=[Phrase("a car", (0, 5), [encode(_m(0, 1, 0, 1)), encode(_m(1, 2, 0, 1))])])
    with pytest.raises(DataError, match="exactly one mask"):
        twin_confusion(GT, [two])
    with pytest.raises(ValueError, match="iou_threshold"):
        twin_confusion(GT, PRED, iou_threshold=0.0)
    with pytest.raises(ValueError, match="disjoint"):
        twin_confusion(GT, PRED, pairs=[("car", "boat"), ("boat", "ship")])


SWAP = {"car": "boat", "boat": "car", "storage tank": "roundabout", "roundabout": "storage tank"}


def _as_prediction(rec: GCGRecord, swap: bool = False) -> GCGRecord:
    """A perfect prediction (one union mask per phrase), optionally naming every twin class's twin."""
    phrases = []
    for p in rec.phrases:
        union = np.zeros((rec.height, rec.width), dtype=np.uint8)
        for m in p.masks:
            union |= decode(m)
        text = re.sub(r"\b(storage tank|roundabout|car|boat)", lambda g: SWAP[g.group(1)], p.text) if swap else p.text
        phrases.append(Phrase(text, p.span, [encode(union)]))
    return GCGRecord(image=rec.image, height=rec.height, width=rec.width, caption=rec.caption, phrases=phrases,
                     id=rec.id)


def test_on_synthrs_hard_perfect_and_swapped_predictions(tmp_path: Path) -> None:
    from clvnet.data.synth import generate_split

    gt = read_jsonl(generate_split(tmp_path, 12, seed=0, split="test-hard", twins=True))
    n_twin = sum(c in ("car", "boat", "storage tank", "roundabout") for r in gt for c in r.meta["classes"])
    perfect = twin_confusion(gt, [_as_prediction(r) for r in gt])
    assert perfect["rate"] == 0.0 and perfect["correct"] == perfect["matched"] == n_twin >= 24
    swapped = twin_confusion(gt, [_as_prediction(r, swap=True) for r in gt])
    assert swapped["rate"] == 1.0 and swapped["confused"] == n_twin
