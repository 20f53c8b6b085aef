"""SynthRS-hard twin scenes: both twins side by side near the box, told apart only by their context."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from clvnet.cli import main
from clvnet.data import rle
from clvnet.data.record import GCGRecord, read_jsonl, validate
from clvnet.data.synth import TWINS, generate_scene, generate_split
from clvnet.data.synth.twins import MAX_CONTEXT_DIST, TWIN_SPLIT, _twin_apps, generate_twin_scene

N = 40
GROUND = {"car": {"road"}, "boat": {"water"}, "roundabout": {"road"}, "storage tank": {"concrete", "bare soil"}}


@pytest.fixture(scope="module")
def twin_scenes() -> list[tuple[np.ndarray, GCGRecord]]:
    """40 twin scenes (about 1.5 s)."""
    return [generate_twin_scene(21, i) for i in range(N)]


def _centre(masks: list[dict[str, object]]) -> tuple[float, float]:
    pts = []
    for m in masks:
        ys, xs = np.nonzero(rle.decode(m))  # type: ignore[arg-type]
        pts.append((xs.mean() + 0.5, ys.mean() + 0.5))
    return float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))


def test_every_scene_has_both_twins_near_the_box(twin_scenes: list[tuple[np.ndarray, GCGRecord]]) -> None:
    pairs = set()
    for _, rec in twin_scenes:
        validate(rec)
        tw = rec.meta["twins"]
        i, j = tw["phrases"]
        cls, inb = rec.meta["classes"], rec.meta["in_box"]
        assert tuple(tw["pair"]) in TWINS and {tw["boxed"], tw["context"]} == set(tw["pair"])
        assert (cls[i], cls[j], inb[i], inb[j]) == (tw["boxed"], tw["context"], True, False)
        x0, y0, x1, y1 = rec.box  # type: ignore[misc]
        for m in rec.phrases[i].masks:  # the boxed twins lie inside the box ...
            bx0, by0, bx1, by1 = rle.bbox(rle.decode(m))  # type: ignore[misc]
            assert x0 <= bx0 and y0 <= by0 and bx1 <= x1 and by1 <= y1
        for m in rec.phrases[j].masks:  # ... the other twins outside it, close by
            cx, cy = _centre([m])
            assert not (x0 <= cx <= x1 and y0 <= cy <= y1)
        cx, cy = _centre(rec.phrases[j].masks)
        assert math.hypot(cx - (x0 + x1) / 2, cy - (y0 + y1) / 2) <= MAX_CONTEXT_DIST + 1
        pairs.add((tw["boxed"], tw["context"]))
    assert len(pairs) == 4  # each twin is boxed in some scene, with its twin as the context


def test_twins_are_told_apart_by_the_ground_under_them(twin_scenes: list[tuple[np.ndarray, GCGRecord]]) -> None:
    for _, rec in twin_scenes:
        tw = rec.meta["twins"]
        i = tw["phrases"][0]
        on = [obj for p, r, obj in rec.meta["relations"] if p == i and r == "on"]
        assert on and set(on) <= GROUND[tw["boxed"]], (rec.caption, on)
        assert tw["ground"][0] in GROUND[tw["boxed"]] and tw["ground"][1] in GROUND[tw["context"]], tw


def test_twin_appearances_are_drawn_without_the_class() -> None:
    from clvnet.data.synth.landcover import build_layout
    from clvnet.data.synth.placement import Scene

    for a, b in TWINS:
        for seed in range(20):
            sa = Scene(build_layout(np.random.default_rng(0), 256, "park"), np.zeros((256, 256, 3), np.float32),
                       np.random.default_rng(seed))
            sb = Scene(sa.layout, sa.img, np.random.default_rng(seed))
            assert _twin_apps(sa, a, 4) == _twin_apps(sb, b, 4)


def test_twin_scenes_are_deterministic_and_new() -> None:
    a_img, a_rec = generate_twin_scene(3, 5)
    b_img, b_rec = generate_twin_scene(3, 5)
    assert a_img.tobytes() == b_img.tobytes() and a_rec.to_dict() == b_rec.to_dict()
    plain, _ = generate_scene(3, 5)
    assert plain.tobytes() != a_img.tobytes()  # another random stream than ordinary scenes
    hard_img, hard_rec = generate_twin_scene(3, 5, hard=True)
    assert hard_rec.meta["hard"] and hard_rec.caption == a_rec.caption and hard_img.tobytes() != a_img.tobytes()


def test_twin_split_via_generate_split_and_cli(tmp_path: Path) -> None:
    path = generate_split(tmp_path / "api", 4, seed=2, split=TWIN_SPLIT, twins=True)
    recs = read_jsonl(path, validate_records=True)
    assert [r.id for r in recs] == [f"test-hard_{i:06d}" for i in range(4)]
    assert all(r.meta["split"] == TWIN_SPLIT and "twins" in r.meta for r in recs)
    assert main(["data", "synth", "--out", str(tmp_path / "cli"), "--num", "4", "--seed", "2",
                 "--split", TWIN_SPLIT, "--twins"]) == 0
    assert (tmp_path / "cli" / "records.jsonl").read_bytes() == path.read_bytes()
    for i in range(4):
        name = f"images/test-hard_{i:06d}.png"
        assert hashlib.sha256((tmp_path / "cli" / name).read_bytes()).digest() == \
            hashlib.sha256((tmp_path / "api" / name).read_bytes()).digest()
