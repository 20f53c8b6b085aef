"""One prediction -> one ``boxes`` row and its ``phrases`` rows, with geometries in the output CRS.

Geometries travel as WKB (hex in the part files). ``area_px`` is the full-resolution pixel count of the
phrase's mask; ``area_m2`` is ``area_px`` times the ground area of one pixel when the raster's CRS is
projected (its linear unit converted to metres), else the geodesic area of the mask polygon on the WGS84
ellipsoid. The columns of both layers are listed in :data:`BOX_FIELDS` and :data:`PHRASE_FIELDS`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clvnet.inference.archive.plan import BoxItem, RasterInfo
from clvnet.inference.prediction import GCGPrediction

# (name, kind) with kind in {"str", "float", "int", "bool"}; the GeoPackage / GeoParquet column types follow.
BOX_FIELDS: tuple[tuple[str, str], ...] = (
    ("box_id", "str"), ("raster", "str"), ("feature_id", "str"), ("caption", "str"), ("global_caption", "str"),
    ("n_phrases", "int"), ("x0", "float"), ("y0", "float"), ("x1", "float"), ("y1", "float"), ("clipped", "bool"),
    ("t_read", "float"), ("t_encode", "float"), ("t_generate", "float"), ("t_masks", "float"), ("t_total", "float"),
    ("cache_hit", "bool"), ("checkpoint", "str"), ("trained_on", "str"),
)
PHRASE_FIELDS: tuple[tuple[str, str], ...] = (
    ("box_id", "str"), ("phrase_index", "int"), ("phrase", "str"), ("span_start", "int"), ("span_end", "int"),
    ("area_px", "int"), ("area_m2", "float"), ("score", "float"),
)


def checkpoint_id(folder: Path) -> str:
    """``<folder name>-<first 12 hex of the SHA-256 of model.safetensors>``: names the exact weights."""
    h = hashlib.sha256()
    with open(folder / "model.safetensors", "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{folder.resolve().name}-{h.hexdigest()[:12]}"


def trained_on(folder: Path) -> str:
    """What the checkpoint was trained on: its model card's data name and version (``synthrs 1.1``); for a
    checkpoint without a card (older than cards), the ``data.train`` of its ``train_config.yaml``; else ``""``.

    Raises:
        clvnet.models.card.CardError: a malformed ``model_card.json`` (named).
    """
    import yaml

    from clvnet.models.card import load_card

    card = load_card(folder)
    if card is not None:
        return card.data_name + (f" {card.data_version}" if card.data_version else "")
    path = folder / "train_config.yaml"
    if not path.is_file():
        return ""
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return ""
    data = cfg.get("data") if isinstance(cfg, dict) else None
    return str(data.get("train") or "") if isinstance(data, dict) else ""


@dataclass(frozen=True)
class RowContext:
    """What every row of a run shares."""

    out_crs: Any        # rasterio CRS of both layers
    checkpoint: str
    trained_on: str
    simplify_px: float = 0.5


def box_polygon(box: tuple[float, float, float, float], info: RasterInfo, out_crs: Any) -> Any:
    """The pixel box as a polygon in ``out_crs`` (edges densified, so a reprojected box stays faithful)."""
    from rasterio.warp import transform as warp_transform
    from shapely.geometry import Polygon

    x0, y0, x1, y1 = box
    t = np.linspace(0.0, 1.0, 11)[:-1]
    xs = np.concatenate([x0 + t * (x1 - x0), np.full_like(t, x1), x1 - t * (x1 - x0), np.full_like(t, x0)])
    ys = np.concatenate([np.full_like(t, y0), y0 + t * (y1 - y0), np.full_like(t, y1), y1 - t * (y1 - y0)])
    mx, my = info.transform @ (xs, ys)
    if out_crs != info.crs:
        mx, my = warp_transform(info.crs, out_crs, list(mx), list(my))
    return Polygon(zip(mx, my))


def _geodesic_area(geom: Any, crs: Any) -> float:
    """Area in m² of ``geom`` (in ``crs``) on the WGS84 ellipsoid."""
    from pyproj import Geod
    from rasterio.crs import CRS
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape

    if geom.is_empty:
        return 0.0
    ll = shape(transform_geom(crs, CRS.from_epsg(4326), mapping(geom)))
    area, _ = Geod(ellps="WGS84").geometry_area_perimeter(ll)
    return abs(float(area))


def prediction_rows(pred: GCGPrediction, item: BoxItem, info: RasterInfo, raster: Any, ctx: RowContext
                    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``boxes`` row and the ``phrases`` rows of one prediction (geometry under ``"geometry"`` as WKB hex)."""
    from shapely.geometry import MultiPolygon, shape

    from clvnet.inference.outputs import GeoJSONOptions, geojson_dict

    tm = pred.timings
    box_row: dict[str, Any] = {
        "box_id": item.box_id, "raster": info.key, "feature_id": item.feature_id, "caption": pred.caption,
        "global_caption": pred.global_caption, "n_phrases": len(pred.phrases),
        "x0": pred.box[0], "y0": pred.box[1], "x1": pred.box[2], "y1": pred.box[3],
        "clipped": bool(item.clipped or pred.meta.get("box_clipped", False)),
        "t_read": tm.get("read", 0.0), "t_encode": tm.get("encode", 0.0), "t_generate": tm.get("generate", 0.0),
        "t_masks": tm.get("masks", 0.0), "t_total": tm.get("total", 0.0), "cache_hit": bool(tm.get("cache_hit")),
        "checkpoint": ctx.checkpoint, "trained_on": ctx.trained_on,
        "geometry": box_polygon(pred.box, info, ctx.out_crs).wkb_hex,
    }
    phrase_rows = []
    if pred.phrases:
        fc = geojson_dict(pred, raster, GeoJSONOptions(simplify_px=ctx.simplify_px, target_crs=ctx.out_crs.to_wkt()))
        for i, feat in enumerate(fc["features"]):
            props = feat["properties"]
            geom = shape(feat["geometry"]) if feat["geometry"]["coordinates"] else MultiPolygon()
            if geom.geom_type == "Polygon":
                geom = MultiPolygon([geom])
            area_m2 = props.get("area_m2")
            if area_m2 is None:
                area_m2 = _geodesic_area(geom, ctx.out_crs)
            s, e = props["span"]
            phrase_rows.append({"box_id": item.box_id, "phrase_index": i, "phrase": props["phrase"],
                                "span_start": int(s), "span_end": int(e), "area_px": int(props["pixels"]),
                                "area_m2": float(area_m2), "score": float(props["score"]), "geometry": geom.wkb_hex})
    return box_row, phrase_rows
