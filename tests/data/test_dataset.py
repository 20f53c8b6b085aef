"""GCGDataset / collate_gcg: sample contract (design §8.3), region crop, flip, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datahelpers import H, W, make_record, rect_mask
from PIL import Image

from clvnet.config import ConfigError, from_dict
from clvnet.data import rle
from clvnet.data.dataset import DatasetConfig, GCGDataset, collate_gcg, swap_left_right
from clvnet.data.record import DataError, from_tagged, read_jsonl, write_jsonl
from clvnet.data.views import ImageViews, grow_box, resize_mask


def test_sample_contract(gcg_jsonl: Path) -> None:
    cfg = DatasetConfig(image_size=64, region_size=32, mask_size=40)
    ds = GCGDataset(gcg_jsonl, cfg, train=False)
    assert len(ds) == 2
    s = ds[0]
    assert s["image"].shape == (3, 64, 64) and s["image"].dtype == torch.float32
    assert float(s["image"].min()) >= 0.0 and float(s["image"].max()) <= 1.0
    assert s["region"].shape == (3, 32, 32)
    assert torch.allclose(s["box"], torch.tensor([8 / W, 18 / H, 32 / W, 32 / H]))
    assert s["masks"].shape == (2, 40, 40) and set(s["masks"].unique().tolist()) <= {0.0, 1.0}
    assert s["phrase_texts"] == ["The red car", "a green roof"]
    assert s["target"].startswith("A small lot. <p> The red car </p> [SEG] on the left")
    caption, phrases = from_tagged(s["target"])
    assert caption == s["caption"] and [p.text for p in phrases] == s["phrase_texts"]
    assert s["id"] == "a"
    # the union mask of the two green-roof instances covers x 50..70, y 5..25 -> columns 25..35, rows 3..17
    m = s["masks"][1].numpy()
    assert m[3:17, 25:35].all() and m.sum() == 14 * 10
    # mask and image agree: the red car's mask sits where the global view is red
    red = s["image"][0] > 0.9
    assert (torch.from_numpy(resize_mask(red.numpy().astype(np.uint8), 40)) * s["masks"][0]).sum() > 0


def test_null_box_means_whole_image(gcg_jsonl: Path) -> None:
    cfg = DatasetConfig(image_size=32, region_size=32, region_resize="stretch")
    s = GCGDataset(gcg_jsonl, cfg)[1]
    assert s["box"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert torch.allclose(s["region"], s["image"])  # whole image, same resize
    assert s["masks"].shape[0] == 1


def test_region_is_the_native_resolution_box_crop(tmp_path: Path) -> None:
    rec = make_record(tmp_path, "c", box=(10, 20, 30, 30))  # exactly the red block (20x10)
    stretch = GCGDataset([rec], DatasetConfig(root=str(tmp_path), region_size=16, region_resize="stretch", min_region=1))[0]
    assert torch.allclose(stretch["region"][:, :, :], torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 16, 16))
    assert torch.allclose(stretch["region_window"], torch.tensor([10 / W, 20 / H, 30 / W, 30 / H]))
    pad = GCGDataset([rec], DatasetConfig(root=str(tmp_path), region_size=16, min_region=1))[0]
    r = pad["region"]
    assert torch.allclose(r[:, 5:11, :], torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, 6, 16))
    assert float(r[:, :3].abs().max()) == 0.0 and float(r[:, -3:].abs().max()) == 0.0  # zero padding
    # the square window is centred on the box: 20x20 around y 15..35
    assert torch.allclose(pad["region_window"], torch.tensor([10 / W, 15 / H, 30 / W, 35 / H]))


def test_min_region_grows_tiny_boxes() -> None:
    assert grow_box((40, 30, 42, 31), 16, 80, 60) == (33, 22, 49, 39)  # outward rounding of 22.5..38.5
    assert grow_box((0, 0, 2, 2), 16, 80, 60) == (0, 0, 16, 16)  # pushed inside the image
    assert grow_box((70, 50, 80, 60), 16, 80, 60) == (64, 44, 80, 60)
    assert grow_box((0, 0, 5, 5), 16, 10, 8) == (0, 0, 10, 8)  # image smaller than min_region


def test_hflip_moves_pixels_box_masks_and_words(tmp_path: Path) -> None:
    rec = make_record(tmp_path, "f", box=(8, 18, 32, 32))
    cfg = DatasetConfig(root=str(tmp_path), image_size=W, mask_size=W, hflip=1.0)
    plain = GCGDataset([rec], DatasetConfig(root=str(tmp_path), image_size=W, mask_size=W))[0]
    flip = GCGDataset([rec], cfg, train=True)[0]
    assert torch.equal(flip["image"], plain["image"].flip(-1))
    assert torch.equal(flip["masks"], plain["masks"].flip(-1))
    assert torch.allclose(flip["box"], torch.tensor([1 - 32 / W, 18 / H, 1 - 8 / W, 32 / H]))
    assert "on the right is near" in flip["caption"] and "to the north-west, at the top-left." in flip["caption"]
    caption, phrases = from_tagged(flip["target"])
    for p in phrases:
        assert caption[p.span[0]:p.span[1]] == p.text
    # no flip at evaluation time even with hflip=1
    assert torch.equal(GCGDataset([rec], cfg, train=False)[0]["image"], plain["image"])


def test_flip_is_reproducible_per_seed_and_epoch(tmp_path: Path) -> None:
    rec = make_record(tmp_path, "g")
    cfg = DatasetConfig(root=str(tmp_path), image_size=16, mask_size=16, hflip=0.5)
    ds = GCGDataset([rec] * 16, cfg, train=True, seed=3)
    a = [ds[i]["box"][0].item() for i in range(16)]
    assert a == [ds[i]["box"][0].item() for i in range(16)]
    assert len(set(a)) == 2  # both flipped and unflipped samples occur
    ds.set_epoch(1)
    assert a != [ds[i]["box"][0].item() for i in range(16)]


def test_swap_left_right_words() -> None:
    assert swap_left_right("Upper left, top-right, Northwest and north-east; LEFT; leftmost") == \
        "Upper right, top-left, Northeast and north-west; RIGHT; rightmost"
    assert swap_left_right("the NE pier, se of town, eastern <p> left car </p> [SEG]") == \
        "the NW pier, se of town, western <p> right car </p> [SEG]"
    assert swap_left_right("bright lefty") == "bright lefty"  # whole words only


def test_resize_mask_keeps_tiny_objects() -> None:
    tiny = np.zeros((400, 400), np.uint8)
    tiny[100, 200] = 1
    out = resize_mask(tiny, 32)
    assert out.sum() >= 1 and out[8, 16] == 1
    assert resize_mask(np.zeros((50, 50), np.uint8), 8).sum() == 0


def test_collate_pads_masks(gcg_jsonl: Path) -> None:
    ds = GCGDataset(gcg_jsonl, DatasetConfig(image_size=32, region_size=16, mask_size=8))
    batch = collate_gcg([ds[1], ds[0]])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["region"].shape == (2, 3, 16, 16)
    assert batch["box"].shape == (2, 4) and batch["masks"].shape == (2, 2, 8, 8)
    assert batch["mask_valid"].tolist() == [[True, False], [True, True]]
    assert float(batch["masks"][0, 1].abs().sum()) == 0.0
    assert batch["id"] == ["b", "a"] and batch["phrase_texts"][0] == ["The red car"]
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_gcg)
    assert next(iter(loader))["masks"].shape == (2, 2, 8, 8)


def test_lazy_reads_records_by_offset(gcg_jsonl: Path) -> None:
    ds = GCGDataset(gcg_jsonl)
    assert ds._records is None and len(ds._offsets) == 2
    assert [ds.record(i).to_dict() for i in range(2)] == [r.to_dict() for r in read_jsonl(gcg_jsonl)]
    assert [r.id for r in ds.iter_records()] == ["a", "b"]


def test_config_from_yaml_style_dict_and_bad_values() -> None:
    cfg = from_dict(DatasetConfig, {"image_size": 64, "region_resize": "stretch", "root": None, "hflip": 0.5})
    assert cfg.image_size == 64 and cfg.region_resize == "stretch"
    with pytest.raises(ConfigError, match="'region_resize'"):
        from_dict(DatasetConfig, {"region_resize": "crop"})
    with pytest.raises(ValueError, match="hflip"):
        DatasetConfig(hflip=2.0)
    with pytest.raises(ValueError, match="mask_size"):
        DatasetConfig(mask_size=0)


def test_plot_returns_overlay(gcg_jsonl: Path) -> None:
    im = GCGDataset(gcg_jsonl, DatasetConfig(image_size=64)).plot(0)
    assert isinstance(im, Image.Image) and im.size[1] > 64


# --------------------------------------------------------------------------- bad input
def test_truncated_jsonl_line(gcg_jsonl: Path) -> None:
    lines = gcg_jsonl.read_text().splitlines()
    gcg_jsonl.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2] + "\n")
    with pytest.raises(DataError, match="line 2 is truncated") as e:
        GCGDataset(gcg_jsonl)
    assert str(gcg_jsonl) in str(e.value)
    gcg_jsonl.write_text(lines[0] + "\n" + '{"id": "x", "image": }\n')
    ds = GCGDataset(gcg_jsonl)
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        ds[1]


def test_missing_and_corrupt_image(gcg_jsonl: Path) -> None:
    (gcg_jsonl.parent / "a.png").unlink()
    with pytest.raises(DataError, match=r"a\.png: image file not found"):
        GCGDataset(gcg_jsonl)[0]
    (gcg_jsonl.parent / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(DataError, match=r"b\.png: cannot decode image"):
        GCGDataset(gcg_jsonl)[1]


def test_image_size_differs_from_record(tmp_path: Path) -> None:
    rec = make_record(tmp_path, "s")
    Image.new("RGB", (W + 1, H)).save(tmp_path / "s.png")
    with pytest.raises(DataError, match=f"is {H}x{W + 1} but the record says {H}x{W}"):
        GCGDataset([rec], DatasetConfig(root=str(tmp_path)))[0]


@pytest.mark.parametrize(("box", "message"), [((30, 18, 8, 32), "inverted"), ((8, 18, 8, 32), "zero area")])
def test_bad_box(tmp_path: Path, box: tuple, message: str) -> None:
    rec = make_record(tmp_path, "x")
    rec.box = box
    write_jsonl([rec], tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match=message) as e:
        GCGDataset(tmp_path / "bad.jsonl")[0]
    assert "bad.jsonl:1" in str(e.value) and "field 'box'" in str(e.value)


def test_span_mismatch_and_rle_size(tmp_path: Path) -> None:
    rec = make_record(tmp_path, "y")
    d = rec.to_dict()
    d["phrases"][1]["span"][0] += 1
    (tmp_path / "span.jsonl").write_text(json.dumps(d) + "\n")
    with pytest.raises(DataError, match=r"expected 'a green roof'") as e:
        GCGDataset(tmp_path / "span.jsonl")[0]
    assert "field 'phrases[1].span'" in str(e.value)
    rec.phrases[0].masks = [rle.encode(rect_mask(1, 1, 5, 5, h=H, w=W + 4))]
    write_jsonl([rec], tmp_path / "rle.jsonl")
    with pytest.raises(DataError, match=f"RLE size {H}x{W + 4} differs") as e:
        GCGDataset(tmp_path / "rle.jsonl")[0]
    assert "phrases[0].masks[0]" in str(e.value)


def test_cache_returns_the_same_samples_without_rereading(tmp_path: Path) -> None:
    recs = [make_record(tmp_path, f"c{i}", box=(8, 18, 32, 32)) for i in range(4)]
    base = DatasetConfig(root=str(tmp_path), image_size=W, mask_size=W, hflip=0.5)
    plain = GCGDataset(recs, base, train=True, seed=1)
    cached = GCGDataset(recs, DatasetConfig(**{**base.__dict__, "cache_mb": 64}), train=True, seed=1)
    seen: dict[tuple[int, int], dict] = {}
    for epoch in (0, 1, 2):
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(4):
            a, b = cached[i], plain[i]
            assert a.keys() == b.keys()
            for k, v in a.items():
                if isinstance(v, torch.Tensor):
                    assert v.dtype == b[k].dtype and torch.equal(v, b[k]), k
                else:
                    assert v == b[k], k
            seen[(epoch, i)] = b
    assert len(cached._cache) == len({(i, bool(s["box"][0] != seen[(0, i)]["box"][0])) for (_, i), s in seen.items()})
    for p in tmp_path.glob("*.png"):          # a hit must not touch the image file again
        p.unlink()
    for (epoch, i), b in seen.items():
        cached.set_epoch(epoch)
        assert torch.equal(cached[i]["image"], b["image"]) and cached[i]["target"] == b["target"]
    sample = cached[0]
    sample["image"].mul_(0)                        # callers may modify what they get; the cache is unchanged
    sample["phrase_texts"].append("x")
    assert cached[0]["image"].sum() > 0 and cached[0]["phrase_texts"] == seen[(2, 0)]["phrase_texts"]


def test_cache_bound_warns_once_and_keeps_serving(tmp_path: Path) -> None:
    recs = [make_record(tmp_path, f"b{i}") for i in range(3)]
    ds = GCGDataset(recs, DatasetConfig(root=str(tmp_path), image_size=W, mask_size=W, cache_mb=1), train=False)
    one = sum(v.nbytes for v in ds._prepare(0, False).values() if isinstance(v, torch.Tensor))
    ds._cache_bytes = 2**20 - one                   # room for exactly one more sample
    with pytest.warns(UserWarning, match="cache .* is full"):
        samples = [ds[i] for i in range(3)]
    assert len(ds._cache) == 1 and all(s["image"].shape == (3, W, W) for s in samples)
    with pytest.raises(ValueError, match="cache_mb"):
        DatasetConfig(cache_mb=-1)


def test_grounding_view_is_made_from_the_original_pixels(tmp_path: Path) -> None:
    """The grounding encoder's view is the image resized to its own size, not the small global view upsampled."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "noise.png")
    rec = make_record(tmp_path, "n")
    rec.image = "noise.png"
    views = ImageViews(image_size=16, grounding_size=96, mask_size=24, region_size=16)
    s = GCGDataset([rec], DatasetConfig(root=str(tmp_path)), views=views)[0]
    assert s["image"].shape == (3, 16, 16) and s["grounding_image"].shape == (3, 96, 96)
    direct = np.asarray(Image.fromarray(img).resize((96, 96), Image.Resampling.BILINEAR))
    got = (s["grounding_image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(got, direct)
    upsampled = torch.nn.functional.interpolate(s["image"][None], size=(96, 96), mode="bilinear", align_corners=False)
    assert float((upsampled[0] - s["grounding_image"]).abs().mean()) > 0.1     # detail the 16-px view lost
    assert s["masks"].shape[-1] == 24
    same = GCGDataset([rec], DatasetConfig(root=str(tmp_path)), views=ImageViews(image_size=32, grounding_size=32))
    batch = collate_gcg([same[0], same[0]])
    assert batch["grounding_image"] is batch["image"]                          # equal sizes: one tensor


def test_a_data_size_that_contradicts_the_model_is_an_error(tmp_path: Path) -> None:
    rec = make_record(tmp_path, "c")
    with pytest.raises(ValueError, match=r"data.dataset.region_size=64 contradicts the model's region_size=128"):
        GCGDataset([rec], DatasetConfig(root=str(tmp_path), region_size=64), views=ImageViews())
