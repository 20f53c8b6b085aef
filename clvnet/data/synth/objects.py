"""SynthRS objects: classes, appearance sampling and sprite rasterisation.

Each object class maps to an appearance *family*. Visual twins share one family, so they are
drawn from ONE appearance distribution by ONE renderer and can be told apart only by their
context: ``car`` and ``boat`` (family ``vehicle``: on a road / parking lot vs on water), and
``storage tank`` and ``roundabout`` (family ``disc``: on an industrial yard vs at a road junction).
:func:`sample_appearance` never looks at the class beyond its family, which the tests check.

:func:`rasterise` draws one sprite into a small window: it returns the exact boolean shape mask
(the instance mask before occlusion) and the sprite's RGB values inside the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CLASSES = ("car", "boat", "ship", "house", "warehouse", "tree", "swimming pool", "tennis court",
           "storage tank", "roundabout", "airplane")
PLURALS = {"car": "cars", "boat": "boats", "ship": "ships", "house": "houses", "warehouse": "warehouses",
           "tree": "trees", "swimming pool": "swimming pools", "tennis court": "tennis courts",
           "storage tank": "storage tanks", "roundabout": "roundabouts", "airplane": "airplanes"}
FAMILY = {"car": "vehicle", "boat": "vehicle", "storage tank": "disc", "roundabout": "disc"}
TWINS = (("car", "boat"), ("storage tank", "roundabout"))

COLORS: dict[str, tuple[int, int, int]] = {
    "white": (230, 230, 226), "black": (36, 36, 40), "grey": (132, 134, 138), "red": (178, 42, 38),
    "blue": (44, 76, 172), "green": (52, 118, 62), "yellow": (222, 192, 52), "orange": (222, 124, 44),
    "brown": (122, 82, 52),
}
_TREE_RGB = np.array([46, 86, 40], dtype=np.float32)
_POOL_RGB = np.array([70, 170, 210], dtype=np.float32)


@dataclass(frozen=True)
class Appearance:
    """What an instance looks like: family, size in pixels, named colour(s) and a shape parameter."""

    family: str
    length: float
    width: float
    color: str
    color2: str
    detail: float

    @property
    def radius(self) -> float:
        """Half-extent of the sprite's bounding window (any rotation)."""
        if self.family == "airplane":
            return 0.5 * self.length + 1.5
        return 0.5 * math.hypot(self.length, self.width) + 1.5


def family_of(cls: str) -> str:
    """The appearance family of a class (its own name unless it is a visual twin)."""
    if cls not in PLURALS:
        raise ValueError(f"unknown object class {cls!r}; expected one of {CLASSES}")
    return FAMILY.get(cls, cls)


def _pick(rng: np.random.Generator, names: tuple[str, ...], p: tuple[float, ...]) -> str:
    u = rng.random() * sum(p)
    for name, w in zip(names, p):
        u -= w
        if u < 0:
            return name
    return names[-1]


