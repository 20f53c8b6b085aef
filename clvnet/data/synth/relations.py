"""SynthRS spatial relations, all derived from the placed geometry (visible masks and roads).

Relations used by the captions: direction (left/right/above/below, or compass words), ``next to``
(boxes within a few pixels), ``near``, ``between`` (two objects on opposite sides), ``along`` (a
row parallel to and beside a road), ``surrounded by`` (neighbours on at least three sides) and
``on`` (the land cover under an object's pixels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clvnet.data.synth.landcover import LC_NAMES, Road

_DIR_WORDS = {
    "image": {"left": "to the left of", "right": "to the right of", "up": "above", "down": "below"},
    "compass": {"left": "to the west of", "right": "to the east of", "up": "to the north of",
                "down": "to the south of"},
}
_DIR_PLAIN = {
    "image": {"left": "on the left side of the image", "right": "on the right side of the image",
              "up": "in the upper part of the image", "down": "in the lower part of the image"},
    "compass": {"left": "in the western part of the image", "right": "in the eastern part of the image",
                "up": "in the northern part of the image", "down": "in the southern part of the image"},
}


@dataclass
class Geometry:
    """Centroid and tight box ``(x0, y0, x1, y1)`` (exclusive max) of a set of visible masks."""

    cx: float
    cy: float
    box: tuple[float, float, float, float]
    points: np.ndarray  # (n, 2) per-instance centroids


# One instance's centroid ``(cx, cy)`` and tight box ``(x0, y0, x1, y1)`` (exclusive max), image pixels.
InstanceStats = tuple[float, float, int, int, int, int]


def instance_stats(mask: np.ndarray, win: tuple[int, int, int, int]) -> InstanceStats:
    """Centroid and tight box of one instance given as its window mask and window ``(y0, y1, x0, x1)``."""
    wy0, _, wx0, _ = win
    ys, xs = np.nonzero(mask)  # row-major: ys is sorted
    n = len(xs)
    # exact integer sums over n: the same float64 as xs.mean(), without its Python-level overhead
    return (int(xs.sum()) / n + wx0 + 0.5, int(ys.sum()) / n + wy0 + 0.5, int(xs.min()) + wx0, int(ys[0]) + wy0,
            int(xs.max()) + wx0 + 1, int(ys[-1]) + wy0 + 1)


def geometry(masks: list[tuple[np.ndarray, tuple[int, int, int, int]]]) -> Geometry:
    """Geometry of instances given as ``(window mask, (y0, y1, x0, x1))`` pairs."""
    return geometry_of([instance_stats(m, win) for m, win in masks])


def geometry_of(stats: list[InstanceStats]) -> Geometry:
    """Geometry of instances from their :func:`instance_stats`."""
    p = np.asarray([st[:2] for st in stats], dtype=np.float64)
    return Geometry(float(p[:, 0].mean()), float(p[:, 1].mean()),
                    (float(min(st[2] for st in stats)), float(min(st[3] for st in stats)),
                     float(max(st[4] for st in stats)), float(max(st[5] for st in stats))), p)


def _axis(dx: float, dy: float) -> str:
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def direction(a: Geometry, b: Geometry, style: str = "image") -> str:
    """Where ``a`` lies relative to ``b``: e.g. ``"to the left of"`` or ``"to the north of"``."""
    return _DIR_WORDS[style][_axis(a.cx - b.cx, a.cy - b.cy)]


def direction_to_box(a: Geometry, box: tuple[float, float, float, float], style: str = "image") -> str:
    """Where ``a`` lies relative to a box (by the largest separation from its edges)."""
    x0, y0, x1, y1 = box
    gaps = {"left": x0 - a.cx, "right": a.cx - x1, "up": y0 - a.cy, "down": a.cy - y1}
    return _DIR_WORDS[style][max(gaps, key=lambda k: gaps[k])]


def region_word(a: Geometry, size: int, style: str = "image") -> str:
    """Coarse position of ``a`` in the image, e.g. ``"on the left side of the image"``."""
    dx, dy = a.cx - size / 2, a.cy - size / 2
    if max(abs(dx), abs(dy)) < size * 0.12:
        return "near the centre of the image"
    return _DIR_PLAIN[style][_axis(dx, dy)]


def box_gap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Gap in pixels between two boxes (0 when they touch or overlap)."""
    gx = max(a[0] - b[2], b[0] - a[2], 0.0)
    gy = max(a[1] - b[3], b[1] - a[3], 0.0)
    return math.hypot(gx, gy)


