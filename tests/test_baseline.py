"""The trivial baseline: most common training caption, every phrase grounded to the box."""

from __future__ import annotations

import numpy as np

from clvnet.baseline import box_mask, most_common_caption, predict_baseline
from clvnet.data import rle
from clvnet.data.record import GCGRecord, Phrase


def _rec(rid: str, caption: str, box: tuple[float, float, float, float] | None = (2, 1, 6, 3)) -> GCGRecord:
    m = rle.encode(np.ones((4, 8), np.uint8))
    return GCGRecord(image=f"{rid}.png", height=4, width=8, caption=caption, box=box, id=rid,
                     phrases=[Phrase(caption.split()[0], (0, len(caption.split()[0])), [m])])


def test_most_common_caption_first_wins_ties() -> None:
    recs = [_rec("a", "cars here"), _rec("b", "boats there"), _rec("c", "boats there"), _rec("d", "cars here")]
    assert most_common_caption(recs).id == "a"
    assert most_common_caption([*recs, _rec("e", "boats there")]).id == "b"


def test_box_mask_pixels() -> None:
    m = box_mask(_rec("a", "x y"))
    assert m.sum() == 4 * 2 and m[1:3, 2:6].all()
    assert box_mask(_rec("a", "x y", box=None)).all()


def test_predictions_keep_ids_and_use_box() -> None:
    train = [_rec("a", "cars here")]
    test = [_rec("t1", "boats there"), _rec("t2", "trees", box=(0, 0, 8, 4))]
    preds = predict_baseline(train, test)
    assert [p.id for p in preds] == ["t1", "t2"]
    assert preds[0].caption == "cars here" and preds[0].phrases[0].text == "cars"
    assert rle.area(preds[1].phrases[0].masks[0]) == 32
    assert preds[0].meta["scores"] == [1.0]
