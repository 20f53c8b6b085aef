"""SynthRS land cover: scene layouts (roads, water, parking lots, farmland) and their textures.

A :class:`Layout` holds a land-cover label map (one ``uint8`` class per pixel, see :data:`LC_NAMES`)
plus the vector geometry that the object placer and the caption writer need (road centre lines,
junctions, parking lots, the kind and side of the water body). :func:`render_landcover` turns a
layout into a textured float RGB image. Everything is vectorised numpy over coordinate grids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

GRASS, SOIL, FARMLAND, WATER, ROAD, PARKING, CONCRETE, SAND = range(8)
LC_NAMES = ("grass", "bare soil", "farmland", "water", "road", "parking lot", "concrete", "sand")

# Mean RGB of each land-cover class and the amplitude of its low-frequency texture.
_BASE_RGB = np.array([
    [92, 128, 66],     # grass
    [150, 120, 88],    # bare soil
    [128, 140, 78],    # farmland (re-coloured per parcel)
    [38, 72, 102],     # water
    [96, 96, 100],     # road
    [78, 80, 84],      # parking lot
    [168, 166, 160],   # concrete
    [212, 196, 150],   # sand
], dtype=np.float32)
_TEX_AMP = np.array([0.16, 0.14, 0.08, 0.08, 0.05, 0.05, 0.06, 0.07], dtype=np.float32)
_CROP_RGB = np.array([[118, 150, 70], [170, 160, 92], [86, 118, 56], [140, 112, 80], [150, 168, 96]],
                     dtype=np.float32)
_CROP_RGB_T = np.ascontiguousarray(_CROP_RGB.T)  # one contiguous look-up table per channel
_PIXEL = np.dtype((np.void, 12))  # one float32 RGB pixel as a single item (fast scatter of whole pixels)

SCENE_TYPES = ("residential", "industrial", "harbour", "riverside", "rural", "airport", "park")


@dataclass
class Road:
    """A straight road (or runway): a centre line through ``(px, py)`` with direction ``angle``."""

    px: float
    py: float
    angle: float
    width: float
    kind: str = "road"  # "road" or "runway"

    def frame(self, xx: np.ndarray, yy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(along, across) coordinates of pixel centres in the road's frame."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        dx, dy = xx - self.px, yy - self.py
        return dx * c + dy * s, -dx * s + dy * c

    def across(self, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
        """Signed distance of pixel centres from the centre line (the second part of :meth:`frame`)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return -(xx - self.px) * s + (yy - self.py) * c

    def band(self, size: int, reach: float) -> tuple[slice, slice]:
        """Rows and columns of the image that hold every pixel centre within ``reach`` px of the line.

        Pixel-wise maths on ``grid[band]`` gives the same values as on the whole grid, so callers
        restrict their work to the band without changing any result (a 2-px margin absorbs rounding).
        """
        c, s = math.cos(self.angle), math.sin(self.angle)
        if abs(c) >= abs(s):  # the line as y(x): rows vary, all columns
            ends = [self.py + (x - self.px) * s / c for x in (0.0, float(size))]
            half = reach / abs(c)
            rows = slice(max(0, math.floor(min(ends) - half) - 2), min(size, math.ceil(max(ends) + half) + 2))
            return rows, slice(0, size)
        ends = [self.px + (y - self.py) * c / s for y in (0.0, float(size))]
        half = reach / abs(s)
        return slice(0, size), slice(max(0, math.floor(min(ends) - half) - 2),
                                     min(size, math.ceil(max(ends) + half) + 2))

    def point(self, t: float, d: float) -> tuple[float, float]:
        """Image point at ``t`` along the road and ``d`` across it."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        return self.px + t * c - d * s, self.py + t * s + d * c

    @property
    def orientation(self) -> str:
        """'horizontal' or 'vertical' (the nearer axis)."""
        a = abs(math.cos(self.angle))
        return "horizontal" if a >= math.sqrt(0.5) else "vertical"


@dataclass
class ParkingLot:
    """A parking lot beside ``road``: ``t0..t1`` along it and ``d0..d1`` across (signed) in its frame."""

    road: int
    t0: float
    t1: float
    d0: float
    d1: float


@dataclass
class Layout:
    """Land-cover label map plus the geometry that placement and captions use."""

    size: int
    scene_type: str
    lc: np.ndarray
    roads: list[Road] = field(default_factory=list)
    junctions: list[tuple[float, float]] = field(default_factory=list)
    parking: list[ParkingLot] = field(default_factory=list)
    water: str | None = None   # "river", "lake" or "sea"
    water_side: str = ""       # where the water lies: "left", "top", "centre", ...
    farmland_side: str = ""    # "" when no farmland
    apron: tuple[int, int, int, int] | None = None  # concrete apron (x0, y0, x1, y1) at airports


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(xx, yy)``, each ``(size, size)`` float32 (read-only, cached)."""
    c = np.arange(size, dtype=np.float32) + 0.5
    xx, yy = np.meshgrid(c, c)
    xx.setflags(write=False)
    yy.setflags(write=False)
    return xx, yy


