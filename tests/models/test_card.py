"""The model card (``clvnet.models.card``): round trip, atomic write, clear errors on a malformed file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clvnet.models.card import (
    CARD_FILE,
    CardError,
    ImageStats,
    ModelCard,
    add_metrics,
    card_line,
    data_identity,
    load_card,
    save_card,
)


def _card() -> ModelCard:
    return ModelCard(data_name="synthrs", data_version="1.1", data_sources={"synthrs": 12}, steps=40,
                     samples_seen=160, metrics={"synthrs-test": {"mIoU": 71.5, "AP50": 30.25}},
                     image_stats=ImageStats(mean=[100.5, 110.0, 90.0], std=[30.0, 31.0, 29.5], n_images=12),
                     model_name="tiny", created="2026-12-01T04:00:00+00:00", clvnet_version="0.1.0")


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    card = _card()
    path = save_card(tmp_path, card)
    assert path == tmp_path / CARD_FILE and json.loads(path.read_text())["schema"] == 1
    assert load_card(tmp_path) == card
    assert [p.name for p in tmp_path.iterdir()] == [CARD_FILE]  # no temporary file left behind
    assert card.synthetic_only and not ModelCard(data_name="geopixeld").synthetic_only


def test_absent_card_is_none(tmp_path: Path) -> None:
    assert load_card(tmp_path) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"steps": 3}', "missing field 'data_name'"),
    ('{"data_name": "synthrs", "steps": -1}', "field 'steps': expected a non-negative integer"),
    ('{"data_name": "synthrs", "trained_with_questions": "no"}', "field 'trained_with_questions'"),
    ('{"data_name": "synthrs", "metrics": {"test": {"mIoU": "high"}}}', "field 'metrics'['test']['mIoU']"),
    ('{"data_name": "synthrs", "image_stats": {"mean": [1, 2], "std": [1, 2, 3], "n_images": 1}}',
     "field 'image_stats'.mean"),
    ('{"data_name": "synthrs", "colour": "blue"}', "unknown field(s) ['colour']"),
])
def test_malformed_card_names_the_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / CARD_FILE).write_text(text)
    with pytest.raises(CardError) as info:
        load_card(tmp_path)
    assert str(tmp_path / CARD_FILE) in str(info.value) and expected in str(info.value)


def test_add_metrics_keeps_the_numbers_only(tmp_path: Path) -> None:
    assert add_metrics(tmp_path, "test", {"mIoU": 50.0}) is None      # no card: nothing is invented
    save_card(tmp_path, ModelCard(data_name="synthrs"))
    add_metrics(tmp_path, "synthrs-test", {"mIoU": 50, "METEOR": None, "counts": {"images": 4}, "AP50": 12.5})
    card = load_card(tmp_path)
    assert card is not None and card.metrics == {"synthrs-test": {"mIoU": 50.0, "AP50": 12.5}}


def test_summary_is_one_line_with_data_steps_and_metrics() -> None:
    line = _card().summary()
    assert "\n" not in line
    assert line.startswith("model card: trained on synthrs 1.1 (synthetic scenes only, not real imagery); 40 steps; "
                           "160 samples; no questions in training")
    assert "synthrs-test: mIoU 71.5, AP50 30.2" in line


def test_card_line_never_raises(tmp_path: Path) -> None:
    assert card_line(tmp_path) == "model card: none (this checkpoint was saved without one)"
    (tmp_path / CARD_FILE).write_text("{")
    assert card_line(tmp_path).startswith(f"model card: unreadable ({tmp_path / CARD_FILE}: not valid JSON")
    save_card(tmp_path, _card())
    assert card_line(tmp_path) == _card().summary()


def test_data_identity_names_mixed_sources() -> None:
    assert data_identity({"synthrs": 4}, {"1.1"}) == ("synthrs", "1.1")
    assert data_identity({"synthrs": 4, "geopixeld": 2}, {"1.1"}) == ("geopixeld+synthrs", "1.1")
    assert data_identity({}, set()) == ("unknown", "")
