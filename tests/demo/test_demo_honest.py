"""The demo's honesty and box handling, without a browser: model card, questions, colours, rotation, flags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from clvnet.data import rle
from clvnet.demo.render import (
    MIN_CONTRAST,
    TEXT_RGB,
    caption_html,
    card_banner,
    contrast_ratio,
    legend_html,
    readme_section,
    tint,
)
from clvnet.demo.service import (
    BOX_COLORS,
    DemoInputError,
    DemoService,
    assign_box_colors,
    box_color,
    color_note,
    phrase_flags,
    unrotate_box,
)
from clvnet.models.card import ImageStats, ModelCard
from clvnet.viz import phrase_colors

SYNTH_CARD = ModelCard(data_name="synthrs", data_version="1.1", steps=1600, samples_seen=12800)


def test_phrase_text_contrast_is_at_least_4_5_for_every_palette_colour() -> None:
    for c in phrase_colors(40):
        assert contrast_ratio(TEXT_RGB, tint(c)) >= MIN_CONTRAST, c
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio((119, 119, 119), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)


def test_flagged_phrase_is_struck_in_caption_and_legend_with_a_tooltip() -> None:
    from clvnet.data.record import Phrase

    caption = "Two cars park beside two trees."
    phrases = [Phrase("Two cars", (0, 8)), Phrase("two trees", (21, 30))]
    colors = phrase_colors(2)
    flags = [None, "no mask: the model found no pixels for this phrase"]
    for out in (caption_html(caption, phrases, colors, flags), legend_html(phrases, colors, flags)):
        marked = re.findall(r'<span class="clv-phrase clv-flagged" data-phrase="(\d)" title="([^"]+)"', out)
        assert marked == [("1", flags[1])]
        assert out.count('class="clv-phrase"') == 1  # the other phrase is not flagged


def test_phrase_flags_empty_and_mostly_outside_masks() -> None:
    h = w = 40
    full = np.zeros((h, w), np.uint8)
    full[:20, :20] = 1                                            # a quarter of the image
    small = np.zeros((h, w), np.uint8)
    small[:2, :2] = 1                                             # 4 px kept of a predicted quarter

    class _P:
        def __init__(self, m: np.ndarray) -> None:
            self.masks = [rle.encode(np.asfortranarray(m))]

    class _Pred:
        phrases = [_P(full), _P(np.zeros((h, w), np.uint8)), _P(small)]
        mask_logits = np.stack([np.where(full[::4, ::4] > 0, 5.0, -5.0)] * 3)  # the model predicted a quarter
    flags = phrase_flags(_Pred(), h, w)
    assert flags[0] is None and flags[1] is not None and flags[1].startswith("no mask")
    assert flags[2] is not None and flags[2].startswith("mostly outside the image")


@pytest.mark.parametrize("orientation", [0, 1, 2, 3])
def test_unrotate_box_inverts_the_annotators_quarter_turns(orientation: int) -> None:
    w, h = 300, 200
    img = np.zeros((h, w), np.uint8)
    img[40:90, 30:130] = 1                                       # the box's pixels in the upright image
    view = np.rot90(img, k=-orientation)                          # the annotator turns clockwise
    ys, xs = np.nonzero(view)
    drawn = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    assert unrotate_box(drawn, orientation, w, h) == (30.0, 40.0, 130.0, 90.0)


def test_box_colours_are_distinct_and_stay_with_their_box() -> None:
    fresh = assign_box_colors([(255, 99, 71), (92, 172, 238), (255, 99, 71)])  # the annotator's, one repeated
    assert fresh == [BOX_COLORS[0], BOX_COLORS[1], BOX_COLORS[2]]
    # box 1 deleted: the others keep theirs; a new box takes the first free colour
    assert assign_box_colors([BOX_COLORS[1], BOX_COLORS[2], (118, 238, 118)]) == [BOX_COLORS[1], BOX_COLORS[2],
                                                                                   BOX_COLORS[0]]
    assert len({box_color(k) for k in range(30)}) == 30


def test_question_is_refused_unless_the_model_was_trained_with_questions(gcg_predictor: Any, tmp_path: Path) -> None:
    calls: list[Any] = []

    class _Rec:
        def __getattr__(self, name: str) -> Any:
            return getattr(gcg_predictor, name)

        def predict(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs.get("query"))
            return gcg_predictor.predict(*args, **kwargs)

    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(tmp_path / "scene.png")
    for card, why in ((None, "it has no model card"), (SYNTH_CARD, "its model card says it was trained without")):
        service = DemoService(_Rec(), workdir=tmp_path / "w", card=card)
        img = service.load(tmp_path / "scene.png")
        assert not service.accepts_questions
        with pytest.raises(DemoInputError, match=f"This model cannot answer questions: {why}"):
            service.run(img, [(0, 0, 30, 30)], "What is this building?")
        assert len(service.run(img, [(0, 0, 30, 30)], "  ")) == 1  # no question: runs
    assert calls == [None, None]  # the question never reached the model


def test_banner_for_synthetic_or_unknown_training_data_links_the_readme_section() -> None:
    for card in (None, SYNTH_CARD):
        text = card_banner(card)
        assert "GeoPixelD" in text and '(#clv-real-imagery)' in text and "The paper path (GeoPixelD" in text
    assert "trained only on SynthRS" in card_banner(SYNTH_CARD)
    assert card_banner(ModelCard(data_name="geopixeld")) == ""
    assert "clvnet data convert geopixeld" in readme_section()


def test_colour_note_when_the_upload_is_far_from_the_training_images() -> None:
    stats = ImageStats(mean=[100.0, 110.0, 90.0], std=[20.0, 20.0, 20.0], n_images=4)
    near = np.full((8, 8, 3), (105, 112, 95), np.uint8)
    far = np.full((8, 8, 3), (230, 230, 230), np.uint8)
    assert color_note(near, stats) == "" and color_note(far, None) == ""
    assert "unlike the training images" in color_note(far, stats)
