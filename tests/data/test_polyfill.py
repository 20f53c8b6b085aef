"""The contour-inclusive polygon fill against ``cv2.fillPoly`` itself (OpenCV is a test-only dependency)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from clvnet.data.polyfill import fill_polygon, fill_polygons, polygon_vertices
from clvnet.data.rle import polygons_to_mask

SAMPLE = Path("/work/shared/reference/geopixeld/P0224_0_800_0_800.json")


def cv2_fill(poly: object, height: int, width: int) -> np.ndarray:
    """GeoPixel's rasteriser: ``cv2.fillPoly`` on the int32 vertices."""
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.array(poly, dtype=np.int32).reshape(-1, 2)], 1)
    return mask


def _random_polygon(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    if kind == "star":  # simple, often concave
        n = int(rng.integers(3, 14))
        ang, r = np.sort(rng.uniform(0, 2 * np.pi, n)), rng.uniform(1, max(height, width) / 2, n)
        p = np.stack([width / 2 + r * np.cos(ang), height / 2 + r * np.sin(ang)], 1).astype(np.int64)
    elif kind == "tangle":  # random vertex order: self-intersecting
        n = int(rng.integers(3, 12))
        p = np.stack([rng.integers(0, width, n), rng.integers(0, height, n)], 1)
    elif kind == "tiny":  # a few pixels, repeated and collinear vertices
        n = int(rng.integers(1, 6))
        p = rng.integers(0, 4, (n, 2)) + np.array([rng.integers(0, width), rng.integers(0, height)])
    else:  # "line": collinear points
        t, d = rng.integers(0, 15, int(rng.integers(2, 7))), rng.integers(-3, 4, 2)
        p = np.outer(t, d) + np.array([rng.integers(0, width), rng.integers(0, height)])
    return np.clip(p, 0, [width - 1, height - 1])


@pytest.mark.parametrize("kind", ["star", "tangle", "tiny", "line"])
def test_random_polygons_equal_cv2_pixel_for_pixel(kind: str) -> None:
    rng = np.random.default_rng(["star", "tangle", "tiny", "line"].index(kind))
    for _ in range(400):
        h, w = (int(v) for v in rng.integers(1, 48, 2))
        p = _random_polygon(rng, kind, h, w)
        assert np.array_equal(fill_polygon(p, h, w), cv2_fill(p, h, w)), (h, w, p.tolist())


@pytest.mark.skipif(not SAMPLE.is_file(), reason="reference sample not available")
def test_real_sample_every_polygon_equals_cv2() -> None:
    for group in json.loads(SAMPLE.read_text())["polygons"]:
        for poly in group:
            assert np.array_equal(fill_polygon(poly, 800, 800), cv2_fill(poly, 800, 800))


def test_degenerate_polygons() -> None:
    assert np.argwhere(fill_polygon([[4, 3]], 8, 8)).tolist() == [[3, 4]]  # one point: one pixel
    line = fill_polygon([[1, 1], [6, 3]], 8, 8)  # two points: cv2's 8-connected line, both ends included
    assert np.array_equal(line, cv2_fill([[1, 1], [6, 3]], 8, 8)) and line.sum() == 6
    assert np.array_equal(fill_polygon([[1, 1], [3, 3], [6, 6]], 8, 8), np.eye(8, dtype=np.uint8) * (
        (np.arange(8) >= 1) & (np.arange(8) <= 6)))  # collinear: the diagonal line
    # a self-intersecting bowtie: both triangles, the crossing and the whole contour
    bowtie = [[0, 0], [8, 8], [8, 0], [0, 8]]
    assert np.array_equal(fill_polygon(bowtie, 9, 9), cv2_fill(bowtie, 9, 9))
    # vertices are truncated toward zero, as np.array(poly, dtype=np.int32) does
    fp = [[1.7, 2.2], [10.9, -0.5], [8.5, 9.99], [-0.7, 6.3]]
    assert np.array_equal(fill_polygon(fp, 12, 12), cv2_fill(fp, 12, 12))
    assert polygon_vertices([1.9, -1.9, 3, 4]).tolist() == [[1, -1], [3, 4]]


def test_polygon_leaving_the_image_is_filled_whole_then_cropped() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(2, 40, 2))
        n = int(rng.integers(1, 9))
        p = np.stack([rng.integers(-25, w + 25, n), rng.integers(-25, h + 25, n)], 1)
        on_canvas = cv2_fill(p + 30, h + 60, w + 60)[30:30 + h, 30:30 + w]
        assert np.array_equal(fill_polygon(p, h, w), on_canvas), (h, w, p.tolist())
    # cv2 on the image itself clips each edge at the border first, which re-draws the whole edge: here
    # its vertex x = 10 lies one column past a 10-wide image, and cv2 moves pixels as far as column 4
    tri = [[2, 2], [10, 4], [3, 10]]
    ours, direct = fill_polygon(tri, 12, 10), cv2_fill(tri, 12, 10)
    assert np.array_equal(ours, cv2_fill(tri, 12, 11)[:, :10])
    assert (ours != direct).sum() == 5 and ours[2, 4] == 1 and direct[2, 4] == 0


def test_polygon_far_outside_costs_only_the_image() -> None:
    huge = [[-10**9, -10**9], [10**9, -5], [3, 10**9]]
    assert fill_polygon(huge, 50, 60).all()
    assert not fill_polygon([[10**9, 10**9], [10**9 + 5, 10**9], [10**9, 10**9 + 5]], 50, 60).any()


def test_bad_polygons_raise() -> None:
    for bad, msg in (([], "at least one"), ([1, 2, 3], "at least one"), ([[1, 2], [3]], "not a list of"),
                     ([[1, 2], [np.inf, 3]], "finite"), ([[1, 2], [-(2**31), 3]], "int32")):
        with pytest.raises(ValueError, match=msg):
            fill_polygon(bad, 10, 10)


def test_fill_polygons_is_the_union_and_rle_helper_names_its_fill() -> None:
    a, b = [[1, 1], [9, 1], [9, 9], [1, 9]], [[5, 5], [14, 5], [14, 14], [5, 14]]
    union = fill_polygons([a, b], 16, 16)
    assert np.array_equal(union, cv2_fill(a, 16, 16) | cv2_fill(b, 16, 16))
    assert np.array_equal(polygons_to_mask([a, b], 16, 16, fill="contour"), union)
    coco = polygons_to_mask([a, b], 16, 16, fill="coco")  # pycocotools: about half of the contour
    assert coco.sum() < union.sum() and not (coco & ~union).any()
    with pytest.raises(ValueError, match="polygon 1 has 2 point"):
        polygons_to_mask([a, [[1, 1], [5, 5]]], 16, 16, fill="coco")
    with pytest.raises(ValueError, match="fill must be"):
        polygons_to_mask([a], 16, 16, fill="pil")  # type: ignore[arg-type]
