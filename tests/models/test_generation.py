"""Decoding: the KV cache changes nothing, boxes batch independently, cached image features, streaming, errors."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clvnet.models.generation import generate, parse_output, prompt_batch
from clvnet.models.modeling import CLVNet


def test_generate_cache_matches_no_cache_and_streams(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    tiny_model.eval()
    chunks: list[tuple[int, str]] = []
    a = generate(tiny_model, batch["image"], batch["region"], batch["box"], max_new_tokens=12,
                 streamer=lambda i, t: chunks.append((i, t)))
    b = generate(tiny_model, batch["image"], batch["region"], batch["box"], max_new_tokens=12, use_cache=False)
    assert len(a) == 2
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    assert "".join(t for i, t in chunks if i == 0) == a[0].tagged
    for o in a:
        assert o.mask_logits.shape[1:] == (32, 32) and o.mask_logits.shape[0] == len(o.phrases)


def test_several_boxes_one_image_with_cached_features(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    tiny_model.eval()
    image = batch["image"][:1]
    feats = tiny_model.encode_image(image)
    regions = torch.cat([batch["region"][:1], torch.rand(2, 3, 32, 32)])
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.9, 0.9], [0.5, 0.5, 1.0, 1.0]])
    outs = generate(tiny_model, image, regions, boxes, image_features=feats, max_new_tokens=6)
    assert len(outs) == 3
    single = generate(tiny_model, image, regions[1:2], boxes[1:2], max_new_tokens=6)[0]
    assert single.token_ids == outs[1].token_ids                 # left padding / batching changes nothing
    q = generate(tiny_model, image, regions[:2], boxes[:2], max_new_tokens=4,
                 query=["Describe <BOX>.", "Could you describe the region <BOX> in detail?"])
    assert len(q) == 2


def test_prompt_batch_errors(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    regions = batch["region"][:1].expand(3, -1, -1, -1)
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 3)
    with pytest.raises(ValueError, match="image features have 2 rows but there are 3 boxes"):
        prompt_batch(tiny_model, torch.rand(2, 3, 64, 64), regions, boxes)
    with pytest.raises(ValueError, match="2 queries for 3 boxes"):
        prompt_batch(tiny_model, batch["image"][:1], regions, boxes, query=["a <BOX>", "b <BOX>"])
    with pytest.raises(ValueError, match="must contain <BOX>"):
        prompt_batch(tiny_model, batch["image"][:1], regions, boxes, query="no box here")
    with pytest.raises(ValueError, match="region_windows has 2 rows"):
        prompt_batch(tiny_model, batch["image"][:1], regions, boxes, region_windows=torch.zeros(2, 4))
    out = prompt_batch(tiny_model, batch["image"][:1], regions, boxes)
    assert out.embeds.shape[0] == 3 and out.f_r.shape[1] == tiny_model.region.num_tokens


def test_parse_output_keeps_one_mask_per_well_formed_phrase(tiny_model: CLVNet) -> None:
    tok = tiny_model.tokenizer
    text = "A stray [SEG] then <p> car </p> [SEG] and <p> tree </p> [SEG] and <p> dangling </p>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    masks = torch.stack([torch.full((4, 4), float(k)) for k in (1, 2, 3)])
    out = parse_output(tok, ids, masks)
    assert [p.text for p in out.phrases] == ["car", "tree"]
    assert torch.equal(out.mask_logits[:, 0, 0], torch.tensor([2.0, 3.0]))   # the stray [SEG] owns mask 1
    assert out.caption[out.phrases[1].span[0]:out.phrases[1].span[1]] == "tree"
