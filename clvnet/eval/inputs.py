"""The evaluator's normalised inputs: one :class:`GTImage` / :class:`PredImage` per image.

Both input formats (our GCG records and GLaMM's COCO-style files) are turned into these two
dataclasses, and every metric reads only them. All checks that make the evaluator fail loudly
on bad input live here:

- duplicate image ids (GT or prediction) raise;
- a prediction whose phrase count differs from its mask count raises, naming the image;
- an RLE whose size differs from its GT image's size raises, naming the image and phrase;
- a prediction for an image absent from the GT raises.

**Multi-instance GT phrases.** A GT phrase may carry several instance masks. Its GT mask is the
*union* of its instances (the same target the model is trained on), and the phrase is
*multi-target* when it has more than one instance, *uni-target* otherwise. GLaMM's COCO GT has one
mask per label, so its phrases are uni-target unless an annotation carries our extra field
``num_instances`` (written by ``clvnet eval export-glamm``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pycocotools import mask as mask_utils

from clvnet.data.record import DataError, GCGRecord

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

    @property
    def key(self) -> str:
        return str(self.image_id)


# --------------------------------------------------------------------------- RLE normalisation
def to_coco_rle(seg: Any, height: int, width: int, *, where: str) -> CocoRLE:
    """Any COCO segmentation (compressed / uncompressed RLE, polygons) -> compressed RLE with bytes counts.

    Raises:
        DataError: if it is not a segmentation or its size differs from ``height`` x ``width``.
    """
    if isinstance(seg, list):  # COCO-format polygons: the COCO fill, as GLaMM's evaluator reads its GT
        try:
            rles = mask_utils.frPyObjects(seg, height, width)
        except Exception as exc:
            raise DataError(f"not a COCO polygon list: {exc}", record=where) from exc
        return mask_utils.merge(rles) if rles else _empty(height, width)
    if not isinstance(seg, dict) or "size" not in seg or "counts" not in seg:
        raise DataError(f"not a COCO RLE (needs 'size' and 'counts'): {str(seg)[:80]}", record=where)
    h, w = (int(v) for v in seg["size"])
    if (h, w) != (height, width):
        raise DataError(f"RLE size {h}x{w} differs from the GT image size {height}x{width}", record=where)
    counts = seg["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)  # type: ignore[no-any-return]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    if not isinstance(counts, bytes):
        raise DataError(f"RLE counts must be str, bytes or a list, got {type(counts).__name__}", record=where)
    return {"size": [h, w], "counts": counts}


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
def gt_from_records(records: Iterable[GCGRecord]) -> list[GTImage]:
    """GT records -> :class:`GTImage` list (phrase mask = union of its instance masks)."""
    out: list[GTImage] = []
    for rec in records:
        masks, n_inst = [], []
        for i, p in enumerate(rec.phrases):
            if not p.masks:
                raise DataError(f"GT phrase {p.text!r} has no mask", record=rec.id, field=f"phrases[{i}].masks")
            inst = [to_coco_rle(m, rec.height, rec.width, where=f"{rec.id} phrases[{i}].masks[{k}]")
                    for k, m in enumerate(p.masks)]
            masks.append(union_rle(inst, rec.height, rec.width))
            n_inst.append(len(inst))
        out.append(GTImage(image_id=rec.id, height=rec.height, width=rec.width, captions=[rec.caption],
                           phrases=[p.text for p in rec.phrases], masks=masks, n_instances=n_inst))
    check_unique(out, "GT")
    return out


def pred_from_records(records: Iterable[GCGRecord]) -> list[PredImage]:
    """Prediction records -> :class:`PredImage` list.

    Each predicted phrase must hold exactly one mask; ``meta["scores"]``, when present, must have
    one value per phrase (the protocol scores every mask 1.0, so the values themselves are unused).
    Mask sizes are checked against the GT later, in :func:`align`.
    """
    out: list[PredImage] = []
    for rec in records:
        n_masks = [len(p.masks) for p in rec.phrases]
        if any(n != 1 for n in n_masks):
            raise DataError(f"prediction has {len(rec.phrases)} phrases but mask counts per phrase {n_masks}; "
                            "a prediction needs exactly one mask per phrase", record=rec.id, field="phrases")
        scores = rec.meta.get("scores")
        if scores is not None and len(scores) != len(rec.phrases):
            raise DataError(f"meta.scores has {len(scores)} values for {len(rec.phrases)} phrases",
                            record=rec.id, field="meta.scores")
        out.append(PredImage(image_id=rec.id, caption=rec.caption, phrases=[p.text for p in rec.phrases],
                             masks=[p.masks[0] for p in rec.phrases]))
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
                            record=g.image_id)
        masks = [to_coco_rle(m, g.height, g.width, where=f"{g.image_id} pred mask {j}")
                 for j, m in enumerate(p.masks)]
        aligned.append(PredImage(image_id=g.image_id, caption=p.caption, phrases=list(p.phrases), masks=masks))
    return aligned, missing
