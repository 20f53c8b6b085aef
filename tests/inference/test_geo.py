"""Map boxes to pixels and masks to GeoJSON: exact areas, reprojection, the legacy crs member."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from clvnet.inference import geo

T = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4650000.0)  # 0.5 m pixels, UTM 33N
UTM = CRS.from_epsg(32633)


def test_map_box_same_crs_is_inverse_affine() -> None:
    box = (500010.0, 4649980.0, 500020.0, 4649990.0)
    assert geo.map_box_to_pixels(box, "EPSG:32633", UTM, T, "s.tif") == pytest.approx((20.0, 20.0, 40.0, 40.0))


def test_map_box_from_lonlat_roundtrip() -> None:
    from rasterio.warp import transform

    xs, ys = transform(UTM, "EPSG:4326", [500010.0, 500020.0], [4649990.0, 4649980.0])
    px = geo.map_box_to_pixels((xs[0], ys[1], xs[1], ys[0]), "EPSG:4326", UTM, T, "s.tif")
    assert px == pytest.approx((20.0, 20.0, 40.0, 40.0), abs=0.2)  # densified corners of a near-rectangle


def test_map_box_errors_name_argument() -> None:
    with pytest.raises(ValueError, match=r"--box-crs EPSG:32633: image plain\.png is not georeferenced"):
        geo.map_box_to_pixels((0, 0, 1, 1), "EPSG:32633", None, None, "plain.png")
    with pytest.raises(ValueError, match="--box-crs 'EPSG:nope'"):
        geo.map_box_to_pixels((0, 0, 1, 1), "EPSG:nope", UTM, T, "s.tif")
    with pytest.raises(ValueError, match="zero area"):
        geo.map_box_to_pixels((5, 0, 5, 1), "EPSG:32633", UTM, T, "s.tif")


def test_mask_feature_area_and_offset() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[2:6, 3:10] = True  # 28 px
    mask[10:12, 20:29] = True  # 18 px, a second part
    feat = geo.mask_feature(mask, (100, 50), 1, T, UTM, {"phrase": "x"}, simplify_px=0.0)
    from shapely.geometry import shape

    g = shape(feat["geometry"])
    assert feat["geometry"]["type"] == "MultiPolygon" and len(g.geoms) == 2
    assert g.area == pytest.approx(46 * 0.25)
    minx, _, _, maxy = g.bounds
    assert minx == pytest.approx(500000.0 + (100 + 3) * 0.5)
    assert maxy == pytest.approx(4650000.0 - (50 + 2) * 0.5)
    assert geo.pixel_area_m2(T, UTM) == pytest.approx(0.25)
    assert geo.pixel_area_m2(T, CRS.from_epsg(4326)) is None
    ll = geo.mask_feature(mask, (100, 50), 1, T, UTM, {}, simplify_px=0.0, target_crs=CRS.from_epsg(4326))
    lon, lat = ll["geometry"]["coordinates"][0][0][0]
    assert 14.0 < lon < 16.0 and 41.0 < lat < 43.0  # UTM 33N, lon/lat order
    fc = geo.feature_collection([ll], CRS.from_epsg(4326))
    assert fc["crs"]["properties"]["name"].endswith("CRS84")
    assert geo.feature_collection([], UTM)["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::32633"


def test_simplify_reduces_vertices_of_a_staircase() -> None:
    yy, xx = np.mgrid[:80, :80]
    disc = (yy - 40) ** 2 + (xx - 40) ** 2 < 30**2
    exact = geo.mask_feature(disc, (0, 0), 1, T, UTM, {}, simplify_px=0.0)
    simple = geo.mask_feature(disc, (0, 0), 1, T, UTM, {}, simplify_px=1.0)
    n = len(exact["geometry"]["coordinates"][0][0])
    m = len(simple["geometry"]["coordinates"][0][0])
    assert m < n / 2
