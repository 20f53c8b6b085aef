"""The Predictor API: feature cache, batched vs sequential decoding, streaming, nodata, inputs and queries."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clvnet.data import rle
from clvnet.inference.predictor import FeatureCache, GCGPrediction, Predictor


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint: Path) -> Predictor:
    return Predictor.from_pretrained(tiny_checkpoint, device="cpu", max_new_tokens=16)


def test_lazy_top_level_import(tiny_checkpoint: Path) -> None:
    import clvnet

    assert clvnet.Predictor is Predictor


def test_feature_cache_lru() -> None:
    c = FeatureCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # a is now most recent
    c.put("c", 3)  # evicts b
    assert c.get("b") is None and c.get("c") == 3 and len(c) == 2
    assert (c.hits, c.misses) == (2, 1)


def test_cache_hit_for_second_box_and_second_call(predictor: Predictor, example_png: Path) -> None:
    predictor.features.clear()
    h0 = predictor.features.hits
    first = predictor.predict(example_png, [[100, 100, 300, 300]])
    assert first[0].timings["cache_hit"] == 0.0
    again = predictor.predict(example_png, [[400, 400, 700, 650]])
    assert again[0].timings["cache_hit"] == 1.0 and predictor.features.hits == h0 + 1
    arr = np.asarray(Image.open(example_png).convert("RGB"))
    same_pixels = predictor.predict(arr, [[400, 400, 700, 650]])  # same content, other input kind
    assert same_pixels[0].timings["cache_hit"] == 1.0
    assert same_pixels[0].masks == again[0].masks


def test_batched_equals_sequential(predictor: Predictor, example_png: Path) -> None:
    boxes = [[100, 100, 300, 300], [400, 400, 700, 650], [0, 0, 800, 800]]
    batched = predictor.predict(example_png, boxes)
    single = [predictor.predict(example_png, [b])[0] for b in boxes]
    assert [p.id for p in batched] == ["example1_box0", "example1_box1", "example1_box2"]
    for a, b in zip(batched, single):
        assert a.tagged == b.tagged and a.caption == b.caption
        assert a.scores == pytest.approx(b.scores, abs=1e-4)
        np.testing.assert_allclose(a.mask_logits, b.mask_logits, atol=1e-3)
        assert a.box == b.box


def test_stream_yields_text_then_prediction(predictor: Predictor, example_png: Path) -> None:
    items = list(predictor.predict(example_png, [[100, 100, 300, 300], [10, 10, 50, 50]], stream=True))
    preds = [x for x in items if isinstance(x, GCGPrediction)]
    assert len(preds) == 2 and isinstance(items[-1], GCGPrediction)
    k = items.index(preds[0])
    text = "".join(x for x in items[:k] if isinstance(x, str))
    assert k > 3 and text == preds[0].tagged


def test_nodata_pixels_are_never_in_masks(predictor: Predictor, tmp_path: Path,
                                          write_geotiff: Callable[..., Path]) -> None:
    data = np.full((3, 64, 80), 500, dtype=np.uint16)
    data[:, :, 40:] = 900
    data[:, :, :20] = 0  # nodata strip
    path = write_geotiff(tmp_path / "nd.tif", data, nodata=0)
    pred = predictor.predict(path, [[30, 10, 70, 50]])[0]
    for p in pred.phrases:
        m = rle.decode(p.masks[0])
        assert m[:, :20].sum() == 0
    assert pred.to_record().meta["scores"] == pred.scores


def test_query_and_inputs(predictor: Predictor) -> None:
    assert predictor._query("Where are the cars?") == "Where are the cars? (user-focused region <BOX>)"
    assert predictor._query("Describe <BOX> please") == "Describe <BOX> please"
    assert predictor._query("  ") is None
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    assert not predictor.accepts_questions            # no card: checkpoints trained by clvnet see no questions
    with pytest.raises(ValueError, match="cannot answer questions"):
        predictor.predict(img, [[5, 5, 60, 40]], query="What is here?")
    predictor.accepts_questions = True                # as for a checkpoint whose card says it was
    pred = predictor.predict(img, [[5, 5, 60, 40]], query="What is here?")[0]
    assert pred.id == "image_box0" and pred.image == "array" and (pred.height, pred.width) == (50, 70)
    assert pred.meta["query"].endswith("<BOX>)")
    with pytest.raises(ValueError, match="--box #1"):
        predictor.predict(img, [[5, 5, 60]])
    with pytest.raises(ValueError, match="at least one box"):
        predictor.predict(img, [])


def test_preprocessing_comes_from_the_checkpoint_processor(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import json
    import shutil

    pred = Predictor.from_pretrained(tiny_checkpoint, device="cpu")
    saved = json.loads((tiny_checkpoint / "processor_config.json").read_text())
    assert pred.image_views.to_dict() == saved["views"] == pred.model.processor.views.to_dict()
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    saved["views"]["region_size"] = 96
    (ckpt / "processor_config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"processor_config.json does not match .*views.region_size: saved 96"):
        Predictor.from_pretrained(ckpt, device="cpu")


@pytest.mark.parametrize("mode", ["pad", "stretch"])
def test_region_and_window_match_the_training_dataset(predictor: Predictor, tmp_path: Path, mode: str) -> None:
    """The predictor prepares a box region exactly as the training dataset does (pixels and region_window)."""
    from clvnet.data.dataset import DatasetConfig, GCGDataset
    from clvnet.data.record import GCGRecord
    from clvnet.inference.raster import RasterOptions, open_raster

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "scene.png")
    box = (30.0, 20.0, 110.0, 50.0)
    rec = GCGRecord(image="scene.png", height=120, width=200, caption="A scene.", box=box)
    views = dataclasses.replace(predictor.image_views, region_size=32, region_resize=mode)
    sample = GCGDataset([rec], DatasetConfig(root=str(tmp_path)), views=views)[0]
    saved = predictor.image_views
    predictor.image_views = views
    raster = open_raster(tmp_path / "scene.png", RasterOptions())
    try:
        region, window = predictor._region(raster, box)
        view, gview, _ = predictor._global_views(raster)
    finally:
        raster.close()
        predictor.image_views = saved
    assert np.array_equal(view, (sample["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    assert np.array_equal(gview, (sample["grounding_image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    expected = (sample["region"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(region, expected)
    assert np.allclose(window, sample["region_window"].numpy(), atol=1e-6)
