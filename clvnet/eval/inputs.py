"""The evaluator's normalised inputs: one :class:`GTImage` / :class:`PredImage` per image.

Both input formats (our GCG records and GLaMM's COCO-style files) are turned into these two
dataclasses, and every metric reads only them. All checks that make the evaluator fail loudly
on bad input live here:

- duplicate image ids (GT or prediction) raise;
- a prediction whose phrase count differs from its mask count raises, naming the image;
- an RLE whose size differs from its GT image's size raises, naming the image and phrase;
- a prediction for an image absent from the GT raises;
- every RLE, GT or predicted, is validated (:func:`clvnet.data.rle.check_rle`: decodable, runs covering
  exactly H x W) before pycocotools sees it, whose ``merge`` and ``iou`` would otherwise loop forever; the
  error names the file (when known), the image and the field;
- a GT or prediction with more than :data:`clvnet.data.record.MAX_PHRASES` phrases, or a caption longer
  than :data:`clvnet.data.record.MAX_CAPTION_CHARS`, raises (the matching and AP work grow with the
  square of the phrase count).

**Multi-instance GT phrases.** A GT phrase may carry several instance masks. Its GT mask is the
*union* of its instances (the same target the model is trained on), and the phrase is
*multi-target* when it has more than one instance, *uni-target* otherwise. GLaMM's COCO GT has one
mask per label, so its phrases are uni-target unless an annotation carries our extra field
``num_instances`` (written by ``clvnet eval export-glamm``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_utils

from clvnet.data import rle as rle_utils
from clvnet.data.record import MAX_CAPTION_CHARS, MAX_PHRASES, DataError, GCGRecord

ImageId = str | int
CocoRLE = dict[str, Any]  # {"size": [H, W], "counts": bytes}


@dataclass
class GTImage:
    """One ground-truth image: reference captions, phrases and one (union) mask per phrase."""

    image_id: ImageId
    height: int
    width: int
    captions: list[str]
    phrases: list[str]
    masks: list[CocoRLE]
    n_instances: list[int] = field(default_factory=list)
    source: str | None = None  # the file it was read from, for messages

    @property
    def key(self) -> str:
        return str(self.image_id)

    def is_multi(self, k: int) -> bool:
        """Whether GT phrase ``k`` is multi-target (more than one instance)."""
        return self.n_instances[k] > 1


@dataclass
class PredImage:
    """One prediction: a plain caption, its phrases, and exactly one mask per phrase (``[SEG]`` order)."""

    image_id: ImageId
    caption: str
    phrases: list[str]
    masks: list[CocoRLE]
    source: str | None = None  # the file it was read from, for messages

    @property
    def key(self) -> str:
        return str(self.image_id)


# --------------------------------------------------------------------------- RLE normalisation
Where = dict[str, Any]  # DataError keywords: file, record, field


def to_coco_rle(seg: Any, height: int, width: int, *, file: str | Path | None = None,
                record: ImageId | None = None, field: str | None = None) -> CocoRLE:
    """Any COCO segmentation (compressed / uncompressed RLE, polygons) -> compressed RLE with bytes counts.

    Raises:
        DataError: naming ``file``, ``record`` and ``field``, if it is not a valid segmentation
            (:func:`clvnet.data.rle.check_rle`) or its size differs from ``height`` x ``width``.
    """
    where: Where = {"file": file, "record": record, "field": field}
    if isinstance(seg, list):  # COCO-format polygons: the COCO fill, as GLaMM's evaluator reads its GT
        if not all(isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in poly)
                for poly in seg):
            raise DataError("not a COCO polygon list (each polygon a flat list of at least 3 finite x, y pairs)",
                            **where)
        return mask_utils.merge(mask_utils.frPyObjects(seg, height, width)) if seg else _empty(height, width)
    try:
        h, w = rle_utils.check_rle(seg)
    except ValueError as exc:
        raise DataError(f"not a valid COCO RLE: {exc}", **where) from exc
    if (h, w) != (height, width):
        raise DataError(f"RLE size {h}x{w} differs from the GT image size {height}x{width}", **where)
    counts = seg["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)  # type: ignore[no-any-return]
    return {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def check_pred_rle(seg: Any, **where: Any) -> None:
    """Validate a predicted mask on load (its size is checked against the GT later, in :func:`align`).

    Raises:
        DataError: naming ``where`` (file, record, field).
    """
    if isinstance(seg, list):
        to_coco_rle(seg, 1, 1, **where)  # polygon syntax only; the GT size is not known yet
        return
    try:
        rle_utils.check_rle(seg)
    except ValueError as exc:
        raise DataError(f"not a valid COCO RLE: {exc}", **where) from exc


def check_limits(n_phrases: int, captions: Sequence[str], what: str, **where: Any) -> None:
    """Raise :class:`DataError` when an image has more phrases, or a longer caption, than the evaluator takes
    (:data:`clvnet.data.record.MAX_PHRASES`, :data:`clvnet.data.record.MAX_CAPTION_CHARS`)."""
    if n_phrases > MAX_PHRASES:
        raise DataError(f"{what} has {n_phrases} phrases; the evaluator takes at most {MAX_PHRASES} per image",
                        **where)
    longest = max((len(c) for c in captions), default=0)
    if longest > MAX_CAPTION_CHARS:
        raise DataError(f"{what} caption has {longest} characters; the evaluator takes at most "
                        f"{MAX_CAPTION_CHARS}", **{**where, "field": "caption"})


def _empty(height: int, width: int) -> CocoRLE:
    import numpy as np

    return mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F"))  # type: ignore[no-any-return]


def union_rle(rles: Sequence[CocoRLE], height: int, width: int) -> CocoRLE:
    """Exact pixel union of RLEs (an empty mask for an empty list)."""
    if not rles:
        return _empty(height, width)
    if len(rles) == 1:
        return rles[0]
    return mask_utils.merge(list(rles), intersect=0)  # type: ignore[no-any-return]


def rle_json(rle: CocoRLE) -> dict[str, Any]:
    """A JSON-safe copy (counts as str) of a compressed RLE."""
    counts = rle["counts"]
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


# --------------------------------------------------------------------------- from GCG records
def gt_from_records(records: Iterable[GCGRecord], file: str | Path | None = None) -> list[GTImage]:
    """GT records -> :class:`GTImage` list (phrase mask = union of its instance masks).

    Args:
        records: the GT records.
        file: the file they were read from, named in errors.
    """
    out: list[GTImage] = []
    src = None if file is None else str(file)
    for rec in records:
        check_limits(len(rec.phrases), [rec.caption], "GT", file=file, record=rec.id, field="phrases")
        masks, n_inst = [], []
        for i, p in enumerate(rec.phrases):
            if not p.masks:
                raise DataError(f"GT phrase {p.text!r} has no mask", file=file, record=rec.id,
                                field=f"phrases[{i}].masks")
            inst = [to_coco_rle(m, rec.height, rec.width, file=file, record=rec.id, field=f"phrases[{i}].masks[{k}]")
                    for k, m in enumerate(p.masks)]
            masks.append(union_rle(inst, rec.height, rec.width))
            n_inst.append(len(inst))
        out.append(GTImage(image_id=rec.id, height=rec.height, width=rec.width, captions=[rec.caption],
                           phrases=[p.text for p in rec.phrases], masks=masks, n_instances=n_inst, source=src))
    check_unique(out, "GT")
    return out


def pred_from_records(records: Iterable[GCGRecord], file: str | Path | None = None) -> list[PredImage]:
    """Prediction records -> :class:`PredImage` list.

    Each predicted phrase must hold exactly one valid mask; ``meta["scores"]``, when present, must have
    one value per phrase (the protocol scores every mask 1.0, so the values themselves are unused).
    Mask sizes are checked against the GT later, in :func:`align`.

    Args:
        records: the prediction records.
        file: the file they were read from, named in errors.
    """
    out: list[PredImage] = []
    src = None if file is None else str(file)
    for rec in records:
        check_limits(len(rec.phrases), [rec.caption], "prediction", file=file, record=rec.id, field="phrases")
        n_masks = [len(p.masks) for p in rec.phrases]
        if any(n != 1 for n in n_masks):
            raise DataError(f"prediction has {len(rec.phrases)} phrases but mask counts per phrase {n_masks}; "
                            "a prediction needs exactly one mask per phrase", file=file, record=rec.id,
                            field="phrases")
        for i, p in enumerate(rec.phrases):
            check_pred_rle(p.masks[0], file=file, record=rec.id, field=f"phrases[{i}].masks[0]")
        scores = rec.meta.get("scores")
        if scores is not None and len(scores) != len(rec.phrases):
            raise DataError(f"meta.scores has {len(scores)} values for {len(rec.phrases)} phrases",
                            file=file, record=rec.id, field="meta.scores")
        out.append(PredImage(image_id=rec.id, caption=rec.caption, phrases=[p.text for p in rec.phrases],
                             masks=[p.masks[0] for p in rec.phrases], source=src))
    check_unique(out, "prediction")
    return out


# --------------------------------------------------------------------------- checks and alignment
def check_unique(items: Sequence[GTImage] | Sequence[PredImage], what: str) -> None:
    """Raise on a duplicate image id."""
    seen: set[str] = set()
    for it in items:
        if it.key in seen:
            raise DataError(f"duplicate {what} image id {it.image_id!r}", record=it.image_id)
        seen.add(it.key)


def check_id_types(gts: Sequence[GTImage]) -> None:
    """All GT image ids must share one type (they are sorted, as COCOeval sorts them)."""
    kinds = {type(g.image_id).__name__ for g in gts}
    if len(kinds) > 1:
        raise DataError(f"GT image ids mix types {sorted(kinds)}; use all str or all int")


def align(gts: Sequence[GTImage], preds: Sequence[PredImage]) -> tuple[list[PredImage], list[ImageId]]:
    """Order predictions like the GT, checking them against it.

    A GT image without a prediction gets an empty prediction (empty caption, no phrases) and is
    listed in the returned ``missing`` ids.

    Returns:
        ``(aligned, missing)``: one :class:`PredImage` per GT image in GT order, and the missing ids.

    Raises:
        DataError: a prediction for an unknown image, a phrase/mask count mismatch, or an RLE size
            different from the GT image's size.
    """
    check_unique(gts, "GT")
    check_unique(preds, "prediction")
    by_key = {p.key: p for p in preds}
    gt_keys = {g.key for g in gts}
    unknown = [p.image_id for p in preds if p.key not in gt_keys]
    if unknown:
        raise DataError(f"{len(unknown)} prediction(s) for images not in the GT, e.g. {unknown[:5]}",
                        record=unknown[0])
    aligned: list[PredImage] = []
    missing: list[ImageId] = []
    for g in gts:
        p = by_key.get(g.key)
        if p is None:
            missing.append(g.image_id)
            aligned.append(PredImage(image_id=g.image_id, caption="", phrases=[], masks=[]))
            continue
        if len(p.phrases) != len(p.masks):
            raise DataError(f"prediction has {len(p.phrases)} phrases but {len(p.masks)} masks",
                            file=p.source, record=g.image_id)
        check_limits(len(p.phrases), [p.caption], "prediction", file=p.source, record=g.image_id, field="phrases")
        masks = [to_coco_rle(m, g.height, g.width, file=p.source, record=g.image_id, field=f"phrases[{j}].masks[0]")
                 for j, m in enumerate(p.masks)]
        aligned.append(PredImage(image_id=g.image_id, caption=p.caption, phrases=list(p.phrases), masks=masks,
                                 source=p.source))
    return aligned, missing
