"""MaskDecoder: one sparse prompt per object, the mask tokens m_i, and the heads it never uses."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clvnet.models.modeling import CLVNet


def test_one_mask_and_one_token_per_object(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    feats = tiny_model.encode_image(batch["image"]).grounding
    f_g = torch.randn(2, 3, tiny_model.reasoner.hidden_size)
    masks, tokens = tiny_model.mask_decoder(f_g, feats)
    h = feats.embedding.shape[-1]
    assert masks.shape == (2, 3, 4 * h, 4 * h) and tokens.shape == (2, 3, tiny_model.mask_decoder.width)
    again, _ = tiny_model.mask_decoder(f_g[:, [2, 0, 1]], feats)             # objects are independent
    assert torch.allclose(again[:, 0], masks[:, 2], atol=1e-5)
    empty, no_tokens = tiny_model.mask_decoder(f_g[:, :0], feats)
    assert empty.shape == (2, 0, 4 * h, 4 * h) and no_tokens.shape[1] == 0


def test_unused_heads_are_frozen_and_sam2_needs_high_res(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    unused = set(tiny_model.mask_decoder.unused_parameters())
    assert any("iou_prediction_head" in n for n in unused)
    assert all(not p.requires_grad for n, p in tiny_model.mask_decoder.named_parameters() if n in unused)
    feats = tiny_model.encode_image(batch["image"]).grounding
    feats.high_res = None
    with pytest.raises(ValueError, match="high-resolution"):
        tiny_model.mask_decoder(torch.randn(2, 1, tiny_model.reasoner.hidden_size), feats)
