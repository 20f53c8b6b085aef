"""GeoPixelD loader (MBZUAI/GeoPixelD; see ``shared/reference/geopixeld/README.md``).

Accepted inputs for :func:`load_geopixeld`:

* a per-image annotation JSON ``{id, img, gcg_description, polygons}`` (or ``segmentation`` holding
  COCO RLEs instead of ``polygons``);
* a folder of such JSONs (sorted by name);
* the training-list JSON: ``[{id, conversations: [{from, value}, ...], image, polygons: path}, ...]``.

The i-th ``[SEG]`` of the description owns ``polygons[i]``, a list of polygons (each a list of
``[x, y]`` points, or a flat ``[x0, y0, x1, y1, ...]`` list). Each polygon is one instance and becomes
one RLE, so the phrase's training target (and its evaluation GT) is the union of its instances.

Polygons are filled the way GeoPixel's own training code fills them: ``cv2.fillPoly`` on the int32
vertices, contour pixels included (:mod:`clvnet.data.polyfill` reproduces it pixel for pixel without
OpenCV). The vertices trace each object's boundary pixels, so the COCO polygon fill, which keeps
only about half of the contour, would shrink every object by up to a pixel on each side. A polygon of
one or two points, or of collinear points, is the pixel or line ``cv2.fillPoly`` draws (the trace of
a one-pixel-thick object); a self-intersecting one is filled with OpenCV's even-odd rule.

A polygon with a vertex outside the image (a pixel coordinate below 0 or at least the width / height)
is filled whole, then cropped to the image, and a warning gives the count. A ``[SEG]``/polygon-group
count mismatch, a polygon without points or with non-finite coordinates, or a phrase whose instances
all fall outside the image is a :class:`DataError`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from clvnet.data.images import image_size
from clvnet.data.loaders.common import mask_to_rle, normalise_rle, read_json, resolve
from clvnet.data.polyfill import fill_polygon, polygon_vertices
from clvnet.data.record import SEG, DataError, GCGRecord, from_tagged, validate

log = logging.getLogger(__name__)


def _polygon_rles(poly_group: Any, height: int, width: int, *, file: Path, record: str,
                  field: str) -> tuple[list[dict[str, Any]], int]:
    """Rasterise one phrase's polygons: one RLE per polygon; returns (rles, number clipped)."""
    if not isinstance(poly_group, list) or not poly_group:
        raise DataError(f"expected a non-empty list of polygons, got {str(poly_group)[:60]}", file=file,
                        record=record, field=field)
    if all(isinstance(v, (int, float)) for v in poly_group):  # a single flat polygon
        poly_group = [poly_group]
    rles, clipped = [], 0
    for k, poly in enumerate(poly_group):
        try:
            vertices = polygon_vertices(poly)
        except (TypeError, ValueError) as exc:
            raise DataError(f"bad polygon: {exc}", file=file, record=record,
                            field=f"{field}[{k}]") from exc
        if vertices.min() < 0 or vertices[:, 0].max() >= width or vertices[:, 1].max() >= height:
            clipped += 1
        rles.append(mask_to_rle(fill_polygon(vertices, height, width)))
    return rles, clipped


def _record_from_annotation(ann: dict[str, Any], ann_file: Path, image_path: Path, tagged: str | None = None,
                            meta: dict[str, Any] | None = None) -> GCGRecord:
    rid = image_path.stem
    text = tagged if tagged is not None else ann.get("gcg_description")
    if not isinstance(text, str):
        raise DataError("missing 'gcg_description' text", file=ann_file, record=rid, field="gcg_description")
    caption, phrases = from_tagged(text)
    n_seg = text.count(SEG)
    if n_seg != len(phrases):
        raise DataError(f"{n_seg} [SEG] tokens but {len(phrases)} '<p> ... </p> [SEG]' phrases", file=ann_file,
                        record=rid, field="gcg_description")
    height, width = image_size(image_path)
    if "polygons" in ann and ann["polygons"] is not None:
        groups, key = ann["polygons"], "polygons"
    elif "segmentation" in ann:
        groups, key = ann["segmentation"], "segmentation"
    else:
        raise DataError("neither 'polygons' nor 'segmentation' present", file=ann_file, record=rid)
    if not isinstance(groups, list) or len(groups) != len(phrases):
        n = len(groups) if isinstance(groups, list) else type(groups).__name__
        raise DataError(f"{len(phrases)} [SEG] phrases but {n} mask groups in '{key}'", file=ann_file,
                        record=rid, field=key)
    clipped = 0
    for i, (p, group) in enumerate(zip(phrases, groups)):
        field = f"{key}[{i}]"
        if key == "polygons":
            p.masks, c = _polygon_rles(group, height, width, file=ann_file, record=rid, field=field)
            clipped += c
        else:
            items = group if isinstance(group, list) else [group]
            p.masks = [normalise_rle(r, height, width, file=ann_file, record=rid, field=f"{field}[{k}]")
                       for k, r in enumerate(items)]
        if not p.masks or not any(_nonempty(m) for m in p.masks):
            raise DataError(f"phrase {p.text!r} has no pixel inside the {width}x{height} image", file=ann_file,
                            record=rid, field=field)
    if clipped:
        log.warning("%s: %d polygon(s) extend outside the %dx%d image and were clipped to it",
                    ann_file, clipped, width, height)
    rec = GCGRecord(image=str(image_path), height=height, width=width, caption=caption, phrases=phrases,
                    box=None, id=rid,
                    meta={"source": "geopixeld", "annotation": str(ann_file), "clipped_polygons": clipped,
                          **(meta or {})})
    validate(rec, file=ann_file)
    return rec


