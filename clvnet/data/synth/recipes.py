"""SynthRS scene recipes: which groups of objects each scene type places, and where.

Context rules that make the visual twins separable: cars only on roads and parking lots, boats only
on water, roundabouts only on a road junction, storage tanks only on concrete or bare soil.
"""

from __future__ import annotations

import math

from clvnet.data.synth.landcover import CONCRETE, FARMLAND, GRASS, PARKING, ROAD, SAND, SOIL, WATER
from clvnet.data.synth.placement import Scene


def _i(scene: Scene, lo: int, hi: int) -> int:
    return int(scene.rng.integers(lo, hi + 1))


def _side(scene: Scene) -> float:
    return 1.0 if scene.rng.random() < 0.5 else -1.0


def roundabout(scene: Scene, p: float) -> None:
    """A roundabout on the first junction, with probability ``p``."""
    if scene.layout.junctions and scene.rng.random() < p:
        x, y = scene.layout.junctions[0]
        i = scene.place("roundabout", x, y, 0.0)
        if i is not None:
            scene.add_group("roundabout", [i], "single", "junction")


def cars_on_roads(scene: Scene, groups: int) -> None:
    """``groups`` short rows of cars driving in a lane."""
    roads = [k for k, r in enumerate(scene.layout.roads) if r.kind == "road"]
    for _ in range(groups if roads else 0):
        k = roads[int(scene.rng.integers(len(roads)))]
        road = scene.layout.roads[k]
        scene.row_along_road("car", k, _i(scene, 1, 4), _side(scene) * road.width / 4,
                             float(scene.rng.uniform(18, 28)), (ROAD,), p_color=0.5)


