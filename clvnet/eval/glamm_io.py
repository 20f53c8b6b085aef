"""GLaMM's GCG file formats: read the COCO-style GT pair and the per-image prediction folder, and export.

- GT mask file (COCO instances): ``images`` with ``id, height, width``; ``annotations`` with
  ``image_id``, ``category_id`` 1 and RLE (or polygon) ``segmentation``; the k-th annotation of an
  image (file order) belongs to its k-th label. Our export adds ``num_instances`` per annotation
  (ignored by GLaMM's evaluator) so the uni-/multi-target split survives a round trip.
- GT caption file (COCO captions): one annotation per image with ``caption`` and ``labels``; extra
  caption annotations of an image are used as additional CIDEr/METEOR references.
- Predictions: a folder of ``{image_id}.json`` files, each ``{image_id, caption, phrases, pred_masks}``
  (or that dict nested under a single key, which GLaMM's evaluator also accepts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clvnet.data.ids import check_unique_ids, safe_id
from clvnet.data.record import DataError, GCGRecord, utf8_error
from clvnet.eval.inputs import (
    GTImage,
    PredImage,
    check_limits,
    check_pred_rle,
    check_unique,
    gt_from_records,
    rle_json,
    to_coco_rle,
)

MASK_GT_NAME = "gcg_coco_mask_gt.json"
CAPTION_GT_NAME = "gcg_coco_caption_gt.json"
PRED_DIR_NAME = "predictions"


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError("file not found", file=path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg} (line {exc.lineno})", file=path) from exc
    except UnicodeDecodeError as exc:
        raise utf8_error(exc, path) from None


def read_glamm_gt(mask_path: str | Path, caption_path: str | Path) -> list[GTImage]:
    """Read GLaMM's COCO GT pair into :class:`GTImage` records (caption-file image order)."""
    mask_path, caption_path = Path(mask_path), Path(caption_path)
    masks_js, caps_js = _load_json(mask_path), _load_json(caption_path)
    for js, p in ((masks_js, mask_path), (caps_js, caption_path)):
        if not isinstance(js, dict) or "images" not in js or "annotations" not in js:
            raise DataError("not a COCO file (needs 'images' and 'annotations')", file=p)
    sizes: dict[Any, tuple[int, int]] = {}
    for im in masks_js["images"]:
        if im["id"] in sizes:
            raise DataError(f"duplicate image id {im['id']!r}", file=mask_path, record=im["id"])
        sizes[im["id"]] = (int(im["height"]), int(im["width"]))
    seg_by_img: dict[Any, list[tuple[Any, int, int]]] = {k: [] for k in sizes}
    for n, ann in enumerate(masks_js["annotations"]):
        iid = ann.get("image_id")
        if iid not in sizes:
            raise DataError(f"annotation {n} refers to unknown image {iid!r}", file=mask_path, record=iid)
        if ann.get("category_id", 1) != 1 or ann.get("iscrowd", 0):
            raise DataError(f"annotation {n}: GCG GT masks must have category_id 1 and iscrowd 0, got "
                            f"{ann.get('category_id')} / {ann.get('iscrowd')}", file=mask_path, record=iid)
        seg_by_img[iid].append((ann.get("segmentation"), int(ann.get("num_instances", 1)), n))
    caps_by_img: dict[Any, list[dict[str, Any]]] = {}
    for ann in caps_js["annotations"]:
        caps_by_img.setdefault(ann.get("image_id"), []).append(ann)
    cap_ids = [im["id"] for im in caps_js["images"]]
    if set(cap_ids) != set(sizes):
        diff = sorted(map(str, set(cap_ids) ^ set(sizes)))[:5]
        raise DataError(f"the mask and caption files list different images, e.g. {diff}", file=caption_path)
    out: list[GTImage] = []
    for iid in cap_ids:
        anns = caps_by_img.get(iid)
        if not anns or "labels" not in anns[0] or "caption" not in anns[0]:
            raise DataError("no caption annotation with 'caption' and 'labels'", file=caption_path, record=iid)
        labels = [str(s) for s in anns[0]["labels"]]
        segs = seg_by_img[iid]
        if len(segs) != len(labels):
            raise DataError(f"{len(labels)} labels but {len(segs)} masks", file=mask_path, record=iid)
        h, w = sizes[iid]
        check_limits(len(labels), [str(a.get("caption", "")) for a in anns], "GT", file=caption_path, record=iid,
                     field="labels")
        out.append(GTImage(image_id=iid, height=h, width=w, captions=[str(a["caption"]) for a in anns],
                           phrases=labels,
                           masks=[to_coco_rle(s, h, w, file=mask_path, record=iid, field=f"annotations[{n}].segmentation")
                                  for s, _, n in segs],
                           n_instances=[k for _, k, _ in segs], source=str(mask_path)))
    check_unique(out, "GT")
    return out