def _nonempty(rle: dict[str, Any]) -> bool:
    return int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode("ascii")})) > 0


def load_annotation(ann_file: Path, image_root: Path | None = None, ann: Any = None) -> GCGRecord:
    """Load one per-image GeoPixelD annotation JSON (``ann``: its already parsed content, if any).

    The image is looked up as ``image_root/img``, then next to the JSON (full relative path, then basename),
    then ``<json stem>.png`` next to the JSON.
    """
    ann_file = Path(ann_file)
    if ann is None:
        ann = read_json(ann_file)
    if not isinstance(ann, dict):
        raise DataError(f"expected a JSON object, got {type(ann).__name__}", file=ann_file)
    img_rel = ann.get("img") or ann.get("image") or f"{ann_file.stem}.png"
    if not isinstance(img_rel, str):
        raise DataError(f"the image must be a path string, got {json.dumps(img_rel)[:60]}", file=ann_file,
                        field="img")
    image = resolve(img_rel, image_root, ann_file.parent) or resolve(f"{ann_file.stem}.png", ann_file.parent)
    if image is None:
        raise DataError(f"image {img_rel!r} not found (looked in {image_root or '-'} and {ann_file.parent})",
                        file=ann_file, field="img")
    return _record_from_annotation(ann, ann_file, image)


def _bot_text(conversations: Any, file: Path, rid: str) -> tuple[str, str]:
    if not isinstance(conversations, list):
        raise DataError("'conversations' must be a list", file=file, record=rid, field="conversations")
    turns = [t for t in conversations if isinstance(t, dict) and isinstance(t.get("value", ""), str)]
    answers = [t.get("value", "") for t in turns
               if t.get("from") in ("bot", "gpt", "assistant") and SEG in t.get("value", "")]
    questions = [t.get("value", "") for t in turns if t.get("from") == "human"]
    if len(answers) != 1:
        raise DataError(f"expected exactly one answer turn with [SEG], found {len(answers)}", file=file,
                        record=rid, field="conversations")
    return answers[0], (questions[0] if questions else "")


def load_training_list(list_file: Path, root: Path | None = None) -> list[GCGRecord]:
    """Load GeoPixelD's training-list JSON; ``image`` and ``polygons`` paths resolve against ``root``
    and then the list's own folder (full relative path, then basename)."""
    list_file = Path(list_file)
    items = read_json(list_file)
    if not isinstance(items, list):
        raise DataError("training list must be a JSON list", file=list_file)
    out = []
    for n, item in enumerate(items):
        rid = str(item.get("image", f"item {n}")) if isinstance(item, dict) else f"item {n}"
        if not isinstance(item, dict) or "image" not in item or "polygons" not in item:
            raise DataError("needs 'image', 'polygons' and 'conversations'", file=list_file, record=rid)
        for what in ("image", "polygons"):
            if not isinstance(item[what], str):
                raise DataError(f"must be a path string, got {json.dumps(item[what])[:60]}", file=list_file,
                                record=rid, field=what)
        image = resolve(item["image"], root, list_file.parent)
        ann_path = resolve(item["polygons"], root, list_file.parent)
        for what, got in (("image", image), ("polygons", ann_path)):
            if got is None:
                raise DataError(f"{item[what]!r} not found under {root or '-'} or {list_file.parent}",
                                file=list_file, record=rid, field=what)
        assert image is not None and ann_path is not None
        tagged, question = _bot_text(item.get("conversations"), list_file, rid)
        ann = read_json(ann_path)
        if not isinstance(ann, dict):
            raise DataError(f"expected a JSON object, got {type(ann).__name__}", file=ann_path)
        out.append(_record_from_annotation(ann, ann_path, image, tagged=tagged,
                                           meta={"question": question, "list_id": item.get("id")}))
    return out


def load_geopixeld(src: str | Path, root: str | Path | None = None) -> list[GCGRecord]:
    """Load GeoPixelD records from a per-image JSON, a folder of them, or the training-list JSON.

    Args:
        src: the JSON file or folder.
        root: optional dataset root against which relative ``img`` / ``image`` / ``polygons`` paths
            resolve first (e.g. the folder holding ``data/GeoPixelD``).

    Returns:
        Records with absolute image paths, ``box=None``, one RLE per polygon instance.

    Raises:
        DataError: missing files, bad JSON, [SEG]/polygon mismatch, bad masks (naming file/record/field).
    """
    src = Path(src)
    root_p = Path(root) if root is not None else None
    if src.is_dir():
        files = sorted(src.glob("*.json"))
        if not files:
            raise DataError("folder holds no *.json annotation", file=src)
        return [load_annotation(f, root_p) for f in files]
    data = read_json(src)
    if isinstance(data, list):
        return load_training_list(src, root_p)
    return [load_annotation(src, root_p, ann=data)]
