"""SynthRS-hard: scenes whose visual twins can be told apart only by their context (design §6, §7).

Every scene holds a group of each member of one twin pair (:data:`~clvnet.data.synth.objects.TWINS`),
side by side:

- ``car`` / ``boat``: a row of cars on a road and, parallel to it, a row of boats on the water next
  to the road (on a bridge and beside it in riverside scenes);
- ``storage tank`` / ``roundabout``: a roundabout on a road junction and one or two storage tanks on
  the yard next to it.

The twins' appearances are one sequence of draws from their shared family distribution (one shared
colour for all of them in half of the scenes), so size, colour and shape carry no class information;
the two rows have the same spacing and both lie along the road. Only the ground under an object
(road or water; junction or yard) tells the classes apart. The box holds one of the two groups
(either with probability 1/2); the caption names it, then the other group as the first outside
context, so both are grounded. The rest of the scene is the usual recipe of its scene type.

Seeding: scene ``index`` uses ``default_rng([seed, index, 2, attempt])``, a stream no ordinary scene
uses, so a twin split never repeats an ordinary scene even under the same split name. Hard-mode
degradations use ``default_rng([seed, index, 1])`` as for ordinary scenes.

Record meta ``twins``: ``{"pair": [a, b], "boxed": class, "context": class, "phrases": [i, j],
"ground": [g_i, g_j]}`` with ``i`` / ``j`` the phrase indices of the boxed and the context group and
``g`` the land cover under most of each group's pixels.
"""

from __future__ import annotations

import math

import numpy as np

from clvnet.data.record import GCGRecord
from clvnet.data.synth import recipes
from clvnet.data.synth.describe import Plan
from clvnet.data.synth.generator import check_size, finish_scene, group_boxes, new_scene, valid_groups
from clvnet.data.synth.landcover import CONCRETE, ROAD, SOIL, WATER, build_layout
from clvnet.data.synth.objects import TWINS, Appearance, sample_appearance
from clvnet.data.synth.placement import Scene
from clvnet.data.synth.relations import on_landcover

TWIN_SPLIT = "test-hard"  # the conventional split name of SynthRS-hard
MAX_CONTEXT_DIST = 90.0   # px: the context group's centroid lies at most this far from the box centre
_VEHICLE_SCENES = ("harbour", "riverside", "park")  # scene types with a road and water
_MAX_ATTEMPTS = 60


def generate_twin_scene(seed: int, index: int, size: int = 256, hard: bool = False) -> tuple[np.ndarray, GCGRecord]:
    """One SynthRS-hard scene: ``(image uint8 (size, size, 3), record)`` (see the module doc)."""
    check_size(size)
    for attempt in range(_MAX_ATTEMPTS):
        rng = np.random.default_rng([seed, index, 2, attempt])
        pair = TWINS[int(rng.integers(len(TWINS)))]
        if pair == ("car", "boat"):
            layout = build_layout(rng, size, _VEHICLE_SCENES[int(rng.integers(len(_VEHICLE_SCENES)))])
        else:
            layout = build_layout(rng, size, "industrial")
            if not layout.junctions:
                continue
        scene = new_scene(rng, size, layout)
        placed = _vehicle_twins(scene) if pair == ("car", "boat") else _disc_twins(scene)
        if placed is None:
            continue
        recipes.populate(scene)
        groups = valid_groups(scene)
        if any(g not in groups for g in placed):
            continue
        k = int(rng.integers(2))
        boxed, context = placed[k], placed[1 - k]
        plan = _box(scene, rng, boxed, context)
        if plan is None:
            continue
        image, record, desc = finish_scene(scene, groups, plan, rng, seed, index, hard, prefer=context)
        record.meta["twins"] = {"pair": list(pair), "boxed": scene.groups[boxed].cls,
                                "context": scene.groups[context].cls,
                                "phrases": [desc.main_phrase, desc.preferred_phrase],
                                "ground": [_ground(scene, boxed), _ground(scene, context)]}
        return image, record
    raise RuntimeError(f"twin scene seed={seed} index={index}: no layout fitted both twins in "
                       f"{_MAX_ATTEMPTS} attempts")


def _ground(scene: Scene, g: int) -> str:
    """The land cover under most of group ``g``'s visible pixels."""
    return on_landcover(scene.layout.lc, [scene.visible_mask(i) for i in scene.groups[g].ids])


def _twin_apps(scene: Scene, family_cls: str, n: int) -> list[Appearance]:
    """``n`` appearances of one twin family: i.i.d. draws, one shared colour in half of the scenes."""
    shared = sample_appearance(scene.rng, family_cls).color if scene.rng.random() < 0.5 else None
    apps = [sample_appearance(scene.rng, family_cls) for _ in range(n)]
    if shared is None:
        return apps
    return [Appearance(a.family, a.length, a.width, shared, shared if a.family == "vehicle" else a.color2, a.detail)
            for a in apps]


