"""Dataset statistics: hand-computed values on small records, and a SynthRS sample."""

from __future__ import annotations

import numpy as np

from clvnet.data import rle
from clvnet.data.record import GCGRecord, Phrase
from clvnet.data.stats import dataset_stats, format_stats
from clvnet.data.synth import generate_scene


def _rec(caption: str, spans: list[tuple[int, int, int]], classes: list[str] | None, hard: list[str]) -> GCGRecord:
    m = rle.encode(np.ones((4, 4), dtype=np.uint8))
    phrases = [Phrase(caption[s:e], (s, e), [m] * k) for s, e, k in spans]
    meta: dict[str, object] = {"hard": hard, "scene_type": "park"}
    if classes is not None:
        meta["classes"] = classes
    return GCGRecord("x.png", 4, 4, caption, phrases, (0, 0, 4, 4), meta)


def test_stats_hand_computed() -> None:
    a = _rec("Two cars near a tree.", [(0, 8, 2), (14, 20, 1)], ["car", "tree"], [])
    b = _rec("Three boats.", [(0, 11, 3)], ["boat"], ["haze"])
    c = _rec("A car", [(0, 5, 1)], None, [])  # no class meta: counted everywhere but in classes
    st = dataset_stats([a, b, c])
    assert st["records"] == 3 and st["phrases"] == 4 and st["instances"] == 7
    assert st["multi_target_phrases"] == 2 and st["multi_target_share"] == 0.5
    assert st["phrases_per_record"] == {"mean": 4 / 3, "min": 1.0, "max": 2.0}
    assert st["caption_words"] == {"mean": 3.0, "min": 2.0, "max": 5.0}
    assert st["vocab_size"] == len({"two", "cars", "near", "a", "tree", "three", "boats", "car"})
    assert st["class_phrases"] == {"car": 1, "tree": 1, "boat": 1}
    assert st["class_instances"] == {"car": 2, "tree": 1, "boat": 3}
    assert st["hard_share"] == 1 / 3 and st["hard_degradations"] == {"haze": 1}
    text = format_stats(st)
    assert "multi-target phrases: 2 (50.0%)" in text and "vocabulary size:      8" in text
    assert "boat" in text and "haze 1" in text


def test_stats_of_empty_list() -> None:
    st = dataset_stats([])
    assert st["records"] == 0 and st["multi_target_share"] == 0.0
    assert "records:              0" in format_stats(st)


def test_stats_on_synth_sample() -> None:
    recs = [generate_scene(2, i, hard=i % 2 == 0)[1] for i in range(20)]
    st = dataset_stats(recs)
    assert st["hard_share"] == 0.5 and st["with_box_share"] == 1.0
    assert sum(st["class_phrases"].values()) == st["phrases"]
    assert 25 <= st["caption_words"]["mean"] <= 75
    assert len(st["scene_types"]) >= 3
