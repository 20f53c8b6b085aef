"""SynthRS building blocks: twin appearance sampler, sprites, relations, caption builder, degradations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clvnet.data.synth import relations as rel
from clvnet.data.synth.captions import CaptionBuilder, Ref, noun_phrase
from clvnet.data.synth.degrade import DEGRADATIONS, _blur, degrade
from clvnet.data.synth.landcover import SCENE_TYPES, WATER, Road, build_layout
from clvnet.data.synth.objects import CLASSES, TWINS, family_of, rasterise, sample_appearance, window


@pytest.mark.parametrize("pair", TWINS)
def test_twins_share_one_appearance_distribution(pair: tuple[str, str]) -> None:
    a, b = pair
    assert family_of(a) == family_of(b)
    for seed in range(50):
        app_a = sample_appearance(np.random.default_rng(seed), a)
        app_b = sample_appearance(np.random.default_rng(seed), b)
        assert app_a == app_b
    win = window(app_a, 30.0, 30.0)
    ma, ra = rasterise(app_a, 30.0, 30.0, 0.7, win)
    mb, rb = rasterise(app_b, 30.0, 30.0, 0.7, win)
    assert np.array_equal(ma, mb) and np.array_equal(ra, rb)
    # a non-twin class draws from a different distribution
    assert sample_appearance(np.random.default_rng(0), "house").family != family_of(a)


def test_every_class_rasterises_a_reasonable_sprite() -> None:
    assert len(CLASSES) >= 10
    rng = np.random.default_rng(0)
    for cls in CLASSES:
        areas = []
        for _ in range(10):
            app = sample_appearance(rng, cls)
            win = window(app, 64.0, 64.0)
            mask, rgb = rasterise(app, 64.0, 64.0, float(rng.uniform(0, math.pi)), win)
            assert mask.shape == rgb.shape[:2] and rgb.dtype == np.float32
            assert not mask[0].any() and not mask[-1].any() and not mask[:, 0].any() and not mask[:, -1].any()
            areas.append(int(mask.sum()))
        assert min(areas) >= 40, (cls, areas)
    with pytest.raises(ValueError, match="unknown object class"):
        family_of("bicycle")


def test_layouts_of_every_scene_type() -> None:
    for k, t in enumerate(SCENE_TYPES):
        lay = build_layout(np.random.default_rng(k), 256, t)
        assert lay.lc.shape == (256, 256) and lay.roads
        if t in ("harbour", "riverside", "park"):
            assert lay.water is not None and (lay.lc == WATER).any()
    with pytest.raises(ValueError, match="unknown scene type"):
        build_layout(np.random.default_rng(0), 256, "moon")


def _geo(points: list[tuple[float, float]], half: float = 3.0) -> rel.Geometry:
    p = np.asarray(points, dtype=np.float64)
    return rel.Geometry(float(p[:, 0].mean()), float(p[:, 1].mean()),
                        (float(p[:, 0].min() - half), float(p[:, 1].min() - half),
                         float(p[:, 0].max() + half), float(p[:, 1].max() + half)), p)


def test_relations_from_geometry() -> None:
    a, b = _geo([(10, 50)]), _geo([(80, 52)])
    assert rel.direction(a, b) == "to the left of" and rel.direction(b, a, "compass") == "to the east of"
    assert rel.direction(_geo([(50, 5)]), a) == "above"
    assert rel.direction_to_box(_geo([(50, 200)]), (0, 0, 100, 100)) == "below"
    assert rel.next_to(_geo([(10, 10)]), _geo([(20, 10)])) and not rel.next_to(a, b)
    assert rel.near(a, _geo([(70, 52)])) and not rel.near(a, _geo([(200, 200)]))
    assert rel.between((50, 50), (20, 52), (80, 48)) and not rel.between((50, 50), (20, 50), (40, 60))
    ring = np.array([[50 + 20 * math.cos(t), 50 + 20 * math.sin(t)] for t in np.linspace(0, 6, 5)])
    assert rel.surrounded((50, 50), ring) and not rel.surrounded((50, 50), ring[:2])
    road = Road(128, 100, 0.0, 20)
    assert rel.along(_geo([(20, 118), (40, 118), (60, 119), (80, 118)]), road)
    assert not rel.along(_geo([(20, 200), (40, 200), (60, 200)]), road)
    assert rel.beside_road(_geo([(50, 125)]), road) and not rel.beside_road(_geo([(50, 150)]), road)
    lc = np.full((8, 8), WATER, dtype=np.uint8)
    assert rel.on_landcover(lc, [(np.ones((2, 2), bool), (1, 3, 1, 3))]) == "water"


def test_caption_builder_spans_and_capitals() -> None:
    b = CaptionBuilder()
    b.sentence("This is {x}.", x="a test")
    b.sentence("{A} {be} next to {B}.", A=Ref("three red cars", [0, 1, 2], "car", True), be="are",
               B=Ref("a white house", [3], "house", False))
    text = b.text
    assert text == "This is a test. Three red cars are next to a white house."
    for phrase, (s, e), _ in b.phrases:
        assert text[s:e] == phrase
    assert [p for p, _, _ in b.phrases] == ["Three red cars", "a white house"]
    assert noun_phrase("car", 1, "orange") == "an orange car"
    assert noun_phrase("tree", 5, "green") == "five trees"
    assert noun_phrase("storage tank", 2, None) == "two storage tanks"


def test_degradations() -> None:
    flat = np.full((64, 64, 3), 120.0, dtype=np.float32)
    assert np.allclose(_blur(flat, 5), 120.0)
    img = np.random.default_rng(0).uniform(0, 255, (128, 128, 3)).astype(np.float32)
    ref = img.copy()
    seen: set[str] = set()
    for seed in range(30):
        out, names = degrade(np.random.default_rng(seed), img)
        assert names and set(names) <= set(DEGRADATIONS)
        assert out.shape == img.shape and not np.array_equal(out, img)
        seen.update(names)
    assert seen == set(DEGRADATIONS)
    assert np.array_equal(img, ref)  # input untouched


def test_later_objects_occlude_earlier_ones() -> None:
    from clvnet.data.synth.landcover import GRASS, Layout
    from clvnet.data.synth.objects import Appearance
    from clvnet.data.synth.placement import Scene

    lay = Layout(64, "park", np.full((64, 64), GRASS, dtype=np.uint8))
    scene = Scene(lay, np.zeros((64, 64, 3), dtype=np.float32), np.random.default_rng(0))
    app = Appearance("tree", 16.0, 16.0, "green", "green", 0.0)
    a = scene.place("tree", 24.0, 32.0, 0.0, app, (GRASS,))
    assert a is not None
    assert scene.place("tree", 30.0, 32.0, 0.0, app, (GRASS,), overlap=0.2) is None  # too much overlap
    b = scene.place("tree", 36.0, 32.0, 0.0, app, (GRASS,), overlap=0.2)
    assert b is not None
    ma, (y0, y1, x0, x1) = scene.visible_mask(a)
    full_a, _ = rasterise(app, 24.0, 32.0, 0.0, (y0, y1, x0, x1))
    assert 0 < ma.sum() < full_a.sum()  # part of the first tree is hidden
    assert not (ma & (scene.idmap[y0:y1, x0:x1] == scene.objects[b].id)).any()
    assert scene.place("car", 50.0, 50.0, 0.0, None, (WATER,)) is None  # wrong context