def _water_sites(scene: Scene) -> list[tuple[int, float, float, float]]:
    """Places for a boat row beside a road: ``(road index, t, d, gap)`` with water at and around ``(t, d)``.

    ``t`` runs along the road in 4-px steps, ``d`` across it on both sides; a site needs water at
    ``d`` and 10 px either way along the road, at the smallest of the tried gaps from the road edge.
    """
    lay = scene.layout
    s = lay.size
    sites: list[tuple[int, float, float, float]] = []
    for k, road in enumerate(lay.roads):
        if road.kind != "road":
            continue
        for t in np.arange(-s / 2 + 24, s / 2 - 24, 4.0):
            for side in (1.0, -1.0):
                for gap in (12.0, 18.0, 24.0, 30.0, 38.0, 46.0):
                    d = side * (road.width / 2 + gap)
                    if all(_is(lay.lc, road.point(float(t) + dt, d), WATER) for dt in (-10.0, 0.0, 10.0)):
                        sites.append((k, float(t), d, gap))
                        break
    return sites


def _is(lc: np.ndarray, p: tuple[float, float], cover: int) -> bool:
    x, y = math.floor(p[0]), math.floor(p[1])
    return 0 <= y < lc.shape[0] and 0 <= x < lc.shape[1] and int(lc[y, x]) == cover


def _vehicle_twins(scene: Scene) -> tuple[int, int] | None:
    """A row of cars on a road and a parallel row of boats on the water beside it: ``(car group, boat group)``."""
    rng = scene.rng
    sites = _water_sites(scene)
    if not sites:
        return None
    k, t, d_boat, _ = sites[int(rng.integers(len(sites)))]
    road = scene.layout.roads[k]
    n_car, n_boat = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    apps = _twin_apps(scene, "car", n_car + n_boat)
    spacing = float(rng.uniform(18, 26))
    lane = (1.0 if rng.random() < 0.5 else -1.0) * road.width / 4
    boat_turn = math.pi if rng.random() < 0.5 else 0.0

    def row(cls: str, n: int, d: float, angle: float, todo: list[Appearance], allowed: tuple[int, ...]) -> list[int]:
        out = []
        for j in range(n):
            x, y = road.point(t + (j - (n - 1) / 2) * spacing + float(rng.uniform(-1.5, 1.5)), d)
            i = scene.place(cls, x, y, angle + float(rng.normal(0, 0.03)), todo[j], allowed)
            if i is not None:
                out.append(i)
        return out

    cars = row("car", n_car, lane, road.angle + (math.pi if lane < 0 else 0.0), apps[:n_car], (ROAD,))
    boats = row("boat", n_boat, d_boat, road.angle + boat_turn, apps[n_car:], (WATER,))
    if not cars or not boats:
        return None
    g_car = scene.add_group("car", cars, "row", "road", k)
    g_boat = scene.add_group("boat", boats, "row", "water")
    assert g_car is not None and g_boat is not None
    return g_car, g_boat


def _disc_twins(scene: Scene) -> tuple[int, int] | None:
    """A roundabout on the first junction and 1-2 storage tanks on the yard beside it: ``(tank group, roundabout)``."""
    rng = scene.rng
    jx, jy = scene.layout.junctions[0]
    n_tank = int(rng.integers(1, 3))
    apps = _twin_apps(scene, "roundabout", n_tank + 1)
    r = scene.place("roundabout", jx, jy, 0.0, apps[0])
    if r is None:
        return None
    tanks = []
    for app in apps[1:]:
        for _ in range(30):
            ang, dist = float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(38, 75))
            i = scene.place("storage tank", jx + dist * math.cos(ang), jy + dist * math.sin(ang), 0.0, app,
                            (CONCRETE, SOIL), min_allowed=0.9)
            if i is not None:
                tanks.append(i)
                break
    if not tanks:
        return None
    g_round = scene.add_group("roundabout", [r], "single", "junction")
    g_tank = scene.add_group("storage tank", tanks, "cluster", recipes.lay_word(scene))
    assert g_round is not None and g_tank is not None
    return g_tank, g_round


def _box(scene: Scene, rng: np.random.Generator, boxed: int, context: int) -> Plan | None:
    """A jittered box around ``boxed`` (as ordinary scenes draw it) that leaves every ``context`` object
    and the context group's centroid outside, that centroid within :data:`MAX_CONTEXT_DIST` of the box centre."""
    s = scene.layout.size
    x0, y0, x1, y1 = group_boxes(scene, [boxed])[boxed]
    m = rng.uniform(2, 14, 4)
    box = (max(0.0, float(np.floor(x0 - m[0]))), max(0.0, float(np.floor(y0 - m[1]))),
           min(float(s), float(np.ceil(x1 + m[2]))), min(float(s), float(np.ceil(y1 + m[3]))))
    bx0, by0, bx1, by1 = box
    pts = [scene.stats(i)[:2] for i in scene.groups[context].ids]
    if any(bx0 <= cx <= bx1 and by0 <= cy <= by1 for cx, cy in pts):
        return None
    cx, cy = float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts]))
    if bx0 <= cx <= bx1 and by0 <= cy <= by1:
        return None
    if math.hypot(cx - (bx0 + bx1) / 2, cy - (by0 + by1) / 2) > MAX_CONTEXT_DIST:
        return None
    return Plan([boxed], box)
