"""Caption split into global and local parts, and the prediction record."""

from __future__ import annotations

import numpy as np

from clvnet.data import rle
from clvnet.data.record import from_tagged, validate
from clvnet.inference.prediction import GCGPrediction, split_caption

GEOPIXEL = ("The image is an aerial view of a tennis court complex surrounded by dense greenery. "
            "The tennis courts are empty. The <p> tennis court-1 </p> [SEG] at right is a hard court. "
            "This could be a recreational facility.")


def test_split_before_first_phrase_sentence() -> None:
    caption, phrases = from_tagged(GEOPIXEL)
    end = split_caption(caption, phrases)
    assert caption[:end] == ("The image is an aerial view of a tennis court complex surrounded by dense greenery. "
                             "The tennis courts are empty.")


def test_split_first_sentence_with_phrase_and_cap() -> None:
    caption, phrases = from_tagged("A view of <p> St. Mary church </p> [SEG] by a road. The <p> car </p> [SEG] is red.")
    assert caption[: split_caption(caption, phrases)] == "A view of St. Mary church by a road."  # not inside a span
    caption, phrases = from_tagged("One. Two. Three. Four <p> x </p> [SEG].")
    assert caption[: split_caption(caption, phrases)] == "One. Two."  # at most two sentences
    assert split_caption("no full stop", []) == len("no full stop")
    assert split_caption("", []) == 0


def test_to_record_is_a_valid_prediction_record() -> None:
    caption, phrases = from_tagged(GEOPIXEL)
    mask = np.zeros((10, 12), dtype=np.uint8)
    mask[2:5, 3:7] = 1
    for p in phrases:
        p.masks = [rle.encode(mask)]
    pred = GCGPrediction(image="x.png", height=10, width=12, box=(1, 1, 8, 8), caption=caption, phrases=phrases,
                         scores=[0.7], global_end=split_caption(caption, phrases), tagged=GEOPIXEL, id="x_box0",
                         timings={"total": 0.5})
    rec = pred.to_record()
    validate(rec)
    assert rec.id == "x_box0" and rec.meta["scores"] == [0.7]
    assert rec.meta["global_caption"] + " " + rec.meta["local_caption"] == caption
    assert pred.to_glamm() == {"image_id": "x_box0", "caption": caption, "phrases": ["tennis court-1"],
                               "pred_masks": [rle.encode(mask)]}
