"""Writers for one prediction: ``json`` (our GCG record, ``<id>.json``), ``glamm`` (GLaMM's per-image
format, ``glamm/<id>.json``),
``png`` (overlay with a colour-coded caption panel, via :mod:`clvnet.viz`) and ``geojson``
(one MultiPolygon feature per phrase, for georeferenced input), plus the human-readable text.

Large scenes: the PNG is drawn on the raster's preview (longest side at most ``preview_max``), and
GeoJSON polygons are traced on each mask's tight window, decimated by an integer factor only when that
window exceeds ``max_pixels`` (``area_m2`` always comes from the exact full-resolution pixel count).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clvnet.data import rle as rle_utils
from clvnet.inference.masks import window_mask
from clvnet.inference.prediction import GCGPrediction
from clvnet.inference.raster import Raster

log = logging.getLogger(__name__)
FORMATS = ("json", "png", "geojson", "glamm")


def parse_formats(text: str) -> list[str]:
    """``"json,png"`` -> ``["json", "png"]``; an unknown name is an error naming ``--format``."""
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in FORMATS]
    if bad or not items:
        raise ValueError(f"--format {text!r}: unknown format(s) {bad}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(items))


@dataclass
class GeoJSONOptions:
    """GeoJSON writing options.

    Attributes:
        simplify_px: simplification tolerance in pixels (0 = exact pixel edges).
        target_crs: reproject into this CRS (e.g. ``EPSG:4326``); None = the raster's CRS.
        max_pixels: largest mask window traced at native resolution.
    """

    simplify_px: float = 0.5
    target_crs: str | None = None
    max_pixels: int = 4096 * 4096


def _dump(obj: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)
    return path


def write_json(pred: GCGPrediction, path: Path) -> Path:
    """Our GCG prediction record (design §4/§8.1) as one JSON object."""
    return _dump(pred.to_record().to_dict(), path)


def write_glamm(pred: GCGPrediction, path: Path) -> Path:
    """GLaMM's per-image GCG prediction ``{image_id, caption, phrases, pred_masks}``."""
    return _dump(pred.to_glamm(), path)


def write_png(pred: GCGPrediction, raster: Raster, path: Path) -> Path:
    """Overlay PNG: preview image, one colour per phrase mask, the box, a colour-coded caption panel."""
    from clvnet.viz import render_overlay

    view = raster.preview()
    ph, pw = view.rgb.shape[:2]
    sx, sy = pw / pred.width, ph / pred.height
    masks = pred.masks_at(ph, pw, view.valid)
    x0, y0, x1, y1 = pred.box
    img = render_overlay(view.rgb, masks, pred.phrases, box=[x0 * sx, y0 * sy, x1 * sx, y1 * sy],
                         caption=pred.caption, title=pred.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def geojson_dict(pred: GCGPrediction, raster: Raster, options: GeoJSONOptions | None = None) -> dict[str, Any]:
    """The prediction's masks as a FeatureCollection in the raster's CRS (or ``options.target_crs``).

    Raises:
        ValueError: the raster is not georeferenced.
    """
    from clvnet.inference.geo import feature_collection, mask_feature, parse_crs, pixel_area_m2

    options = options or GeoJSONOptions()
    if not raster.is_georeferenced:
        raise ValueError(f"image {raster.name} is not georeferenced (no CRS), so no GeoJSON can be written")
    if pred.mask_logits is None:
        raise ValueError("this prediction carries no mask logits")
    target = parse_crs(options.target_crs, "--geojson-crs") if options.target_crs else None
    px_area = pixel_area_m2(raster.transform, raster.crs)
    feats = []
    for i, phrase in enumerate(pred.phrases):
        pixels = rle_utils.area(phrase.masks[0])
        props: dict[str, Any] = {"id": pred.id, "phrase_index": i, "phrase": phrase.text,
                                 "span": list(phrase.span), "score": float(pred.scores[i]), "pixels": pixels,
                                 "caption": pred.caption}
        if px_area is not None:
            props["area_m2"] = pixels * px_area
        win = pred.mask_windows[i] if i < len(pred.mask_windows) else None
        if win is None:
            feats.append({"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": []},
                          "properties": props})
            continue
        mask, step = window_mask(pred.mask_logits[i], pred.height, pred.width, win, options.max_pixels)
        valid = raster.read_valid(win, mask.shape)
        if valid is not None:
            mask &= valid
        feats.append(mask_feature(mask, (win[0], win[1]), step, raster.transform, raster.crs, props,
                                  simplify_px=options.simplify_px, target_crs=target))
    return feature_collection(feats, target or raster.crs)


def write_geojson(pred: GCGPrediction, raster: Raster, path: Path, options: GeoJSONOptions | None = None) -> Path:
    """Write :func:`geojson_dict` to ``path``."""
    return _dump(geojson_dict(pred, raster, options), path)


def write_outputs(pred: GCGPrediction, raster: Raster, out_dir: Path, formats: list[str],
                  geo: GeoJSONOptions | None = None) -> list[Path]:
    """Write every requested format for one prediction as ``out_dir/<pred.id>.<ext>`` (glamm: ``glamm/<id>.json``).

    ``geojson`` is skipped, with a warning, for an image that is not georeferenced.

    Raises:
        DataError: ``pred.id`` is not a plain file name (:func:`clvnet.data.ids.safe_id`); nothing is written.
    """
    from clvnet.data.ids import safe_id

    safe_id(pred.id, record=pred.id)  # the id names files inside out_dir: never a path
    out_dir = Path(out_dir)
    written = []
    for fmt in formats:
        if fmt == "json":
            written.append(write_json(pred, out_dir / f"{pred.id}.json"))
        elif fmt == "glamm":  # a folder of <id>.json, as GLaMM's GCG evaluation reads it
            written.append(write_glamm(pred, out_dir / "glamm" / f"{pred.id}.json"))
        elif fmt == "png":
            written.append(write_png(pred, raster, out_dir / f"{pred.id}.png"))
        elif fmt == "geojson":
            if raster.is_georeferenced:
                written.append(write_geojson(pred, raster, out_dir / f"{pred.id}.geojson", geo))
            else:
                log.warning("%s is not georeferenced: no GeoJSON written for %s", raster.name, pred.id)
    return written


def format_text(pred: GCGPrediction) -> str:
    """Human-readable result: the caption with phrases marked ``[k: phrase]``, then one line per phrase.

    ``k`` is the 0-based phrase index, as in the overlay legend and the GeoJSON ``phrase_index``.
    """
    parts, pos = [], 0
    for i, p in enumerate(pred.phrases):
        s, e = p.span
        parts.append(pred.caption[pos:s])
        parts.append(f"[{i}: {pred.caption[s:e]}]")
        pos = e
    parts.append(pred.caption[pos:])
    marked = "".join(parts)
    x0, y0, x1, y1 = pred.box
    lines = [f"{pred.id}  box [{x0:g}, {y0:g}, {x1:g}, {y1:g}]",
             f"  global: {pred.global_caption}", f"  local:  {pred.local_caption}", f"  marked: {marked}"]
    for i, p in enumerate(pred.phrases):
        lines.append(f"  [{i}] {p.text!r} span {list(p.span)} score {pred.scores[i]:.3f} "
                     f"pixels {rle_utils.area(p.masks[0])}")
    return "\n".join(lines)