def cars_in_parking(scene: Scene) -> None:
    """One or two rows of parked cars in each parking lot."""
    for lot in scene.layout.parking:
        road = scene.layout.roads[lot.road]
        depth = lot.d1 - lot.d0
        rows = [lot.d0 + 11, lot.d1 - 11] if depth > 30 else [(lot.d0 + lot.d1) / 2]
        for d in rows:
            if scene.rng.random() < 0.25:
                continue
            n = _i(scene, 2, 6)
            slots = int((lot.t1 - lot.t0 - 2) // 10)
            if slots < n:
                continue
            start = int(scene.rng.integers(0, slots - n + 1))
            gap = 2 if scene.rng.random() < 0.3 and slots >= 2 * n else 1
            color = scene._shared_color("car", 0.4)
            placed = []
            for j in range(n):
                slot = start + j * gap
                if slot >= slots:
                    break
                x, y = road.point(lot.t0 + 6 + 10 * slot, d)
                i = scene.place("car", x, y, road.angle + math.pi / 2 + float(scene.rng.normal(0, 0.03)),
                                scene._app("car", color), (PARKING,))
                if i is not None:
                    placed.append(i)
            scene.add_group("car", placed, "row", "parking lot", lot.road)


def houses(scene: Scene, pools: float) -> None:
    """Rows of houses set back from each road, some with a swimming pool behind."""
    for k, road in enumerate(scene.layout.roads):
        if road.kind != "road":
            continue
        for side in (1.0, -1.0):
            if scene.rng.random() < 0.35:
                continue
            g = scene.row_along_road("house", k, _i(scene, 2, 5), side * (road.width / 2 + 14),
                                     float(scene.rng.uniform(26, 34)), (GRASS,), p_color=0.5)
            if g is None or scene.rng.random() > pools:
                continue
            placed = []
            for i in scene.groups[g].ids:
                o = scene.objects[i]
                if scene.rng.random() < 0.6:
                    dx, dy = -math.sin(road.angle) * side * 22, math.cos(road.angle) * side * 22
                    j = scene.place("swimming pool", o.cx + dx, o.cy + dy, road.angle, None, (GRASS,))
                    if j is not None:
                        placed.append(j)
            scene.add_group("swimming pool", placed, "row", "garden", k)


def trees_along_road(scene: Scene, p: float) -> None:
    """A row of trees lining a road on one side."""
    for k, road in enumerate(scene.layout.roads):
        if road.kind == "road" and scene.rng.random() < p:
            scene.row_along_road("tree", k, _i(scene, 4, 9), _side(scene) * (road.width / 2 + 7),
                                 float(scene.rng.uniform(14, 19)), (GRASS, SOIL, SAND), p_color=1.0,
                                 context="road", kind="along")


def tree_clusters(scene: Scene, n: int, allowed: tuple[int, ...] = (GRASS,)) -> None:
    """``n`` small clumps of trees."""
    for _ in range(n):
        scene.cluster("tree", _i(scene, 2, 6), allowed, "grass", 22, p_color=1.0, aligned=False, overlap=0.2)


def courts(scene: Scene, p_ring: float) -> None:
    """A tennis court block, sometimes surrounded by trees."""
    g = scene.grid_block("tennis court", 1, _i(scene, 1, 3), (GRASS,), "grass")
    if g is not None and scene.rng.random() < p_ring:
        scene.ring_around("tree", g, _i(scene, 5, 8), (GRASS,), "grass")


def populate(scene: Scene) -> None:
    """Place all object groups for the scene's type."""
    lay, rng = scene.layout, scene.rng
    t = lay.scene_type
    if t == "residential":
        roundabout(scene, 0.5)
        houses(scene, 0.6)
        if rng.random() < 0.35:
            courts(scene, 0.5)
        cars_in_parking(scene)
        cars_on_roads(scene, _i(scene, 1, 2))
        trees_along_road(scene, 0.5)
        tree_clusters(scene, _i(scene, 1, 2))
    elif t == "industrial":
        roundabout(scene, 0.5)
        for k, road in enumerate(lay.roads[:1]):
            scene.row_along_road("warehouse", k, _i(scene, 1, 3), _side(scene) * (road.width / 2 + 26),
                                 float(scene.rng.uniform(70, 80)), (CONCRETE, SOIL), p_color=0.5)
        scene.grid_block("storage tank", _i(scene, 1, 2), _i(scene, 2, 3), (CONCRETE, SOIL), lay_word(scene))
        cars_in_parking(scene)
        cars_on_roads(scene, _i(scene, 1, 2))
        if rng.random() < 0.4:
            tree_clusters(scene, 1, (CONCRETE, SOIL))
    elif t == "harbour":
        scene.cluster("ship", _i(scene, 1, 2), (WATER,), "water", 45, p_color=0.3)
        scene.cluster("boat", _i(scene, 2, 5), (WATER,), "water", 26, p_color=0.4)
        road = lay.roads[0]
        land = -1.0 if lay.water_side in ("top", "left") else 1.0
        if rng.random() < 0.6:
            scene.row_along_road("warehouse", 0, _i(scene, 1, 2), land * (road.width / 2 + 26),
                                 float(rng.uniform(70, 80)), (CONCRETE,), p_color=0.5)
        else:
            scene.grid_block("storage tank", 1, _i(scene, 2, 3), (CONCRETE,), "concrete")
        cars_in_parking(scene)
        cars_on_roads(scene, 1)
    elif t == "riverside":
        scene.cluster("boat", _i(scene, 1, 4), (WATER,), "water", 22, p_color=0.4)
        if rng.random() < 0.5:
            scene.cluster("boat", _i(scene, 1, 3), (WATER,), "water", 18, p_color=0.4)
        houses(scene, 0.2)
        cars_on_roads(scene, _i(scene, 1, 2))
        trees_along_road(scene, 0.5)
        tree_clusters(scene, _i(scene, 1, 2))
    elif t == "rural":
        if rng.random() < 0.6:  # a farmhouse surrounded by trees
            g = scene.cluster("house", 1, (GRASS, FARMLAND), "farmland", 4)
            if g is not None:
                scene.ring_around("tree", g, _i(scene, 5, 7), (GRASS, FARMLAND), "grass")
        houses(scene, 0.1)
        if lay.water:
            scene.cluster("boat", _i(scene, 1, 3), (WATER,), "water", 22, p_color=0.4)
        cars_on_roads(scene, 1)
        trees_along_road(scene, 0.6)
        tree_clusters(scene, _i(scene, 1, 3))
    elif t == "airport":
        run = lay.roads[0]
        side = 1.0
        scene.row_along_road("airplane", 0, _i(scene, 2, 4), side * (run.width / 2 + 46),
                             float(rng.uniform(58, 66)), (CONCRETE,), across=True, p_color=0.6,
                             context="apron")
        cars_on_roads(scene, 1)
        tree_clusters(scene, _i(scene, 1, 2))
    else:  # park
        scene.cluster("boat", _i(scene, 1, 4), (WATER,), "water", 24, p_color=0.4)
        courts(scene, 0.5)
        cars_in_parking(scene)
        cars_on_roads(scene, 1)
        tree_clusters(scene, _i(scene, 2, 3))


def lay_word(scene: Scene) -> str:
    """Caption word for the industrial ground (concrete yard or bare soil)."""
    return "bare soil" if scene.layout.lc[0, 0] == SOIL else "concrete"
