"""SynthRS object placement: context-aware groups of objects painted onto a textured layout.

A :class:`Scene` keeps an instance-id map (``0`` = background). Every object is rasterised in its
own window, checked against its required land cover (a car must lie on a road or parking lot, a
boat on water, ...) and against the objects already placed, then painted with a small cast shadow.
Objects are placed in *groups* (a row of parked cars, a cluster of tanks, trees along a road); a
group is the unit the box selection and the captions work with. Stored masks are the visible
pixels: :meth:`Scene.visible_mask` reads them back from the id map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from clvnet.data.synth.landcover import Layout
from clvnet.data.synth.objects import Appearance, probe_points, rasterise, sample_appearance, window
from clvnet.data.synth.relations import InstanceStats, instance_stats


@lru_cache(maxsize=64)
def _lut(allowed: tuple[int, ...]) -> np.ndarray:
    lut = np.zeros(256, dtype=bool)
    lut[list(allowed)] = True
    return lut


_SHADOW = {"house", "warehouse", "tree", "ship", "airplane", "tennis court"}


@dataclass
class SceneObject:
    """One placed instance (window coordinates are ``(y0, y1, x0, x1)``)."""

    id: int
    cls: str
    app: Appearance
    cx: float
    cy: float
    angle: float
    win: tuple[int, int, int, int]
    group: int = -1


@dataclass
class Group:
    """Objects placed together: same class, one arrangement and one context."""

    cls: str
    ids: list[int]
    kind: str           # "row", "cluster", "single", "ring"
    context: str        # land-cover word for the captions: "road", "parking lot", "water", ...
    color: str | None   # shared colour name, or None when the colours differ
    road: int = -1      # road index for rows along a road


@dataclass
class Scene:
    """A layout, its image and the objects painted on it."""

    layout: Layout
    img: np.ndarray
    rng: np.random.Generator
    idmap: np.ndarray = field(init=False)
    objects: list[SceneObject] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    shadow: tuple[int, int] = (2, 2)
    # visible masks and their stats, read back once per object; emptied whenever the id map changes
    _visible: dict[int, tuple[np.ndarray, tuple[int, int, int, int]]] = field(default_factory=dict, repr=False)
    _stats: dict[int, InstanceStats] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        s = self.layout.size
        self.idmap = np.zeros((s, s), dtype=np.int16)

    # ------------------------------------------------------------------ primitives
    def place(self, cls: str, cx: float, cy: float, angle: float, app: Appearance | None = None,
              allowed: tuple[int, ...] | None = None, min_allowed: float = 1.0, overlap: float = 0.0) -> int | None:
        """Place one object if it fits; returns its index in :attr:`objects` or None.

        ``allowed`` lists land-cover classes the object must lie on (at least ``min_allowed`` of its
        pixels); ``overlap`` is the share of its pixels that may cover earlier objects.
        """
        app = app or sample_appearance(self.rng, cls)
        s = self.layout.size
        win = window(app, cx, cy)
        y0, y1, x0, x1 = win
        if y0 < 1 or x0 < 1 or y1 > s - 1 or x1 > s - 1:
            return None
        lut = None if allowed is None else _lut(allowed)
        lc, idmap = self.layout.lc, self.idmap
        for k, (py, px) in enumerate(probe_points(app, cx, cy, angle)):  # cheap early rejects
            if lut is not None and min_allowed >= 0.9 and not lut[lc[py, px]]:
                return None
            if idmap[py, px] != 0 and (overlap == 0.0 or (k == 0 and overlap < 0.5)):
                return None
        mask, rgb = rasterise(app, cx, cy, angle, win)
        n = int(np.count_nonzero(mask))
        if n < 20:
            return None
        if lut is not None:
            under = self.layout.lc[y0:y1, x0:x1][mask]
            if int(np.count_nonzero(lut[under])) < min_allowed * n:
                return None
        ids = self.idmap[y0:y1, x0:x1]
        if np.count_nonzero(ids[mask]) > overlap * n:
            return None
        oid = len(self.objects) + 1
        if cls in _SHADOW:
            self._cast_shadow(win, mask)
        np.copyto(self.img[y0:y1, x0:x1], rgb, where=mask[..., None])
        ids[mask] = oid
        self._visible.clear()
        self._stats.clear()
        self.objects.append(SceneObject(oid, cls, app, cx, cy, angle, win))
        return oid - 1

    def _cast_shadow(self, win: tuple[int, int, int, int], mask: np.ndarray) -> None:
        sx, sy = self.shadow
        y0, y1, x0, x1 = win
        s = self.layout.size
        ty0, ty1, tx0, tx1 = max(y0 + sy, 0), min(y1 + sy, s), max(x0 + sx, 0), min(x1 + sx, s)
        m = mask[ty0 - y0 - sy:ty1 - y0 - sy, tx0 - x0 - sx:tx1 - x0 - sx]
        self.img[ty0:ty1, tx0:tx1][m] *= 0.6

    def add_group(self, cls: str, idx: list[int], kind: str, context: str, road: int = -1) -> int | None:
        """Register placed objects as a group; returns the group index (None if empty)."""
        if not idx:
            return None
        colors = {self.objects[i].app.color for i in idx}
        g = Group(cls, list(idx), kind if len(idx) > 1 else "single", context,
                  colors.pop() if len(colors) == 1 else None, road)
        for i in idx:
            self.objects[i].group = len(self.groups)
        self.groups.append(g)
        return len(self.groups) - 1

    def visible_mask(self, i: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """Visible pixels of object ``i`` within its window (later objects occlude earlier ones; read-only)."""
        got = self._visible.get(i)
        if got is None:
            o = self.objects[i]
            y0, y1, x0, x1 = o.win
            m = self.idmap[y0:y1, x0:x1] == o.id
            m.setflags(write=False)
            got = self._visible[i] = (m, o.win)
        return got

    def stats(self, i: int) -> InstanceStats:
        """Centroid and tight box of object ``i``'s visible pixels (:func:`relations.instance_stats`)."""
        got = self._stats.get(i)
        if got is None:
            got = self._stats[i] = instance_stats(*self.visible_mask(i))
        return got

    # ------------------------------------------------------------------ group placers
    def _app(self, cls: str, color: str | None) -> Appearance:
        app = sample_appearance(self.rng, cls)
        if color is not None:
            app = Appearance(app.family, app.length, app.width, color, color if app.family == "vehicle" else app.color2,
                             app.detail)
        return app

    def _shared_color(self, cls: str, p: float) -> str | None:
        return sample_appearance(self.rng, cls).color if self.rng.random() < p else None

    def row_along_road(self, cls: str, road_i: int, n: int, offset: float, spacing: float,
                       allowed: tuple[int, ...], across: bool = False, p_color: float = 0.6,
                       context: str = "road", kind: str = "row") -> int | None:
        """A row of ``n`` objects parallel to road ``road_i`` at signed ``offset`` from its centre."""
        road = self.layout.roads[road_i]
        s = self.layout.size
        color = self._shared_color(cls, p_color)
        angle = road.angle + (math.pi / 2 if across else 0.0)
        if cls in ("car", "boat") and offset < 0 and not across:
            angle += math.pi  # cars keep to their lane's direction
        n = min(n, int((s - 40) // spacing) + 1)
        placed: list[int] = []
        for _ in range(3 if n > 0 else 0):  # a few start positions; keep the first that places anything
            t = float(self.rng.uniform(-s / 2 + 20, s / 2 - 20 - spacing * (n - 1)))
            for k in range(n):
                x, y = road.point(t + k * spacing + float(self.rng.uniform(-1.5, 1.5)), offset)
                i = self.place(cls, x, y, angle + float(self.rng.normal(0, 0.03)), self._app(cls, color), allowed)
                if i is not None:
                    placed.append(i)
            if placed:
                break
        return self.add_group(cls, placed, kind, context, road_i)

    def cluster(self, cls: str, n: int, allowed: tuple[int, ...], context: str, radius: float,
                p_color: float = 0.6, tries: int = 40, center: tuple[float, float] | None = None,
                aligned: bool = True, overlap: float = 0.0) -> int | None:
        """A loose cluster of up to ``n`` objects on ``allowed`` land cover around a sampled centre."""
        if center is None:
            center = self.sample_point(allowed, margin=radius * 0.5 + 10)
            if center is None:
                return None
        color = self._shared_color(cls, p_color)
        angle0 = float(self.rng.uniform(0, math.pi))
        placed: list[int] = []
        for _ in range(min(tries, 4 * n + 4)):
            if len(placed) >= n:
                break
            r, a = radius * math.sqrt(self.rng.random()), self.rng.uniform(0, 2 * math.pi)
            ang = angle0 + (float(self.rng.normal(0, 0.05)) if aligned else float(self.rng.uniform(0, math.pi)))
            i = self.place(cls, center[0] + r * math.cos(a), center[1] + r * math.sin(a), ang,
                           self._app(cls, color), allowed, overlap=overlap)
            if i is not None:
                placed.append(i)
        return self.add_group(cls, placed, "cluster", context)

    def grid_block(self, cls: str, rows: int, cols: int, allowed: tuple[int, ...], context: str,
                   p_color: float = 0.8) -> int | None:
        """A regular ``rows x cols`` block (storage-tank farms, tennis-court complexes)."""
        color = self._shared_color(cls, p_color)
        app0 = self._app(cls, color)
        pitch_x = app0.length + float(self.rng.uniform(4, 10))
        pitch_y = app0.width + float(self.rng.uniform(4, 10))
        c = self.sample_point(allowed, margin=max(pitch_x * cols, pitch_y * rows) / 2 + 6)
        if c is None:
            return None
        placed = []
        for r in range(rows):
            for k in range(cols):
                x = c[0] + (k - (cols - 1) / 2) * pitch_x
                y = c[1] + (r - (rows - 1) / 2) * pitch_y
                app = Appearance(app0.family, app0.length, app0.width, app0.color, app0.color2,
                                 float(self.rng.random()))
                i = self.place(cls, x, y, 0.0, app, allowed, min_allowed=0.9)
                if i is not None:
                    placed.append(i)
        return self.add_group(cls, placed, "row" if rows == 1 else "cluster", context)

    def ring_around(self, cls: str, target: int, n: int, allowed: tuple[int, ...], context: str) -> int | None:
        """``n`` objects (usually trees) on a ring around group ``target``."""
        pts = np.array([[self.objects[i].cx, self.objects[i].cy] for i in self.groups[target].ids])
        cx, cy = pts.mean(0)
        ext = max(self.objects[i].app.radius for i in self.groups[target].ids)
        rad = float(np.abs(pts - [cx, cy]).max()) + ext + 9
        a0 = float(self.rng.uniform(0, 2 * math.pi))
        placed = []
        for k in range(n):
            a = a0 + 2 * math.pi * k / n + float(self.rng.normal(0, 0.15))
            i = self.place(cls, cx + rad * math.cos(a), cy + rad * math.sin(a), 0.0, None, allowed, overlap=0.2)
            if i is not None:
                placed.append(i)
        return self.add_group(cls, placed, "ring", context)

    def sample_point(self, allowed: tuple[int, ...], margin: float) -> tuple[float, float] | None:
        """A random pixel centre on ``allowed`` land cover, at least ``margin`` from the border."""
        s = self.layout.size
        m = int(margin)
        if 2 * m >= s - 2:
            return None
        sub = self.layout.lc[m:s - m, m:s - m]
        for _ in range(30):
            y, x = self.rng.integers(0, s - 2 * m, 2)
            if sub[y, x] in allowed and self.idmap[y + m, x + m] == 0:
                return float(x + m) + 0.5, float(y + m) + 0.5
        return None