def read_glamm_prediction(path: str | Path) -> PredImage:
    """Read one GLaMM per-image prediction file."""
    path = Path(path)
    js = _load_json(path)
    if isinstance(js, dict) and "caption" not in js and len(js) == 1:
        js = next(iter(js.values()))  # {image_id: {...}}, as GLaMM's evaluator allows
    if not isinstance(js, dict) or not all(k in js for k in ("caption", "phrases", "pred_masks")):
        raise DataError("not a GLaMM prediction (needs caption, phrases, pred_masks)", file=path)
    iid = js.get("image_id", path.stem)
    if str(iid) != path.stem:
        raise DataError(f"image_id {iid!r} differs from the file name", file=path, record=iid)
    if not isinstance(js["phrases"], list) or not isinstance(js["pred_masks"], list):
        raise DataError("'phrases' and 'pred_masks' must be lists", file=path, record=iid)
    if len(js["phrases"]) != len(js["pred_masks"]):
        raise DataError(f"{len(js['phrases'])} phrases but {len(js['pred_masks'])} masks", file=path, record=iid)
    check_limits(len(js["phrases"]), [str(js["caption"])], "prediction", file=path, record=iid, field="phrases")
    for j, m in enumerate(js["pred_masks"]):
        check_pred_rle(m, file=path, record=iid, field=f"pred_masks[{j}]")
    return PredImage(image_id=iid, caption=str(js["caption"]), phrases=[str(p) for p in js["phrases"]],
                     masks=list(js["pred_masks"]), source=str(path))


def read_glamm_predictions(folder: str | Path, gts: Sequence[GTImage]) -> list[PredImage]:
    """Read ``{image_id}.json`` for each GT image; an absent file is a missing prediction (not read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("prediction folder not found", file=folder)
    out = []
    for g in gts:
        f = folder / f"{safe_id(str(g.image_id), record=g.image_id, field='image_id')}.json"
        if f.is_file():
            out.append(read_glamm_prediction(f))
    return out


# --------------------------------------------------------------------------- export
def export_glamm(gt_records: Sequence[GCGRecord], pred_records: Sequence[GCGRecord],
                 out_dir: str | Path) -> dict[str, Path]:
    """Write our GT and prediction records as GLaMM's files.

    Writes ``out_dir/gcg_coco_mask_gt.json`` (one union mask per phrase, with ``num_instances``),
    ``out_dir/gcg_coco_caption_gt.json`` and ``out_dir/predictions/{id}.json``.

    Returns:
        the three paths under keys ``mask_gt``, ``caption_gt``, ``predictions``.
    """
    from pycocotools import mask as mask_utils

    gts = gt_from_records(gt_records)
    check_unique_ids([(safe_id(r.id, record=r.id), f"prediction {r.id!r}") for r in pred_records])
    out_dir = Path(out_dir)
    pred_dir = out_dir / PRED_DIR_NAME
    pred_dir.mkdir(parents=True, exist_ok=True)
    images: list[dict[str, Any]] = []
    mask_anns: list[dict[str, Any]] = []
    cap_anns: list[dict[str, Any]] = []
    for g in gts:
        images.append({"id": g.image_id, "height": g.height, "width": g.width, "file_name": f"{g.image_id}"})
        for rle, n in zip(g.masks, g.n_instances):
            mask_anns.append({"id": len(mask_anns) + 1, "image_id": g.image_id, "category_id": 1,
                              "segmentation": rle_json(rle), "area": float(mask_utils.area(rle)),
                              "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0,
                              "num_instances": n})
        cap_anns.append({"id": len(cap_anns) + 1, "image_id": g.image_id, "caption": g.captions[0],
                         "labels": list(g.phrases)})
    cats = [{"id": 1, "name": "object"}]
    paths = {"mask_gt": out_dir / MASK_GT_NAME, "caption_gt": out_dir / CAPTION_GT_NAME, "predictions": pred_dir}
    paths["mask_gt"].write_text(json.dumps({"images": images, "annotations": mask_anns, "categories": cats}))
    paths["caption_gt"].write_text(json.dumps({"images": images, "annotations": cap_anns}))
    for rec in pred_records:
        if any(len(p.masks) != 1 for p in rec.phrases):
            raise DataError("a prediction needs exactly one mask per phrase", record=rec.id)
        js = {"image_id": rec.id, "caption": rec.caption, "phrases": [p.text for p in rec.phrases],
              "pred_masks": [rle_json(to_coco_rle(p.masks[0], rec.height, rec.width, record=rec.id,
                                                  field=f"phrases[{j}].masks[0]"))
                             for j, p in enumerate(rec.phrases)]}
        (pred_dir / f"{rec.id}.json").write_text(json.dumps(js))
    return paths