@lru_cache(maxsize=16)
def _interp_matrix(size: int, cells: int) -> np.ndarray:
    """(size, cells + 1) smooth-step interpolation weights from a coarse lattice to pixels."""
    pos = (np.arange(size, dtype=np.float64) + 0.5) / size * cells
    i = np.minimum(pos.astype(int), cells - 1)
    f = pos - i
    f = f * f * (3 - 2 * f)
    m = np.zeros((size, cells + 1), dtype=np.float32)
    m[np.arange(size), i] = 1 - f
    m[np.arange(size), i + 1] = f
    return m


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in about [-1, 1]: a random ``cells``-lattice interpolated to ``(size, size)``."""
    m = _interp_matrix(size, cells)
    g = rng.standard_normal((cells + 1, cells + 1), dtype=np.float32)
    return (m @ g @ m.T) * 0.7


def _side_name(frac: float, axis: str) -> str:
    names = ("top", "middle", "bottom") if axis == "y" else ("left", "centre", "right")
    return names[0] if frac < 0.38 else names[2] if frac > 0.62 else names[1]


# --------------------------------------------------------------------------- layout builders
def _add_road(layout: Layout, rng: np.random.Generator, orient: str, kind: str = "road",
              pos: float | None = None) -> Road:
    s = layout.size
    xx, yy = grid(s)
    tilt = float(rng.uniform(-0.2, 0.2)) if rng.random() < 0.4 else 0.0
    p = float(pos if pos is not None else rng.uniform(0.25, 0.75) * s)
    width = float(rng.uniform(30, 40) if kind == "runway" else rng.uniform(14, 22))
    if orient == "horizontal":
        road = Road(s / 2, p, tilt, width, kind)
    else:
        road = Road(p, s / 2, -math.pi / 2 + tilt, width, kind)  # +across = +x (right)
    band = road.band(s, width / 2)
    d = road.across(xx[band], yy[band])
    layout.lc[band][np.abs(d) < width / 2] = ROAD
    layout.roads.append(road)
    return road


def _junction(a: Road, b: Road) -> tuple[float, float] | None:
    ca, sa, cb, sb = math.cos(a.angle), math.sin(a.angle), math.cos(b.angle), math.sin(b.angle)
    det = ca * (-sb) - sa * (-cb)
    if abs(det) < 1e-6:
        return None
    rx, ry = b.px - a.px, b.py - a.py
    t = (rx * (-sb) - ry * (-cb)) / det
    return a.px + t * ca, a.py + t * sa


def _add_water(layout: Layout, rng: np.random.Generator, kind: str) -> None:
    s = layout.size
    xx, yy = grid(s)
    lc = layout.lc
    if kind == "river":
        vertical = rng.random() < 0.5
        c = float(rng.uniform(0.2, 0.8) * s)
        w = float(rng.uniform(34, 56))
        t, u = (yy, xx) if vertical else (xx, yy)
        centre = c + rng.uniform(6, 18) * np.sin(t * rng.uniform(0.01, 0.025) + rng.uniform(0, 6.3))
        lc[np.abs(u - centre) < w / 2] = WATER
        layout.water_side = _side_name(c / s, "x" if vertical else "y")
        layout.water_side = ("vertical " if vertical else "horizontal ") + layout.water_side
    elif kind == "lake":
        cx, cy = rng.uniform(0.3, 0.7, 2) * s
        a, b = rng.uniform(0.18, 0.3, 2) * s
        wob = smooth_noise(rng, s, 4) * 0.25
        lc[((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 + wob < 1] = WATER
        layout.water_side = _side_name(cy / s, "y") + " " + _side_name(cx / s, "x")
    else:  # sea along one side, with a sandy beach
        side = str(rng.choice(["top", "bottom", "left", "right"]))
        frac = float(rng.uniform(0.3, 0.45))
        t, u = (xx, yy) if side in ("top", "bottom") else (yy, xx)
        shore = frac * s + rng.uniform(3, 10) * np.sin(t * rng.uniform(0.01, 0.03) + rng.uniform(0, 6.3))
        depth = u if side in ("top", "left") else s - u
        beach = float(rng.uniform(6, 12))
        lc[(depth < shore + beach) & (lc != ROAD)] = SAND
        lc[depth < shore] = WATER
        layout.water_side = side
    layout.water = kind


def _add_farmland(layout: Layout, rng: np.random.Generator) -> None:
    s = layout.size
    xx, yy = grid(s)
    side = str(rng.choice(["top", "bottom", "left", "right"]))
    frac = rng.uniform(0.4, 0.6) * s
    region = {"top": yy < frac, "bottom": yy > s - frac, "left": xx < frac, "right": xx > s - frac}[side]
    layout.lc[region & (layout.lc == GRASS)] = FARMLAND
    layout.farmland_side = side


def _add_parking(layout: Layout, rng: np.random.Generator, road_idx: int) -> None:
    s = layout.size
    xx, yy = grid(s)
    road = layout.roads[road_idx]
    side = 1.0 if rng.random() < 0.5 else -1.0
    d_near = road.width / 2 + float(rng.uniform(2, 6))
    depth = float(rng.choice([22.0, 44.0]))
    d0, d1 = (d_near, d_near + depth) if side > 0 else (-d_near - depth, -d_near)
    length = min(float(rng.uniform(60, 110)), s - 40.0)
    t0 = float(rng.uniform(-s / 2 + 10, s / 2 - 10 - length))
    lot = ParkingLot(road_idx, t0, t0 + length, d0, d1)
    corners = [road.point(t, d) for t in (lot.t0, lot.t1) for d in (lot.d0, lot.d1)]
    xs, ys = [p[0] for p in corners], [p[1] for p in corners]
    # the lot lies inside its corners' bounding box: work there only (same pixels, same values)
    box = (slice(min(s, max(0, math.floor(min(ys)) - 2)), min(s, max(0, math.ceil(max(ys)) + 2))),
           slice(min(s, max(0, math.floor(min(xs)) - 2)), min(s, max(0, math.ceil(max(xs)) + 2))))
    t, d = road.frame(xx[box], yy[box])
    region = (t > lot.t0) & (t < lot.t1) & (d > lot.d0) & (d < lot.d1)
    under = layout.lc[box]
    if np.any(under[region] == WATER) or np.any(under[region] == ROAD) or not region.any():
        return
    cx, cy = road.point((lot.t0 + lot.t1) / 2, (lot.d0 + lot.d1) / 2)
    if not (8 < cx < s - 8 and 8 < cy < s - 8):
        return
    under[region] = PARKING
    layout.parking.append(lot)


def build_layout(rng: np.random.Generator, size: int, scene_type: str) -> Layout:
    """Sample the land-cover layout of one scene of the given type (see :data:`SCENE_TYPES`)."""
    if scene_type not in SCENE_TYPES:
        raise ValueError(f"unknown scene type {scene_type!r}; expected one of {SCENE_TYPES}")
    base = {"industrial": CONCRETE, "harbour": CONCRETE}.get(scene_type, GRASS)
    if scene_type == "industrial" and rng.random() < 0.4:
        base = SOIL
    lay = Layout(size, scene_type, np.full((size, size), base, dtype=np.uint8))
    orient = str(rng.choice(["horizontal", "vertical"]))
    other = "vertical" if orient == "horizontal" else "horizontal"
    if scene_type in ("rural", "riverside") and rng.random() < 0.6:
        _add_farmland(lay, rng)
    if scene_type == "harbour":
        _add_water(lay, rng, "sea")
        side = lay.water_side
        orient = "horizontal" if side in ("top", "bottom") else "vertical"
        pos = size * (0.75 if side in ("top", "left") else 0.25)
        _add_road(lay, rng, orient, pos=pos + rng.uniform(-10, 10))
    elif scene_type == "riverside":
        _add_water(lay, rng, "river")
        _add_road(lay, rng, "vertical" if lay.water_side.startswith("horizontal") else "horizontal")
    elif scene_type == "park":
        _add_water(lay, rng, "lake")
        _add_road(lay, rng, orient, pos=float(rng.choice([0.15, 0.85]) * size))
    elif scene_type == "airport":
        run = _add_road(lay, rng, orient, kind="runway", pos=float(rng.uniform(0.2, 0.3) * size))
        xx, yy = grid(size)
        d = run.across(xx, yy)
        apron = (d > run.width / 2 + 14) & (d < run.width / 2 + 90) & (lay.lc != ROAD)
        lay.lc[apron] = CONCRETE
        _add_road(lay, rng, orient, pos=float(rng.uniform(0.85, 0.9) * size))
    else:
        if scene_type == "rural" and rng.random() < 0.4:
            _add_water(lay, rng, "lake")
        _add_road(lay, rng, orient)
        if scene_type in ("residential", "industrial") and rng.random() < 0.7:
            _add_road(lay, rng, other)
            j = _junction(lay.roads[0], lay.roads[1])
            if j is not None and 40 < j[0] < size - 40 and 40 < j[1] < size - 40:
                lay.junctions.append(j)
    p_park = {"industrial": 0.7, "park": 0.6, "residential": 0.3, "airport": 0.0, "harbour": 0.4}
    road_ids = [i for i, r in enumerate(lay.roads) if r.kind == "road"]
    if road_ids and rng.random() < p_park.get(scene_type, 0.1):
        _add_parking(lay, rng, road_ids[int(rng.integers(len(road_ids)))])
    return lay


# --------------------------------------------------------------------------- textures
@lru_cache(maxsize=4)
def noise_bank(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed (2*size, 2*size) medium-scale and per-pixel noise fields; scenes view random crops.

    Generated once per size from a fixed seed, so crops are deterministic and free (views).
    """
    rng = np.random.default_rng(20260)
    mid = smooth_noise(rng, 2 * size, 42)
    fine = rng.standard_normal((2 * size, 2 * size), dtype=np.float32)
    mid.setflags(write=False)
    fine.setflags(write=False)
    return mid, fine


