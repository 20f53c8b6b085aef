"""The twin-confusion column: the evaluator's rate in percent, on real SynthRS-hard scenes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from clvnet.ablation.metrics import twin_confusion_rate
from clvnet.data.record import GCGRecord, Phrase, read_jsonl
from clvnet.data.rle import decode, encode
from clvnet.data.synth.objects import TWINS

TWIN_OF = {a: b for a, b in TWINS} | {b: a for a, b in TWINS}


@pytest.fixture(scope="module")
def hard(tmp_path_factory: pytest.TempPathFactory) -> list[GCGRecord]:
    from clvnet.data.synth import generate_split

    return read_jsonl(generate_split(tmp_path_factory.mktemp("hard"), 3, 0, split="test-hard", twins=True))


def _predict(gts: list[GCGRecord], swap: bool) -> list[GCGRecord]:
    """The GT as a prediction (one union mask per phrase); with ``swap`` each twin-class phrase names the twin."""
    preds = []
    for g in gts:
        phrases = []
        for p, cls in zip(g.phrases, g.meta["classes"]):
            union = np.any([decode(m) for m in p.masks], axis=0)
            text = f"a {TWIN_OF[cls]}" if swap and cls in TWIN_OF else p.text
            phrases.append(Phrase(text, p.span, [encode(union)]))
        preds.append(dataclasses.replace(g, phrases=phrases))
    return preds


def test_twin_confusion_in_percent(hard: list[GCGRecord]) -> None:
    assert any(c in TWIN_OF for g in hard for c in g.meta["classes"])       # the split has twins to confuse
    right = twin_confusion_rate(hard, _predict(hard, swap=False))
    assert right["twin confusion"] == 0.0 and right["twin_confusion"]["correct"] > 0
    wrong = twin_confusion_rate(hard, _predict(hard, swap=True))
    assert wrong["twin confusion"] == 100.0 and wrong["twin_confusion"]["confused"] == right["twin_confusion"]["correct"]


def test_no_twin_phrase_gives_no_rate(hard: list[GCGRecord]) -> None:
    empty = [dataclasses.replace(g, phrases=[]) for g in hard]
    assert twin_confusion_rate(hard, empty)["twin confusion"] is None