def sample_appearance(rng: np.random.Generator, cls: str) -> Appearance:
    """Sample an appearance for ``cls``; twins (same family) share the distribution exactly."""
    fam = family_of(cls)
    u = rng.random(3)
    if fam == "vehicle":
        color = _pick(rng, ("white", "black", "grey", "red", "blue", "yellow", "green"),
                      (0.26, 0.18, 0.2, 0.12, 0.12, 0.06, 0.06))
        return Appearance(fam, 12 + 5 * u[0], 6 + 2 * u[1], color, color, u[2])
    if fam == "disc":
        color = _pick(rng, ("white", "grey"), (0.6, 0.4))
        inner = _pick(rng, ("green", "grey", "white"), (0.4, 0.3, 0.3))
        d = 20 + 14 * u[0]
        return Appearance(fam, d, d, color, inner, 0.2 + 0.15 * u[2])
    if fam == "ship":
        color = _pick(rng, ("white", "grey", "red", "blue", "black"), (0.3, 0.25, 0.15, 0.15, 0.15))
        length = 36 + 28 * u[0]
        return Appearance(fam, length, length * (0.22 + 0.06 * u[1]), color, "white", u[2])
    if fam == "house":
        color = _pick(rng, ("red", "brown", "grey", "white"), (0.35, 0.25, 0.25, 0.15))
        return Appearance(fam, 16 + 10 * u[0], 12 + 6 * u[1], color, color, u[2])
    if fam == "warehouse":
        color = _pick(rng, ("white", "grey", "blue"), (0.4, 0.4, 0.2))
        return Appearance(fam, 40 + 24 * u[0], 24 + 12 * u[1], color, color, u[2])
    if fam == "tree":
        r = 10 + 7 * u[0]
        return Appearance(fam, r, r, "green", "green", u[2])
    if fam == "swimming pool":
        return Appearance(fam, 14 + 8 * u[0], 8 + 4 * u[1], "blue", "white", u[2])
    if fam == "tennis court":
        color = _pick(rng, ("green", "blue", "red"), (0.45, 0.35, 0.2))
        length = 34 + 6 * u[0]
        return Appearance(fam, length, length * 0.47, color, "white", u[2])
    # airplane
    color = _pick(rng, ("white", "grey"), (0.7, 0.3))
    return Appearance(fam, 40 + 16 * u[0], 0.12 * (40 + 16 * u[0]), color, color, u[2])


