"""Georeferencing: map-coordinate boxes to pixels, and masks to GeoJSON polygons.

Boxes given with ``--box-crs EPSG:XXXX`` are transformed into the raster's CRS (pyproj through
rasterio), then through the inverse affine geotransform into pixels; the pixel box is the bounding box
of the four transformed corners (densified edges, so a rotated or reprojected box is covered).

A mask becomes one GeoJSON feature: ``rasterio.features.shapes`` over the mask window (pixel edges,
exact), union into a MultiPolygon, then simplified (tolerance in pixels) and optionally reprojected (``--geojson-crs``).
The FeatureCollection carries the legacy ``crs`` member so that QGIS / GDAL read non-WGS84 output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Window = tuple[int, int, int, int]


def parse_crs(value: str, argument: str) -> Any:
    """A rasterio CRS from ``EPSG:XXXX`` / WKT / PROJ text; the error names the argument."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        return CRS.from_user_input(value)
    except (CRSError, ValueError) as exc:
        raise ValueError(f"{argument} {value!r} is not a valid CRS: {exc}") from exc


def map_box_to_pixels(box: tuple[float, float, float, float], box_crs: str, crs: Any, transform: Any,
                      name: str) -> tuple[float, float, float, float]:
    """Map-coordinate box ``(xmin, ymin, xmax, ymax)`` in ``box_crs`` -> pixel box ``(x0, y0, x1, y1)``.

    Raises:
        ValueError: the raster has no CRS / geotransform (names the image and ``--box-crs``).
    """
    if crs is None or transform is None:
        raise ValueError(f"--box-crs {box_crs}: image {name} is not georeferenced (no CRS or geotransform), "
                         "so map-coordinate boxes cannot be used; give the box in pixels")
    from rasterio.warp import transform as warp_transform

    src = parse_crs(box_crs, "--box-crs")
    xmin, ymin, xmax, ymax = box
    if xmax <= xmin or ymax <= ymin:
        raise ValueError(f"--box {list(box)} (in {box_crs}) has zero area or inverted corners; "
                         "map boxes are xmin ymin xmax ymax")
    t = np.linspace(0.0, 1.0, 11)
    xs = np.concatenate([xmin + t * (xmax - xmin), np.full_like(t, xmax), xmax - t * (xmax - xmin),
                         np.full_like(t, xmin)])
    ys = np.concatenate([np.full_like(t, ymin), ymin + t * (ymax - ymin), np.full_like(t, ymax),
                         ymax - t * (ymax - ymin)])
    if src != crs:
        xs, ys = (np.asarray(v) for v in warp_transform(src, crs, xs, ys))
    inv = ~transform
    cols, rows = inv @ (xs, ys)
    cols, rows = np.asarray(cols), np.asarray(rows)
    return float(cols.min()), float(rows.min()), float(cols.max()), float(rows.max())


def _units_to_metres(crs: Any) -> float | None:
    if crs is None or not crs.is_projected:
        return None
    try:
        _, factor = crs.linear_units_factor
    except Exception:  # unknown unit
        return None
    return float(factor)


def pixel_area_m2(transform: Any, crs: Any) -> float | None:
    """Ground area of one pixel in square metres, or None when the CRS is not projected."""
    factor = _units_to_metres(crs)
    if factor is None or transform is None:
        return None
    return abs(transform.a * transform.e - transform.b * transform.d) * factor * factor


def mask_geometry(mask: np.ndarray, transform: Any) -> Any:
    """A shapely (Multi)Polygon of the True pixels of ``mask`` placed by the affine ``transform``."""
    from rasterio import features
    from shapely.geometry import MultiPolygon, shape
    from shapely.ops import unary_union

    polys = [shape(geom) for geom, val in features.shapes(mask.astype(np.uint8), mask=mask.astype(bool),
                                                          transform=transform, connectivity=4) if val == 1]
    if not polys:
        return MultiPolygon()
    geom = unary_union(polys)
    return geom if geom.geom_type == "MultiPolygon" else MultiPolygon([geom])


def mask_feature(mask: np.ndarray, offset: tuple[int, int], step: int, transform: Any, crs: Any,
                 properties: dict[str, Any], simplify_px: float = 0.5, target_crs: Any = None) -> dict[str, Any]:
    """One GeoJSON feature for a mask window.

    Args:
        mask: (h, w) bool window of the full mask (possibly decimated by ``step``).
        offset: (x0, y0) pixel offset of the window in the raster.
        step: decimation factor of ``mask`` (1 = native resolution).
        transform: the raster's affine pixel -> map transform.
        crs: the raster's CRS.
        properties: feature properties (copied).
        simplify_px: Douglas-Peucker tolerance in pixels (0 = exact pixel edges).
        target_crs: reproject the geometry into this CRS (None = keep the raster's CRS).
    """
    from affine import Affine
    from rasterio.warp import transform_geom
    from shapely.geometry import MultiPolygon, mapping, shape

    x0, y0 = offset
    win_transform = transform @ Affine.translation(x0, y0) @ Affine.scale(step, step)
    geom = mask_geometry(mask, win_transform)
    props = dict(properties)
    if simplify_px > 0 and not geom.is_empty:
        pixel = float(np.sqrt(abs(transform.a * transform.e - transform.b * transform.d)))
        geom = geom.simplify(simplify_px * pixel, preserve_topology=True)
        if geom.geom_type == "Polygon":
            geom = MultiPolygon([geom])
    gj = mapping(geom)
    if target_crs is not None and target_crs != crs and not geom.is_empty:
        gj = transform_geom(crs, target_crs, gj)
        if gj["type"] == "Polygon":
            gj = mapping(MultiPolygon([shape(gj)]))
    return {"type": "Feature", "geometry": _plain(gj), "properties": props}


def _plain(obj: Any) -> Any:
    """Tuples -> lists recursively, so the GeoJSON is plain JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def feature_collection(features: list[dict[str, Any]], crs: Any) -> dict[str, Any]:
    """A FeatureCollection with the (legacy, widely read) named ``crs`` member."""
    out: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        epsg = crs.to_epsg()
        if epsg == 4326:  # lon/lat order, as written by transform_geom
            name = "urn:ogc:def:crs:OGC:1.3:CRS84"
        else:
            name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else crs.to_wkt()
        out["crs"] = {"type": "name", "properties": {"name": name}}
    return out
