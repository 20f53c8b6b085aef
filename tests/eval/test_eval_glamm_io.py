"""GLaMM file formats: integer image ids, reading errors, and AP50 / mIoU equal to GLaMM's own code path
(re-written here from GCG_EVAL.md) on the same files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clvnet.data.record import DataError
from clvnet.data.rle import encode
from clvnet.eval import evaluate_masks
from clvnet.eval.glamm_io import read_glamm_gt, read_glamm_predictions

IDS = [10, 9, 100, 2, 33, 5, 71, 8]  # int ids: COCOeval sorts them numerically


def _rect(rng: np.random.Generator, s: int = 32) -> np.ndarray:
    m = np.zeros((s, s), dtype=np.uint8)
    y, x = rng.integers(0, s - 8, size=2)
    h, w = rng.integers(3, 9, size=2)
    m[y:y + h, x:x + w] = 1
    return m


@pytest.fixture
def glamm_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(11)
    images, masks, caps = [], [], []
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    for iid in IDS:
        images.append({"id": iid, "height": 32, "width": 32, "file_name": f"{iid}.png"})
        n = int(rng.integers(1, 5))
        gt_m = [_rect(rng) for _ in range(n)]
        for m in gt_m:
            masks.append({"id": len(masks) + 1, "image_id": iid, "category_id": 1, "segmentation": encode(m),
                          "area": float(m.sum()), "bbox": [0, 0, 1, 1], "iscrowd": 0})
        labels = [f"object {k}" for k in range(n)]
        caps.append({"id": len(caps) + 1, "image_id": iid, "caption": " and ".join(labels), "labels": labels})
        if iid == 33:
            continue  # a missing prediction
        pm = [np.roll(m, int(rng.integers(-2, 3)), axis=1) for m in gt_m] + [_rect(rng)]
        (pred_dir / f"{iid}.json").write_text(json.dumps(
            {"image_id": iid, "caption": "objects", "phrases": [f"object {k}" for k in range(len(pm))],
             "pred_masks": [encode(m) for m in pm]}))
    (tmp_path / "mask.json").write_text(json.dumps({"images": images, "annotations": masks,
                                                    "categories": [{"id": 1, "name": "o"}]}))
    (tmp_path / "cap.json").write_text(json.dumps({"images": images, "annotations": caps}))
    return tmp_path / "mask.json", tmp_path / "cap.json", pred_dir


def _glamm_reference(mask_path: Path, pred_dir: Path) -> tuple[float, float]:
    """AP50 and mIoU as GLaMM's evaluator computes them (missing file -> no detections, mIoU 0)."""
    from pycocotools import mask as mu
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO(str(mask_path))
    ids = [im["id"] for im in coco_gt.dataset["images"]]
    dets = []
    for iid in ids:
        f = pred_dir / f"{iid}.json"
        if f.is_file():
            dets += [{"image_id": iid, "category_id": 1, "segmentation": r, "score": 1.0}
                     for r in json.loads(f.read_text())["pred_masks"]]
    ev = COCOeval(coco_gt, coco_gt.loadRes([dict(d) for d in dets]), "segm")
    ev.params.catIds = [1]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    mious = []
    for iid in ids:
        gm = [mu.decode(a["segmentation"]) for a in coco_gt.anns.values() if a["image_id"] == iid]
        pm = [mu.decode(d["segmentation"]) for d in dets if d["image_id"] == iid]
        m = np.zeros((len(pm), len(gm)))
        for i, p in enumerate(pm):
            for j, g in enumerate(gm):
                m[i, j] = np.logical_and(p, g).sum() / np.logical_or(p, g).sum()
        paired = []
        while m.size > 0 and np.max(m) > 0:
            r, c = np.unravel_index(np.argmax(m), m.shape)
            paired.append(m[r, c])
            m = np.delete(np.delete(m, r, axis=0), c, axis=1)
        mious.append(np.mean(paired) if paired else 0.0)
    return float(ev.stats[1]), float(np.mean(mious))


def test_glamm_files_match_glamm_code_path(glamm_files: tuple[Path, Path, Path]) -> None:
    mask, cap, pred_dir = glamm_files
    gts = read_glamm_gt(mask, cap)
    assert [g.image_id for g in gts] == IDS
    preds = read_glamm_predictions(pred_dir, gts)
    ap_ref, miou_ref = _glamm_reference(mask, pred_dir)
    for engine in ("pycocotools", "faster"):
        out = evaluate_masks(gts, preds, engine=engine)  # type: ignore[arg-type]
        assert out["AP50"] == pytest.approx(100 * ap_ref, abs=1e-10)
        assert out["mIoU"] == pytest.approx(100 * miou_ref, abs=1e-10)
        assert out["counts"]["missing_predictions"] == 1


def test_label_and_mask_count_mismatch_raises(glamm_files: tuple[Path, Path, Path]) -> None:
    mask, cap, _ = glamm_files
    js = json.loads(cap.read_text())
    js["annotations"][0]["labels"].append("extra")
    cap.write_text(json.dumps(js))
    with pytest.raises(DataError, match=r"record 10.*labels but .* masks"):
        read_glamm_gt(mask, cap)


def test_image_sets_must_agree_and_image_id_must_match_file(glamm_files: tuple[Path, Path, Path]) -> None:
    mask, cap, pred_dir = glamm_files
    js = json.loads(cap.read_text())
    js["images"] = js["images"][1:]
    cap2 = cap.with_name("cap2.json")
    cap2.write_text(json.dumps(js))
    with pytest.raises(DataError, match="different images"):
        read_glamm_gt(mask, cap2)
    f = pred_dir / "9.json"
    d = json.loads(f.read_text())
    d["image_id"] = 99
    f.write_text(json.dumps(d))
    with pytest.raises(DataError, match="differs from the file name"):
        read_glamm_predictions(pred_dir, read_glamm_gt(mask, cap))


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text("{not json")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(DataError, match=r"m\.json: not valid JSON"):
        read_glamm_gt(tmp_path / "m.json", tmp_path / "c.json")


def test_export_refuses_ids_that_are_paths_or_duplicates(tmp_path: Path) -> None:
    from evalhelpers import box_mask, record

    from clvnet.eval.glamm_io import export_glamm

    gt = [record("a", [("car", [box_mask(10, 10, 0, 4, 0, 4)])]), record("b", [("car", [box_mask(10, 10, 2, 6, 2, 6)])])]
    for bad_ids, match in ((["../../escaped", "b"], "path separator"), (["a", "A"], "unique")):
        preds = [record(i, [("car", [box_mask(10, 10, 0, 4, 0, 4)])]) for i in bad_ids]
        with pytest.raises(DataError, match=match):
            export_glamm(gt, preds, tmp_path / "out" / "x")
        assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("*escaped*"))


def test_glamm_gt_id_that_is_a_path_is_not_read(glamm_files: tuple[Path, Path, Path]) -> None:
    mask, cap, pred_dir = glamm_files
    (pred_dir.parent / "secret.json").write_text(json.dumps({"caption": "x", "phrases": [], "pred_masks": []}))
    gts = read_glamm_gt(mask, cap)
    gts[0].image_id = "../secret"
    with pytest.raises(DataError, match="path separator"):
        read_glamm_predictions(pred_dir, gts)
