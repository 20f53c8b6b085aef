"""Contour-inclusive polygon fill: ``cv2.fillPoly`` reproduced pixel for pixel, without OpenCV.

GeoPixelD polygons trace the boundary pixels of each object, and GeoPixel's training code rasterises
each one with ``cv2.fillPoly(mask, [np.array(poly, np.int32)], 1)``, which sets the contour pixels as
well as the inside. This module does the same in NumPy, so that the training targets and the GT of
the GCG evaluation are the masks the dataset's authors trained on, while OpenCV stays out of the runtime
dependencies (the tests compare against ``cv2.fillPoly`` itself).

OpenCV's algorithm (``modules/imgproc/src/drawing.cpp``, ``LINE_8``, ``shift=0``), on integer vertices:

1. every edge, the closing one included, is drawn as an 8-connected Bresenham line, walked from its
   left end; pixel ``k`` along the major axis is offset ``ceil(k * minor / major - 1/2)`` along the
   minor axis (halves round down);
2. every non-horizontal edge, active on the rows ``[y_top, y_bottom)``, crosses row ``y`` at
   ``x = x_top + trunc(2^16 * dx / dy) * (y - y_top) / 2^16`` (16-bit fixed point, as OpenCV);
   the crossings of a row, sorted, pair up (even-odd rule) into the spans
   ``[ceil(x_left), floor(x_right)]``.

The polygon is filled whole, as on a canvas that holds it, and then cropped to the image. For a
polygon inside the image that is exactly ``cv2.fillPoly``; for one that leaves the image, OpenCV
instead clips each edge at the border before drawing it, which can move a few pixels next to the
border (see ``docs/design.md`` §7). Only the rows and columns inside the image are computed, so a
polygon far outside costs no more than one inside.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_INT32 = 2**31
_SHIFT = 16  # OpenCV's XY_SHIFT: fill crossings are computed in 16-bit fixed point


def polygon_vertices(poly: Sequence[float] | Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """``[[x, y], ...]`` or flat ``[x0, y0, x1, y1, ...]`` -> (N, 2) int64 vertices, as an int32 cast does.

    Coordinates are truncated toward zero, as ``np.array(poly, dtype=np.int32)`` does in GeoPixel's code.

    Raises:
        ValueError: not a list of finite ``[x, y]`` points, no point at all, or a coordinate outside
            the int32 range (OpenCV's vertex type).
    """
    try:
        flat = np.asarray(poly, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a list of [x, y] points ({exc})") from exc
    if flat.size == 0 or flat.size % 2:
        raise ValueError(f"a polygon needs at least one [x, y] point, got {flat.size} coordinate(s)")
    if not np.isfinite(flat).all():
        raise ValueError("polygon coordinates must be finite")
    if np.abs(flat).max() >= _INT32:
        raise ValueError(f"polygon coordinate {np.abs(flat).max():.0f} is outside the int32 range")
    return np.trunc(flat).astype(np.int64).reshape(-1, 2)


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(lo[i], hi[i] + 1)`` for every i (empty where ``hi < lo``), with each value's i."""
    n = np.maximum(hi - lo + 1, 0)
    owner = np.repeat(np.arange(lo.size), n)
    start = np.cumsum(n) - n
    return lo[owner] + np.arange(int(n.sum()), dtype=np.int64) - start[owner], owner


def _line_pixels(v0: np.ndarray, v1: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (ys, xs) inside the image of OpenCV's 8-connected lines from ``v0[i]`` to ``v1[i]`` (N, 2)."""
    swap = v1[:, 0] < v0[:, 0]  # OpenCV walks every line from its left end
    a, b = np.where(swap[:, None], v1, v0), np.where(swap[:, None], v0, v1)
    ax, ay = b[:, 0] - a[:, 0], np.abs(b[:, 1] - a[:, 1])
    sy = np.where(b[:, 1] >= a[:, 1], 1, -1)
    x_major = ax >= ay
    major, minor = np.maximum(ax, ay), np.minimum(ax, ay)
    # only the steps k along the major axis that land inside the image on that axis
    lo = np.where(x_major, -a[:, 0], np.where(sy > 0, -a[:, 1], a[:, 1] - height + 1))
    hi = np.where(x_major, width - 1 - a[:, 0], np.where(sy > 0, height - 1 - a[:, 1], a[:, 1]))
    k, i = _ranges(np.maximum(lo, 0), np.minimum(hi, major))
    # Bresenham's minor-axis offset: ceil(k * minor / major - 1/2), halves rounding down
    m = -((major[i] - 2 * k * minor[i]) // np.maximum(2 * major[i], 1))
    xs = a[i, 0] + np.where(x_major[i], k, m)
    ys = a[i, 1] + sy[i] * np.where(x_major[i], m, k)
    keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
    return ys[keep], xs[keep]


def _fill_spans(v0: np.ndarray, v1: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's even-odd scanline spans of the closed polygon with edges ``v0[i] -> v1[i]``, as an (H, W) mask."""
    out = np.zeros((height, width), dtype=np.uint8, order="F")  # column-major, as COCO RLE encodes
    sloped = v0[:, 1] != v1[:, 1]  # horizontal edges only draw their line
    v0, v1 = v0[sloped], v1[sloped]
    top = np.where((v0[:, 1] < v1[:, 1])[:, None], v0, v1)
    dx, dy = (v1[:, 0] - v0[:, 0]) << _SHIFT, v1[:, 1] - v0[:, 1]
    step = np.sign(dx) * np.sign(dy) * (np.abs(dx) // np.maximum(np.abs(dy), 1))  # C division: toward zero
    # an edge is active on the rows [y_top, y_bottom); only the image's rows are needed
    y, i = _ranges(np.maximum(top[:, 1], 0), np.minimum(np.maximum(v0[:, 1], v1[:, 1]), height) - 1)
    if y.size == 0:
        return out
    x = (top[i, 0] << _SHIFT) + (y - top[i, 1]) * step[i]
    order = np.lexsort((x, y))
    y, x = y[order], x[order]
    if y.size % 2 or (y[0::2] != y[1::2]).any():  # a closed polygon crosses every row an even number of times
        raise AssertionError("odd number of edge crossings on a row")
    x_lo = np.maximum(-((-x[0::2]) >> _SHIFT), 0)  # ceil of the left crossing
    x_hi = np.minimum(x[1::2] >> _SHIFT, width - 1)  # floor of the right one
    cols, span = _ranges(x_lo, x_hi)
    out[y[0::2][span], cols] = 1
    return out


def fill_polygon(poly: Sequence[float] | Sequence[Sequence[float]] | np.ndarray, height: int,
                 width: int) -> np.ndarray:
    """One polygon -> (H, W) uint8 mask, contour pixels included, as ``cv2.fillPoly`` draws it.

    Args:
        poly: ``[[x, y], ...]`` or flat ``[x0, y0, ...]`` pixel coordinates (truncated toward zero);
            one point gives one pixel, two points a line, collinear points the line they span.
        height, width: the image size; the part of the polygon outside it is cropped away.

    Raises:
        ValueError: see :func:`polygon_vertices`.
    """
    v1 = polygon_vertices(poly)
    v0 = np.roll(v1, 1, axis=0)  # edge i runs from vertex i-1 to vertex i; the closing edge comes first
    mask = _fill_spans(v0, v1, height, width)
    ys, xs = _line_pixels(v0, v1, height, width)
    mask[ys, xs] = 1
    return mask


def fill_polygons(polys: Sequence[Sequence[float] | Sequence[Sequence[float]] | np.ndarray], height: int,
                  width: int) -> np.ndarray:
    """Union of :func:`fill_polygon` over several polygons (one ``cv2.fillPoly`` call per polygon)."""
    out = np.zeros((height, width), dtype=np.uint8)
    for p in polys:
        out |= fill_polygon(p, height, width)
    return out