def probe_points(app: Appearance, cx: float, cy: float, angle: float) -> list[tuple[int, int]]:
    """Pixel ``(y, x)`` of the centre and of four points near the sprite's corners (cheap pre-checks)."""
    c, s = math.cos(angle), math.sin(angle)
    a, b = 0.38 * app.length, 0.38 * app.width
    pts = [(cx, cy)] + [(cx + su * a * c - sv * b * s, cy + su * a * s + sv * b * c)
                        for su, sv in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    return [(int(y), int(x)) for x, y in pts]


def window(app: Appearance, cx: float, cy: float) -> tuple[int, int, int, int]:
    """Integer window ``(y0, y1, x0, x1)`` that contains the sprite at any rotation."""
    r = app.radius
    return math.floor(cy - r), math.ceil(cy + r), math.floor(cx - r), math.ceil(cx + r)


def rasterise(app: Appearance, cx: float, cy: float, angle: float,
              win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Draw a sprite inside ``win``: returns ``(mask (h, w) bool, rgb (h, w, 3) float32)``.

    ``angle`` is the direction of the sprite's long axis in radians (image coordinates, y down).
    """
    mask, rgb = _draw(app, cx, cy, angle, win)
    return mask, rgb.astype(np.float32, copy=False)


def _superellipse(u: np.ndarray, v: np.ndarray, a: float, b: float, p: int) -> np.ndarray:
    """``(u / a) ** p + (v / b) ** p < 1`` for an even ``p``, raising to the power only where it can hold.

    Where ``|u| >= a`` or ``|v| >= b`` one term is at least 1 and the test fails, so the power (the
    dearest op of a sprite) runs on the pixels of the inner box only; their values are the same as
    on the whole window, so the mask is bit-for-bit the full-window expression.
    """
    inner = (np.abs(u) < np.float32(a)) & (np.abs(v) < np.float32(b))  # float32, as ``u / a`` rounds ``a``
    out = np.zeros(inner.shape, dtype=bool)
    out[inner] = (u[inner] / a) ** p + (v[inner] / b) ** p < 1
    return out


def _draw(app: Appearance, cx: float, cy: float, angle: float,
          win: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    y0, y1, x0, x1 = win
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    a, b = app.length / 2, app.width / 2
    base = np.asarray(COLORS.get(app.color, (128, 128, 128)), dtype=np.float32)
    fam = app.family
    if fam == "disc":
        r = np.sqrt(dx * dx + dy * dy) / a
        mask = r < 1
        inner = np.asarray(COLORS[app.color2], dtype=np.float32)
        ring = r > 1 - app.detail
        rgb = np.where(ring[..., None], base, inner * 0.9) * (1.0 - 0.1 * r)[..., None]
        line = np.abs(r - (1 - app.detail)) < 0.05
        rgb[line] *= 0.6
        return mask, rgb
    if fam == "tree":
        ang = np.arctan2(dy, dx)
        rr = np.sqrt(dx * dx + dy * dy) / (a * (1 + 0.08 * np.sin(5 * ang + 6.28 * app.detail)))
        mask = rr < 1
        shade = 1.15 - 0.45 * rr + 0.12 * np.sin(dx * 1.7) * np.sin(dy * 1.9)
        return mask, _TREE_RGB * shade[..., None]
    # the other families are drawn in the sprite's own frame (discs and trees are round)
    c, s = math.cos(angle), math.sin(angle)
    u = dx * c + dy * s          # along the long axis
    v = -dx * s + dy * c         # across it
    if fam == "vehicle":
        mask = _superellipse(u, v, a, b, 4)
        av = np.abs(v)
        cab = (u > a * (0.05 + 0.2 * app.detail)) & (u < a * (0.45 + 0.2 * app.detail)) & (av < 0.8 * b)
        shade = np.where(cab, 0.45, 1.0) * (1.0 - 0.12 * av / b)
        return mask, base * shade[..., None]
    if fam == "ship":
        bow = 0.55 * a
        half = np.where(u > bow, b * (1 - (u - bow) / (a - bow)), b)
        mask = (np.abs(u) < a) & (np.abs(v) < half)
        sup = (u > -0.8 * a) & (u < -0.45 * a) & (np.abs(v) < 0.7 * b)
        rgb = np.where(sup[..., None], np.asarray(COLORS["white"], np.float32) * 0.95, base)
        return mask, rgb * (1.0 - 0.15 * np.abs(v) / b)[..., None]
    if fam in ("house", "warehouse"):
        mask = (np.abs(u) < a) & (np.abs(v) < b)
        if fam == "house":
            shade = np.where(v > 0, 0.78, 1.0)
        else:
            shade = np.where(np.mod(u, 6.0) < 1.0, 0.82, 1.0) * np.where(np.abs(v) < 0.8, 0.9, 1.0)
        return mask, base * shade[..., None]
    if fam == "swimming pool":
        mask = _superellipse(u, v, a, b, 6)
        rim = ~_superellipse(u, v, a - 1.5, b - 1.5, 6)
        rgb = np.where(rim[..., None], np.asarray(COLORS["white"], np.float32), _POOL_RGB * (1 + 0.1 * u / a)[..., None])
        return mask, rgb
    if fam == "tennis court":
        mask = (np.abs(u) < a) & (np.abs(v) < b)
        au, av = np.abs(u), np.abs(v)
        lines = ((np.abs(au - (a - 2.5)) < 0.6) & (av < b - 2.5)) | ((np.abs(av - (b - 2.5)) < 0.6) & (au < a - 2.5))
        lines |= ((au < 0.6) | (np.abs(au - 0.5 * a) < 0.5)) & (av < b - 2.5)
        rgb = np.where(lines[..., None], np.asarray(COLORS["white"], np.float32), base * 0.92)
        return mask, rgb
    # airplane: fuselage, swept wings and a tail plane
    fus = (np.abs(v) < b) & (np.abs(u) < a) & ~((u > 0.85 * a) & (np.abs(v) > b * (a - u) / (0.15 * a)))
    wing = (np.abs(v) < 0.9 * a) & (np.abs(u - 0.05 * a + 0.35 * np.abs(v)) < 0.12 * a)
    tail = (np.abs(v) < 0.35 * a) & (np.abs(u + 0.82 * a + 0.3 * np.abs(v)) < 0.07 * a)
    mask = fus | wing | tail
    return mask, base * np.where(wing & ~fus, 0.9, 1.0)[..., None]
