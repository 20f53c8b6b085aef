"""SynthRS caption planning: which facts the global and local sentences state for one box.

Global sentences: the scene type and one or two land-cover facts. Local sentences (two to four):
the boxed group and what it is doing where (``on`` the road / water / parking lot), a second boxed
group and its relation to the first, ``between`` / ``surrounded by`` relations, and a context group
OUTSIDE the box with its direction from the box (descriptions reach beyond the box).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from clvnet.data.synth import relations as rel
from clvnet.data.synth.captions import (
    CaptionBuilder,
    Ref,
    be,
    layout_sentence,
    noun_phrase,
    participle,
    pronoun,
    scene_sentence,
)
from clvnet.data.synth.landcover import Layout
from clvnet.data.synth.placement import Scene

_PART = {"top": "upper part", "middle": "middle", "bottom": "lower part", "left": "left side",
         "centre": "centre", "right": "right side"}


@dataclass
class Plan:
    """The boxed groups (``main``, 1-2 group indices) and the box itself."""

    main: list[int]
    box: tuple[float, float, float, float]


def layout_facts(lay: Layout, rng: np.random.Generator) -> list[str]:
    """The one or two most salient land-cover facts (water / runway, then roads, then fields).

    ``rng`` only picks wording ("at a junction" or not).
    """
    s = lay.size
    first: list[str] = []
    rest: list[str] = []
    if lay.water == "river":
        orient, side = lay.water_side.split(" ")
        way = "from top to bottom" if orient == "vertical" else "from left to right"
        first.append(f"a river runs {way} through the {_PART[side]} of the image")
    elif lay.water == "lake":
        v, h = lay.water_side.split(" ")
        where = "centre" if (v, h) == ("middle", "centre") else _PART[v] if h == "centre" else _PART[h]
        prep = "on" if where.endswith("side") else "in"
        first.append(f"a lake lies {prep} the {where} of the scene")
    elif lay.water == "sea":
        first.append(f"the sea covers the {_PART[lay.water_side]} of the image beyond a sandy beach")
    roads = [r for r in lay.roads if r.kind == "road"]
    for r in lay.roads:
        if r.kind == "runway":
            pos = r.py / s if r.orientation == "horizontal" else r.px / s
            part = ("top", "middle", "bottom") if r.orientation == "horizontal" else ("left", "centre", "right")
            first.append(f"a wide runway crosses the {_PART[part[0 if pos < 0.38 else 2 if pos > 0.62 else 1]]}"
                         " of the image")
    if lay.junctions:
        rest.append("two roads cross each other" + ("" if rng.random() < 0.5 else " at a junction"))
    elif len(roads) == 2:
        rest.append("two roads pass through the scene")
    elif roads:
        r = roads[0]
        pos = r.py / s if r.orientation == "horizontal" else r.px / s
        part = ("top", "middle", "bottom") if r.orientation == "horizontal" else ("left", "centre", "right")
        rest.append(f"a road runs {r.orientation}ly across the "
                    f"{_PART[part[0 if pos < 0.38 else 2 if pos > 0.62 else 1]]}")
    if lay.farmland_side:
        rest.append(f"farmland fields cover the {_PART[lay.farmland_side]}")
    if lay.parking:
        rest.append("a parking lot lies beside the road")
    # SynthRS 1.0 dropped the second fact at random (30%); 1.1 always gives the two most salient
    return (first + rest)[:2]


# A second outside group is described only when it lies this close (pixels) to the box centre
# (SynthRS 1.0 added one at random, in 60% of the scenes where there was room).
SECOND_CONTEXT_DIST = 80.0


class Describer:
    """Writes the caption for one scene and box; collects phrases and relation meta.

    ``prefer`` (a group outside the box) makes the caption describe that group right after the boxed
    ones, as the first outside context, before any other local sentence; its phrase index is then
    :attr:`preferred_phrase`. Without it (all ordinary splits) the context groups follow salience.
    """

    def __init__(self, scene: Scene, groups: list[int], rng: np.random.Generator, style: str,
                 prefer: int | None = None) -> None:
        self.scene, self.rng, self.style, self.prefer = scene, rng, style, prefer
        self.preferred_phrase: int | None = None
        self.main_phrase = 0  # index of the boxed group's phrase, set by write()
        self.geo = {g: rel.geometry_of([scene.stats(i) for i in scene.groups[g].ids]) for g in groups}
        self.b = CaptionBuilder()
        self.relations: list[list[Any]] = []
        self.used: set[int] = set()

    def _ref(self, g: int, in_box: bool, ids: list[int] | None = None) -> Ref:
        grp = self.scene.groups[g]
        ids = list(grp.ids if ids is None else ids)
        colors = {self.scene.objects[i].app.color for i in ids}
        color = colors.pop() if len(colors) == 1 else None
        self.used.update(ids)
        return Ref(noun_phrase(grp.cls, len(ids), color), ids, grp.cls, in_box)

    def _pidx(self) -> int:
        return len(self.b.phrases)

    def _participle(self, g: int) -> tuple[str, str]:
        sc, grp = self.scene, self.scene.groups[g]
        masks = [sc.visible_mask(i) for i in grp.ids]
        ground = rel.on_landcover(sc.layout.lc, masks)
        geo = self.geo[g]
        along = any(rel.along(geo, r) for r in sc.layout.roads if r.kind == "road")
        near_road = any(rel.beside_road(geo, r) for r in sc.layout.roads if r.kind == "road")
        water = sc.layout.water if sc.layout.water in ("river", "lake", "sea") else "water"
        text = participle(self.rng, grp.cls, len(grp.ids), grp.kind, ground, water, along, near_road)
        return text, ("along road" if along and grp.cls == "tree" else ground)

    def write(self, plan: Plan) -> CaptionBuilder:
        """Write global then local sentences."""
        sc, rng, b = self.scene, self.rng, self.b
        scene_sentence(b, rng, sc.layout.scene_type)
        layout_sentence(b, rng, layout_facts(sc.layout, rng))
        a = plan.main[0]
        na = len(sc.groups[a].ids)
        part, ground = self._participle(a)
        ia = self.main_phrase = self._pidx()
        tpl = ("Inside the box, {A} {be} {p}.", "The box contains {A} {p}.",
               "In the marked region, {A} {be} {p}.")[int(rng.integers(3))]
        b.sentence(tpl, A=self._ref(a, True), be=be(na), p=part)
        self.relations.append([ia, "along", "road"] if ground == "along road" else [ia, "on", ground])
        local = 1
        if len(plan.main) > 1:
            g = plan.main[1]
            ng = len(sc.groups[g].ids)
            r = "next to" if rel.next_to(self.geo[g], self.geo[a]) else rel.direction(self.geo[g], self.geo[a],
                                                                                   self.style)
            ib = self._pidx()
            if rng.random() < 0.5:
                b.sentence("{B} {be} {r} {pr}.", B=self._ref(g, True), be=be(ng), r=r, pr=pronoun(na))
            else:
                b.sentence("{r} {pr} {be} {B}.", r=r, pr=pronoun(na), be=be(ng), B=self._ref(g, True))
            self.relations.append([ib, r, ia])
            local += 1
        if self.prefer is not None:
            if not self._context(plan, ia, na, only=self.prefer):
                raise ValueError(f"preferred group {self.prefer} cannot be described as outside the box")
            local += 1
        # SynthRS 1.0 also gated these two sentences on the caption's word count so far, which made the
        # objects named depend on the (random) wording; 1.1 gates on the number of local sentences only.
        if self._special(a, ia, na):
            local += 1
        if self._context(plan, ia, na):
            local += 1
        if local < 4 and self._context(plan, ia, na, anchor="main", max_dist=SECOND_CONTEXT_DIST):
            local += 1
        if local < 2:
            where = rel.region_word(self.geo[a], sc.layout.size, self.style)
            b.sentence("{pr} {be} {w}.", pr=pronoun(na, True), be=be(na), w=where)
        return b

    def _special(self, a: int, ia: int, na: int) -> bool:
        """``surrounded by`` trees or ``between`` two objects of one class (not yet mentioned)."""
        sc = self.scene
        ca = (self.geo[a].cx, self.geo[a].cy)
        trees = [o for o in range(len(sc.objects))
                 if o not in self.used and sc.objects[o].cls == "tree" and sc.objects[o].group >= 0]
        if trees and sc.groups[a].cls != "tree":
            pts = np.array([[sc.objects[o].cx, sc.objects[o].cy] for o in trees])
            close = np.hypot(pts[:, 0] - ca[0], pts[:, 1] - ca[1]) <= 60
            if rel.surrounded(ca, pts[close]):
                ids = [t for t, c in zip(trees, close) if c]
                ref = Ref(noun_phrase("tree", len(ids), None), ids, "tree", False)
                it = self._pidx()
                self.b.sentence("{pr} {be} surrounded by {T}.", pr=pronoun(na, True), be=be(na), T=ref)
                self.used.update(ids)
                self.relations.append([ia, "surrounded by", it])
                return True
        by_cls: dict[str, list[int]] = {}
        for o in range(len(sc.objects)):
            if o not in self.used and sc.objects[o].group >= 0:
                by_cls.setdefault(sc.objects[o].cls, []).append(o)
        for cls, objs in sorted(by_cls.items()):
            # only objects near the centre can end a "between" pair: same pairs, same order, fewer tests
            objs = [o for o in objs if rel.between_candidate(ca, (sc.objects[o].cx, sc.objects[o].cy))]
            for j, p in enumerate(objs):
                for q in objs[j + 1:]:
                    op, oq = sc.objects[p], sc.objects[q]
                    if rel.between(ca, (op.cx, op.cy), (oq.cx, oq.cy)):
                        color = op.app.color if op.app.color == oq.app.color else None
                        ref = Ref(noun_phrase(cls, 2, color), [p, q], cls, False)
                        it = self._pidx()
                        self.b.sentence("{pr} {be} between {P}.", pr=pronoun(na, True), be=be(na), P=ref)
                        self.used.update([p, q])
                        self.relations.append([ia, "between", it])
                        return True
        return False

    def _context(self, plan: Plan, ia: int, na: int, anchor: str = "box", max_dist: float | None = None,
                 only: int | None = None) -> bool:
        """The most salient group outside the box, placed relative to the box (or to the boxed group).

        Salience is deterministic (since SynthRS 1.1): closeness to the box centre, doubled for groups
        lined up along a road; ties go to the lower group index. SynthRS 1.0 multiplied it by a random
        factor in [0.5, 1.5), so which outside group the caption named could not be told from the image.
        ``max_dist`` (pixels from the box centre) bounds the candidates; ``only`` restricts them to one
        group (recorded in :attr:`preferred_phrase`).
        """
        sc = self.scene
        x0, y0, x1, y1 = plan.box
        best, best_w = None, 0.0
        for g, geo in self.geo.items():
            if g in plan.main or any(i in self.used for i in sc.groups[g].ids) or (only is not None and g != only):
                continue
            if x0 <= geo.cx <= x1 and y0 <= geo.cy <= y1:
                continue
            d = float(np.hypot(geo.cx - (x0 + x1) / 2, geo.cy - (y0 + y1) / 2))
            if max_dist is not None and d > max_dist:
                continue
            w = (1.0 + (sc.groups[g].kind == "along")) / (1.0 + d / 50.0)
            if w > best_w:
                best, best_w = g, w
        if best is None:
            return False
        rng = self.rng
        ng = len(sc.groups[best].ids)
        part, ground = self._participle(best)
        ic = self._pidx()
        if only is not None:
            self.preferred_phrase = ic
        if ground == "along road":
            self.relations.append([ic, "along", "road"])
        ref = self._ref(best, False)
        if anchor == "box":
            where = rel.direction_to_box(self.geo[best], plan.box, self.style)
            tpl = ("Outside the box, {C} {be} {p} {d} the box.", "{C} {be} {p} {d} the box.",
                   "Beyond the box, {C} can be seen {d} it.")[int(rng.integers(3))]
            self.b.sentence(tpl, C=ref, be=be(ng), p=part, d=where)
            self.relations.append([ic, where, "box"])
            if rel.near(self.geo[best], self.geo[plan.main[0]]):
                self.relations.append([ic, "near", ia])
            return True
        a = self.geo[plan.main[0]]
        where = "near" if rel.near(self.geo[best], a) else rel.direction(self.geo[best], a, self.style)
        tpl = ("{C} {be} also {p} {d} {pr}.", "There {be} also {C} {p} {d} {pr}.")[int(rng.integers(2))]
        self.b.sentence(tpl, C=ref, be=be(ng), p=part, d=where, pr=pronoun(na))
        self.relations.append([ic, where, ia])
        return True
