"""``--vector FILE [--vector-layer NAME]``: boxes from the features of a vector layer.

The layer (GeoJSON, GeoPackage, Shapefile, anything GDAL reads) is read with ``pyogrio``. Each
feature's bounds are reprojected into each raster's CRS (``rasterio.warp.transform_bounds``, densified
edges), then into pixels through the raster's geotransform. A feature is matched to every raster its
box intersects; the feature id (``--vector-id FIELD``, else an ``id`` field, else the feature's FID) is kept.

A feature that touches no raster, or lies across a raster's edge, is reported (stderr and
``OUT/vector_report.jsonl``) and then handled by ``--edge``:

- ``clip`` (default): a box across an edge is clipped to the raster; a feature on no raster is skipped;
- ``skip``: both are skipped;
- ``error``: either is an error naming the vector file and the feature; nothing is predicted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clvnet.data.record import DataError
from clvnet.inference.archive.plan import BoxItem, RasterInfo, RasterJob

log = logging.getLogger(__name__)
EDGE_POLICIES = ("clip", "skip", "error")


@dataclass(frozen=True)
class Feature:
    """A feature's id and its bounds ``(xmin, ymin, xmax, ymax)`` in the layer's CRS."""

    fid: str
    bounds: tuple[float, float, float, float]


@dataclass(frozen=True)
class EdgeEvent:
    """A reported feature: ``kind`` is ``off`` (on no raster) or ``edge`` (across a raster's edge)."""

    feature_id: str
    kind: str
    raster: str | None
    action: str  # clipped / skipped

    def to_dict(self) -> dict[str, Any]:
        return {"feature_id": self.feature_id, "kind": self.kind, "raster": self.raster, "action": self.action}


def read_features(path: Path, layer: str | None = None, id_field: str | None = None) -> tuple[Any, list[Feature]]:
    """The layer's CRS (rasterio CRS) and its features' ids and bounds.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: unknown layer (the layers are listed), no CRS, a feature without geometry, unknown id field.
    """
    import pyogrio
    import shapely
    from pyogrio.errors import DataSourceError

    from clvnet.inference.geo import parse_crs

    if not path.is_file():
        raise FileNotFoundError(f"--vector {path}: file not found")
    try:
        layers = [str(name) for name, _ in pyogrio.list_layers(path)]
    except DataSourceError as exc:
        raise DataError(f"cannot read the vector file: {exc}", file=path) from None
    if layer is not None and layer not in layers:
        raise DataError(f"--vector-layer {layer}: no such layer (layers: {', '.join(layers) or 'none'})", file=path)
    if layer is None and len(layers) > 1:
        log.info("%s has %d layers; reading the first, %s (choose with --vector-layer)", path, len(layers), layers[0])
    meta, fids, geoms, fields = pyogrio.raw.read(path, layer=layer, return_fids=True)
    if not meta.get("crs"):
        raise DataError("the vector layer has no CRS, so its features cannot be placed on the rasters; "
                        "set one (e.g. ogr2ogr -a_srs EPSG:4326) and retry", file=path)
    crs = parse_crs(meta["crs"], f"--vector {path} CRS")
    names = [str(n) for n in meta["fields"]]
    if id_field is not None and id_field not in names:
        raise DataError(f"--vector-id {id_field}: no such field (fields: {', '.join(names) or 'none'})", file=path)
    key = id_field or ("id" if "id" in names else None)
    ids = [str(v) for v in fields[names.index(key)]] if key is not None else [str(int(f)) for f in fids]
    shapes = shapely.from_wkb(geoms)
    feats = []
    for fid, geom in zip(ids, shapes):
        if geom is None or shapely.is_empty(geom):
            raise DataError("feature has no geometry", file=path, record=f"feature {fid}")
        b = shapely.bounds(geom)
        feats.append(Feature(fid=fid, bounds=(float(b[0]), float(b[1]), float(b[2]), float(b[3]))))
    if not feats:
        raise DataError("the vector layer has no features", file=path)
    return crs, feats


def _pixel_box(bounds: tuple[float, float, float, float], info: RasterInfo) -> tuple[float, float, float, float]:
    """Map bounds in the raster's CRS -> pixel box (bounding box of the four corners through the inverse affine)."""
    xmin, ymin, xmax, ymax = bounds
    inv = ~info.transform
    cols, rows = inv @ (np.array([xmin, xmax, xmax, xmin]), np.array([ymin, ymin, ymax, ymax]))
    return float(np.min(cols)), float(np.min(rows)), float(np.max(cols)), float(np.max(rows))


def _bounds_in(crs_src: Any, crs_dst: Any, feats: list[Feature]) -> list[tuple[float, float, float, float] | None]:
    from rasterio.warp import transform_bounds

    if crs_src == crs_dst:
        return [f.bounds for f in feats]
    out: list[tuple[float, float, float, float] | None] = []
    for f in feats:
        try:
            b = transform_bounds(crs_src, crs_dst, *f.bounds, densify_pts=21)
        except Exception:  # outside the target projection's domain
            out.append(None)
            continue
        out.append(b if all(np.isfinite(b)) else None)
    return out


def match(path: Path, crs: Any, feats: list[Feature], rasters: list[RasterInfo], edge: str
          ) -> tuple[list[RasterJob], list[EdgeEvent]]:
    """Boxes per raster for every feature, and the reported features (see the module docstring).

    Raises:
        DataError: ``edge == "error"`` and a feature is off every raster or across an edge (names it).
        ValueError: no feature intersects any raster.
    """
    if edge not in EDGE_POLICIES:
        raise ValueError(f"--edge {edge}: choose from {', '.join(EDGE_POLICIES)}")
    for r in rasters:
        if not r.is_georeferenced:
            raise ValueError(f"--vector needs georeferenced rasters; {r.path} has no CRS or geotransform")
    by_crs: dict[str, list[tuple[float, float, float, float] | None]] = {}
    jobs = {r.path: RasterJob(raster=r) for r in rasters}
    events: list[EdgeEvent] = []
    hits = [0] * len(feats)
    for r in rasters:
        wkt = r.crs.to_wkt()
        if wkt not in by_crs:
            by_crs[wkt] = _bounds_in(crs, r.crs, feats)
        for i, (f, b) in enumerate(zip(feats, by_crs[wkt])):
            if b is None:
                continue
            x0, y0, x1, y1 = _pixel_box(b, r)
            if x1 <= 0 or y1 <= 0 or x0 >= r.width or y0 >= r.height or x1 <= x0 or y1 <= y0:
                continue
            hits[i] += 1
            inside = x0 >= 0 and y0 >= 0 and x1 <= r.width and y1 <= r.height
            clipped = False
            if not inside:
                if edge == "error":
                    raise DataError(f"the feature's box reaches past the edge of {r.path} (--edge error; "
                                    "use --edge clip or skip)", file=path, record=f"feature {f.fid}")
                events.append(EdgeEvent(f.fid, "edge", str(r.path), "clipped" if edge == "clip" else "skipped"))
                if edge == "skip":
                    continue
                x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(r.width), x1), min(float(r.height), y1)
                clipped = True
            jobs[r.path].boxes.append(BoxItem(box_id=f"{r.path.stem}_{f.fid}", feature_id=f.fid,
                                              box=(x0, y0, x1, y1), clipped=clipped))
    for f, n in zip(feats, hits):
        if n == 0:
            if edge == "error":
                raise DataError(f"the feature lies on none of the {len(rasters)} raster(s) (--edge error; use "
                                "--edge clip or skip to report and skip it)", file=path, record=f"feature {f.fid}")
            events.append(EdgeEvent(f.fid, "off", None, "skipped"))
    if not any(hits):
        raise ValueError(f"--vector {path}: none of its {len(feats)} feature(s) intersects any of the "
                         f"{len(rasters)} raster(s) given by --images (check the CRS and the extents)")
    return [j for j in jobs.values() if j.boxes], events
