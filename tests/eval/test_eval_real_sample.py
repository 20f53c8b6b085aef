"""The evaluator on the real GeoPixelD sample annotation (800x800, polygons) from /work/shared/reference."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from clvnet.data.record import GCGRecord, Phrase
from clvnet.data.rle import decode, encode, union
from clvnet.eval import evaluate
from clvnet.eval.inputs import gt_from_records

SAMPLE = Path("/work/shared/reference/geopixeld/P0224_0_800_0_800.json")


@pytest.fixture(scope="module")
def gt_record() -> GCGRecord:
    if not SAMPLE.is_file():
        pytest.skip("reference sample not available")
    loader = pytest.importorskip("clvnet.data.loaders.geopixeld")
    return loader.load_annotation(SAMPLE)  # type: ignore[no-any-return]


def _as_prediction(rec: GCGRecord, shift: int = 0) -> GCGRecord:
    pred = copy.deepcopy(rec)
    pred.phrases = [Phrase(p.text, p.span, [encode(np.roll(union(p.masks, rec.height, rec.width), shift, axis=1))])
                    for p in rec.phrases]
    return pred


def test_perfect_prediction_scores_100(gt_record: GCGRecord, tiny_encoder_dir: Path) -> None:
    m = evaluate([gt_record], [_as_prediction(gt_record)], text_encoder=tiny_encoder_dir, use_java=False)
    assert m["AP50"] == pytest.approx(100.0) and m["mIoU"] == pytest.approx(100.0)
    assert m["Recall"] == pytest.approx(100.0)
    assert m["counts"]["gt_phrases"] == len(gt_record.phrases) > 1


def test_shifted_masks_lower_miou_by_the_exact_overlap(gt_record: GCGRecord, tiny_encoder_dir: Path) -> None:
    pred = _as_prediction(gt_record, shift=15)
    m = evaluate([gt_record], [pred], text_encoder=tiny_encoder_dir, use_java=False)
    ious = []
    for g, p in zip(gt_record.phrases, pred.phrases):
        a, b = union(g.masks, 800, 800).astype(bool), decode(p.masks[0]).astype(bool)
        ious.append((a & b).sum() / (a | b).sum())
    assert 0 < m["mIoU"] < 100
    # the courts do not overlap each other, so greedy pairs are the diagonal
    assert m["mIoU"] == pytest.approx(100 * float(np.mean(ious)))


def test_gt_masks_are_the_dataset_authors_fill(gt_record: GCGRecord) -> None:
    """The evaluator's GT mask of each phrase is GeoPixel's rasterisation (cv2.fillPoly, contour included)."""
    (gt,) = gt_from_records([gt_record])
    polygons = json.loads(SAMPLE.read_text())["polygons"]
    assert len(gt.masks) == len(polygons) == 4
    for m, group in zip(gt.masks, polygons):
        ref = np.zeros((800, 800), np.uint8)
        for poly in group:
            cv2.fillPoly(ref, [np.array(poly, dtype=np.int32)], 1)
        assert np.array_equal(mask_utils.decode(m), ref)