def next_to(a: Geometry, b: Geometry, gap: float = 8.0) -> bool:
    """Whether the two boxes are within ``gap`` pixels of each other."""
    return box_gap(a.box, b.box) <= gap


def near(a: Geometry, b: Geometry, dist: float = 70.0) -> bool:
    """Whether the centroids are within ``dist`` pixels."""
    return math.hypot(a.cx - b.cx, a.cy - b.cy) <= dist


def between(c: tuple[float, float], p: tuple[float, float], q: tuple[float, float], max_dist: float = 60.0) -> bool:
    """Whether ``c`` lies between ``p`` and ``q`` (opposite sides, angle > 135 degrees, both close)."""
    v1 = np.subtract(p, c)
    v2 = np.subtract(q, c)
    n1, n2 = float(np.hypot(*v1)), float(np.hypot(*v2))
    if min(n1, n2) < 1e-6 or max(n1, n2) > max_dist:
        return False
    return float(np.dot(v1, v2)) / (n1 * n2) < math.cos(math.radians(135))


def between_candidate(c: tuple[float, float], p: tuple[float, float], max_dist: float = 60.0) -> bool:
    """Whether ``p`` is close enough to ``c`` to be one end of a :func:`between` pair (same distance test).

    ``between(c, p, q)`` is False unless both ends pass, so pairs may be pre-filtered with it.
    """
    n = float(np.hypot(*np.subtract(p, c)))
    return 1e-6 <= n <= max_dist


def surrounded(c: tuple[float, float], pts: np.ndarray, radius: float = 60.0) -> bool:
    """Whether points within ``radius`` of ``c`` occupy at least three of the four quadrants."""
    d = pts - np.asarray(c)
    d = d[np.hypot(d[:, 0], d[:, 1]) <= radius]
    if len(d) < 3:
        return False
    ang = np.mod(np.arctan2(d[:, 1], d[:, 0]) + math.pi / 4, 2 * math.pi)
    return len(set((ang // (math.pi / 2)).astype(int).tolist())) >= 3


def along(g: Geometry, road: Road) -> bool:
    """Whether a row of at least three instances runs parallel to ``road`` close to its edge."""
    pts = g.points
    if len(pts) < 3:
        return False
    c, s = math.cos(road.angle), math.sin(road.angle)
    d = -(pts[:, 0] - road.px) * s + (pts[:, 1] - road.py) * c
    t = (pts[:, 0] - road.px) * c + (pts[:, 1] - road.py) * s
    span_t, span_d = float(np.ptp(t)), float(np.ptp(d))
    return span_t > 3 * max(span_d, 1.0) and float(np.abs(d).mean()) < road.width / 2 + 20


def beside_road(g: Geometry, road: Road, margin: float = 30.0) -> bool:
    """Whether the instances lie on average within ``margin`` pixels of the road's edge."""
    c, s = math.cos(road.angle), math.sin(road.angle)
    d = -(g.points[:, 0] - road.px) * s + (g.points[:, 1] - road.py) * c
    return float(np.abs(d).mean()) < road.width / 2 + margin


def on_landcover(lc: np.ndarray, masks: list[tuple[np.ndarray, tuple[int, int, int, int]]]) -> str:
    """Name of the land-cover class under most of the instances' pixels."""
    counts = np.zeros(len(LC_NAMES), dtype=np.int64)
    for m, (y0, y1, x0, x1) in masks:
        counts += np.bincount(lc[y0:y1, x0:x1][m], minlength=len(LC_NAMES))
    return LC_NAMES[int(counts.argmax())]