def render_landcover(rng: np.random.Generator, lay: Layout) -> np.ndarray:
    """Texture a layout: ``(size, size, 3)`` float32 RGB in about [0, 255]."""
    s = lay.size
    xx, yy = grid(s)
    lc = lay.lc
    base = _BASE_RGB * rng.uniform(0.9, 1.1, (len(_BASE_RGB), 1)).astype(np.float32)
    mid, fine = noise_bank(s)
    oy, ox, fy, fx = (int(v) for v in rng.integers(0, s, 4))
    tex = smooth_noise(rng, s, 5)
    tex *= 0.65
    tex += 0.35 * mid[oy:oy + s, ox:ox + s]
    # look-ups by land-cover class: mode="wrap" skips numpy's per-index bounds check (classes < 8)
    tex *= np.take(_TEX_AMP, lc, mode="wrap")
    tex += 1.0
    tex += fine[fy:fy + s, fx:fx + s] * np.float32(0.025)
    # img[..., ch] = base[lc, ch] * tex, one channel at a time: the same float32 products as a
    # (H, W, 3) take times tex[..., None], without numpy's slow broadcast over a length-3 last axis
    img = np.empty((s, s, 3), dtype=np.float32)
    for ch, lut in enumerate(np.ascontiguousarray(base.T)):
        np.multiply(np.take(lut, lc, mode="wrap"), tex, out=img[..., ch])
    if lay.farmland_side:
        _texture_farmland(rng, lay, img)
    for road in lay.roads:
        c, sn = math.cos(road.angle), math.sin(road.angle)
        band = road.band(s, road.width / 2)  # every marking lies within the road
        d = (yy[band] - road.py) * c - (xx[band] - road.px) * sn
        if road.kind == "runway":
            sel = np.abs(d) < 1.0
            ys, xs = np.nonzero(sel)
            ys += band[0].start
            xs += band[1].start
            t = (xs + 0.5 - road.px) * c + (ys + 0.5 - road.py) * sn
            keep = np.mod(t, 24) < 12
            img[ys[keep], xs[keep]] = (210, 210, 200)
            img[band][np.abs(np.abs(d) - road.width / 2 + 3) < 0.8] = (210, 210, 200)
        else:
            ys, xs = np.nonzero(np.abs(d) < 0.8)
            ys += band[0].start
            xs += band[1].start
            t = (xs + 0.5 - road.px) * c + (ys + 0.5 - road.py) * sn
            keep = (np.mod(t, 14) < 7) & (lc[ys, xs] == ROAD)
            img[ys[keep], xs[keep]] = (210, 210, 200)
    if lay.parking:
        ys, xs = np.nonzero(lc == PARKING)
        for lot in lay.parking:
            road = lay.roads[lot.road]
            c, sn = math.cos(road.angle), math.sin(road.angle)
            dx, dy = xs + 0.5 - road.px, ys + 0.5 - road.py
            t, d = dx * c + dy * sn, dy * c - dx * sn
            inside = (t > lot.t0) & (t < lot.t1) & (d > lot.d0) & (d < lot.d1)
            line = inside & ((np.mod(t - lot.t0, 10) < 0.9)
                             | ((np.abs(d - (lot.d0 + lot.d1) / 2) < 0.7) & (lot.d1 - lot.d0 > 30)))
            img[ys[line], xs[line]] = (200, 200, 196)
    return img


