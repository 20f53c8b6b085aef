"""GranD-f / GLaMM GCG loaders.

Two layouts are read:

* **GCG annotations** (GranD-f HA, and GLaMM's converted Flickr / RefCOCOg / PSG GCG files):
  a JSON list (or JSONL, or a dict of such objects) of
  ``{"file_name", "caption", "groundings": {phrase: {"token_positives": [s, e], "rle_masks": [RLE, ...]}}}``.
  ``caption[s:e]`` is the phrase (GLaMM inserts its tags exactly there); every RLE is one instance.
* **COCO-style ground truth** used by GLaMM's GCG evaluation: a mask file in COCO *instances* format
  (``images`` + ``annotations`` with ``segmentation``) and a caption file in COCO *captions* format
  whose per-image annotation holds ``caption`` and ``labels`` (one label per mask annotation of that
  image, in order). Each label is located in the caption (first free case-insensitive occurrence).

Image sizes come from the RLEs / the COCO ``images`` entries and are checked against the image file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from clvnet.data import rle as rle_utils
from clvnet.data.images import image_size
from clvnet.data.loaders.common import normalise_rle, read_json, resolve
from clvnet.data.record import DataError, GCGRecord, Phrase, iter_lines, validate


def _read_items(path: Path) -> list[dict[str, Any]]:
    """A JSON list / dict of objects, or JSONL; bad lines name the file and line."""
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise DataError("file not found", file=path)
        items = []
        for lineno, line in iter_lines(path):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"line {lineno} is not valid JSON (truncated?): {exc.msg}", file=path,
                                record=f"line {lineno}") from exc
        return items
    data = read_json(path)
    if isinstance(data, dict):
        data = list(data.values()) if all(isinstance(v, dict) for v in data.values()) else [data]
    if not isinstance(data, list):
        raise DataError(f"expected a list of GCG objects, got {type(data).__name__}", file=path)
    return data


def _find_image(file_name: str, images: Path | None, ann_file: Path, height: int, width: int, rid: str,
                check_images: bool) -> str:
    found = resolve(file_name, images, ann_file.parent)
    if found is None:
        if check_images:
            raise DataError(f"image {file_name!r} not found under {images or '-'} or {ann_file.parent}",
                            file=ann_file, record=rid, field="file_name")
        base = images if images is not None else ann_file.parent
        return str((base / file_name).resolve())
    if check_images:
        h, w = image_size(found)
        if (h, w) != (height, width):
            raise DataError(f"image {found} is {h}x{w} but its masks are {height}x{width}", file=ann_file,
                            record=rid, field="file_name")
    return str(found)


def _span(tp: Any, file: Path, rid: str, field: str) -> tuple[int, int]:
    if isinstance(tp, list) and len(tp) == 1 and isinstance(tp[0], list):
        tp = tp[0]
    if not (isinstance(tp, list) and len(tp) == 2 and all(isinstance(v, int) for v in tp)):
        raise DataError(f"token_positives must be [start, end], got {tp!r}", file=file, record=rid, field=field)
    return int(tp[0]), int(tp[1])


def _grandf_record(item: dict[str, Any], n: int, ann_file: Path, images: Path | None,
                   check_images: bool) -> GCGRecord:
    rid = str(item.get("file_name", f"item {n}"))
    for key in ("file_name", "caption", "groundings"):
        if key not in item:
            raise DataError(f"missing key '{key}'", file=ann_file, record=rid, field=key)
    caption, groundings = item["caption"], item["groundings"]
    if not isinstance(caption, str) or not isinstance(groundings, dict):
        raise DataError("'caption' must be a string and 'groundings' a mapping", file=ann_file, record=rid)
    if not isinstance(item["file_name"], str) or not item["file_name"]:
        raise DataError(f"must be an image file name, got {json.dumps(item['file_name'])[:60]}", file=ann_file,
                        record=rid, field="file_name")
    phrases: list[Phrase] = []
    size: tuple[int, int] | None = None
    for key, g in groundings.items():
        field = f"groundings[{key!r}]"
        if not isinstance(g, dict) or "token_positives" not in g or "rle_masks" not in g:
            raise DataError("needs 'token_positives' and 'rle_masks'", file=ann_file, record=rid, field=field)
        s, e = _span(g["token_positives"], ann_file, rid, field + ".token_positives")
        if not (0 <= s < e <= len(caption)):
            raise DataError(f"span [{s}, {e}] is outside the caption (length {len(caption)})", file=ann_file,
                            record=rid, field=field + ".token_positives")
        text = caption[s:e]
        # trim whitespace the span may include, keeping it exact
        s += len(text) - len(text.lstrip())
        e -= len(text) - len(text.rstrip())
        text = caption[s:e]
        if " ".join(text.lower().split()) != " ".join(str(key).lower().split()):
            raise DataError(f"span [{s}, {e}] gives {text!r}, expected the phrase {key!r}", file=ann_file,
                            record=rid, field=field + ".token_positives")
        rles = g["rle_masks"]
        if not isinstance(rles, list) or not rles:
            raise DataError("no mask for this phrase", file=ann_file, record=rid, field=field + ".rle_masks")
        if size is None:
            try:
                size = rle_utils.check_rle(rles[0])
            except ValueError as exc:
                raise DataError(f"not a valid COCO RLE: {exc}", file=ann_file, record=rid,
                                field=field + ".rle_masks[0]") from exc
        masks = [normalise_rle(r, size[0], size[1], file=ann_file, record=rid, field=f"{field}.rle_masks[{k}]")
                 for k, r in enumerate(rles)]
        phrases.append(Phrase(text=text, span=(s, e), masks=masks))
    if size is None:
        raise DataError("no groundings: cannot tell the image size", file=ann_file, record=rid, field="groundings")
    phrases.sort(key=lambda p: p.span)
    image = _find_image(item["file_name"], images, ann_file, size[0], size[1], rid, check_images)
    rec = GCGRecord(image=image, height=size[0], width=size[1], caption=caption, phrases=phrases,
                    id=Path(item["file_name"]).stem, meta={"source": "grandf", "annotation": str(ann_file)})
    validate(rec, file=ann_file)
    return rec


def load_grandf(src: str | Path, images: str | Path | None = None, *, check_images: bool = True
                ) -> list[GCGRecord]:
    """Load GranD-f / GLaMM GCG annotations (JSON list, dict or JSONL).

    Args:
        src: annotation file.
        images: image folder (``file_name`` resolves against it, then against the annotation's folder).
        check_images: require every image to exist and match the mask size.

    Returns:
        Records (``box=None``) with phrases sorted by span, one RLE per instance.

    Raises:
        DataError: bad JSON, span/phrase mismatch, bad or mis-sized RLE, missing image.
    """
    src = Path(src)
    img_dir = Path(images) if images is not None else None
    items = _read_items(src)
    out = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise DataError(f"expected an object, got {type(item).__name__}", file=src, record=f"item {n}")
        out.append(_grandf_record(item, n, src, img_dir, check_images))
    return out


def _find_label(caption: str, label: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    low, lab = caption.lower(), label.lower().strip()
    start = low.find(lab)
    while start >= 0:
        end = start + len(lab)
        if all(end <= s or start >= e for s, e in taken):
            return start, end
        start = low.find(lab, start + 1)
    return None


def _coco_segmentation(seg: Any, height: int, width: int, file: Path, rid: str, field: str) -> dict[str, Any]:
    if isinstance(seg, list):  # COCO-format polygons: the COCO fill, as GLaMM reads them with pycocotools
        if not seg:
            raise DataError("empty polygon list", file=file, record=rid, field=field)
        polys = seg if isinstance(seg[0], list) else [seg]
        merged = mask_utils.merge(mask_utils.frPyObjects([list(map(float, p)) for p in polys], height, width))
        return {"size": [height, width], "counts": merged["counts"].decode("ascii")}
    return normalise_rle(seg, height, width, file=file, record=rid, field=field)


def load_glamm_coco_gt(mask_file: str | Path, caption_file: str | Path, images: str | Path | None = None, *,
                       check_images: bool = True) -> list[GCGRecord]:
    """Load GLaMM's COCO-style GCG ground truth (mask file + caption file) as records.

    Args:
        mask_file: COCO instances JSON (``images``, ``annotations`` with ``segmentation``).
        caption_file: COCO captions JSON whose annotations carry ``caption`` and ``labels``.
        images: image folder for ``file_name``.
        check_images: require every image to exist and match the size in ``images``.

    Returns:
        One record per image of the caption file; label ``i`` owns the i-th mask annotation of the image.

    Raises:
        DataError: label/mask count mismatch, a label missing from the caption, bad masks, missing images.
    """
    mask_file, caption_file = Path(mask_file), Path(caption_file)
    img_dir = Path(images) if images is not None else None
    inst, caps = read_json(mask_file), read_json(caption_file)
    for f, d in ((mask_file, inst), (caption_file, caps)):
        if not isinstance(d, dict) or "images" not in d or "annotations" not in d:
            raise DataError("expected a COCO JSON with 'images' and 'annotations'", file=f)
    img_info = {im["id"]: im for im in inst["images"]}
    masks_by_img: dict[Any, list[dict[str, Any]]] = {}
    for a in inst["annotations"]:
        masks_by_img.setdefault(a["image_id"], []).append(a)
    out = []
    for cap in caps["annotations"]:
        iid = cap.get("image_id")
        if iid not in img_info:
            raise DataError(f"image_id {iid!r} is not in the mask file's images", file=caption_file, record=iid)
        info = img_info[iid]
        rid = str(info.get("file_name", iid))
        caption, labels = cap.get("caption"), cap.get("labels")
        if not isinstance(caption, str) or not isinstance(labels, list):
            raise DataError("needs 'caption' (str) and 'labels' (list)", file=caption_file, record=rid)
        anns = masks_by_img.get(iid, [])
        if len(anns) != len(labels):
            raise DataError(f"{len(labels)} labels but {len(anns)} mask annotations", file=caption_file,
                            record=rid, field="labels")
        h, w = int(info["height"]), int(info["width"])
        phrases: list[Phrase] = []
        taken: list[tuple[int, int]] = []
        for k, (label, ann) in enumerate(zip(labels, anns)):
            span = _find_label(caption, str(label), taken)
            if span is None:
                raise DataError(f"label {label!r} does not occur in the caption (or only overlapping another)",
                                file=caption_file, record=rid, field=f"labels[{k}]")
            taken.append(span)
            rle = _coco_segmentation(ann.get("segmentation"), h, w, mask_file, rid,
                                     f"annotations[id={ann.get('id')}].segmentation")
            phrases.append(Phrase(text=caption[span[0]:span[1]], span=span, masks=[rle]))
        phrases.sort(key=lambda p: p.span)
        image = _find_image(str(info["file_name"]), img_dir, mask_file, h, w, rid, check_images)
        rec = GCGRecord(image=image, height=h, width=w, caption=caption, phrases=phrases,
                        id=Path(str(info["file_name"])).stem,
                        meta={"source": "glamm_coco_gt", "image_id": iid})
        validate(rec, file=caption_file)
        out.append(rec)
    return out