def _mod_below(u: np.ndarray, q: np.ndarray, fq: np.ndarray, p: float, limit: float) -> np.ndarray:
    """``np.mod(u, p) < limit`` for float32 ``u``, given ``q = u / p`` and ``fq = floor(q)``.

    ``(q - fq) * p`` is the remainder to within 1e-4 px here (``|u| < 2**12``), except that ``fq`` is
    one too low when ``u / p`` sits just above an integer; so ``np.mod`` (slow: a scalar fmod per
    pixel) runs only on pixels whose estimate is below ``limit`` or near ``p``, plus a 0.01-px
    margin. The result is the same array as computing ``np.mod`` everywhere.
    """
    est = (q - fq) * np.float32(p)
    cand = (est < np.float32(limit + 0.01)) | (est > np.float32(p - 0.01))
    out = np.zeros(u.shape, dtype=bool)
    out[cand] = np.mod(u[cand], p) < limit
    return out


def _texture_farmland(rng: np.random.Generator, lay: Layout, img: np.ndarray) -> None:
    ys, xs = np.nonzero(lay.lc == FARMLAND)
    ang = float(rng.uniform(-0.3, 0.3))
    c, s = math.cos(ang), math.sin(ang)
    x, y = xs.astype(np.float32) + 0.5, ys.astype(np.float32) + 0.5
    u, v = x * c + y * s, y * c - x * s
    pw, ph = (float(p) for p in rng.uniform(36, 70, 2))
    qu, qv = u / pw, v / ph
    fu, fv = np.floor(qu), np.floor(qv)
    iu = fu.astype(np.int32) % 8
    iv = fv.astype(np.int32) % 8
    table = rng.integers(0, len(_CROP_RGB), (8, 8))
    flip = rng.random((8, 8)) < 0.5
    cell = iu * 8 + iv
    coord = np.where(np.take(flip, cell), u, v)
    shade = np.where(np.sin(coord * 1.3) > 0.2, np.float32(0.88), np.float32(1.0))
    shade *= 1 + 0.05 * rng.standard_normal(len(xs), dtype=np.float32)
    crop = np.take(table, cell)
    col = np.empty((len(xs), 3), dtype=np.float32)  # _CROP_RGB[crop] * shade[:, None], channel by channel
    for ch, lut in enumerate(_CROP_RGB_T):
        np.multiply(np.take(lut, crop), shade, out=col[:, ch])
    border = _mod_below(u, qu, fu, pw, 1.2) | _mod_below(v, qv, fv, ph, 1.2)
    col[border] = (150, 130, 100)
    # img[ys, xs] = col, moving each 12-byte pixel as one item
    np.put(img.reshape(-1, 3).view(_PIXEL).reshape(-1), ys * img.shape[1] + xs, col.view(_PIXEL).reshape(-1))
