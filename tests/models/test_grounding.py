"""Grounding encoders: SAM2 Hiera and SAM ViT built from config dicts, the shared grid and the conv pyramid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from model_fixtures import micro_config

from clvnet.models.build import build_model, from_pretrained, save_pretrained
from clvnet.models.grounding import ConvPyramid, SamGrounding, SharedGrounding

HIERA = {"hidden_size": 16, "num_attention_heads": 1, "image_size": [128, 128], "blocks_per_stage": [1, 2, 2, 1],
         "embed_dim_per_stage": [16, 32, 64, 128], "num_attention_heads_per_stage": [1, 1, 2, 2],
         "global_attention_blocks": [2, 4], "window_size_per_stage": [8, 4, 4, 2],
         "window_positional_embedding_background_size": [4, 4]}
HIERA_NECK = {"backbone_channel_list": [128, 64, 32, 16], "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
              "fpn_hidden_size": 32}


def _build(batch: dict[str, Any], **over: Any) -> Any:
    torch.manual_seed(0)
    return build_model(micro_config(**over), captions=batch["target"])


def test_sam2_hiera_from_config(batch: dict[str, Any]) -> None:
    model = _build(batch, **{"grounding.kind": "sam2", "grounding.image_size": 128, "grounding.backbone": HIERA,
                             "grounding.vision": HIERA_NECK})
    assert isinstance(model.grounding, SamGrounding) and model.grounding.kind == "sam2"
    feats = model.encode_image(batch["image"]).grounding
    assert feats.embedding.shape == (2, 32, 8, 8)
    assert [tuple(h.shape[-2:]) for h in feats.high_res or []] == [(32, 32), (16, 16)]
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape and torch.isfinite(out.loss)


def test_sam_vit_with_sam_decoder(batch: dict[str, Any]) -> None:
    model = _build(batch, **{
        "grounding.kind": "sam", "grounding.image_size": 64,
        "grounding.vision": {"hidden_size": 32, "output_channels": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                             "image_size": 64, "patch_size": 8, "window_size": 4, "global_attn_indexes": [1],
                             "num_pos_feats": 16, "mlp_dim": 64},
        "mask_decoder.kind": "sam"})
    feats = model.encode_image(batch["image"]).grounding
    assert feats.embedding.shape == (2, 32, 8, 8) and feats.high_res is None
    out = model(model.processor(batch))
    out.loss.backward()
    assert out.mask_logits.shape == batch["masks"].shape
    assert model.mask_decoder.prompt_proj.weight.grad is not None


def test_shared_needs_the_vision_grid(batch: dict[str, Any]) -> None:
    model = _build(batch)
    assert isinstance(model.grounding, SharedGrounding) and model.grounding.uses_vision_grid
    with pytest.raises(ValueError, match="needs E_v's grid"):
        model.grounding(batch["image"])
    feats = model.grounding(batch["image"], model.vision(batch["image"]))
    assert feats.embedding.shape[-2:] == (8, 8) and [h.shape[-1] for h in feats.high_res or []] == [32, 16]


def _conv(batch: dict[str, Any]) -> Any:
    return _build(batch, **{"grounding.kind": "conv", "grounding.conv_channels": [8, 8, 16, 16]})


def test_conv_stride16_shapes(batch: dict[str, Any]) -> None:
    model = _conv(batch)
    assert not model.grounding.uses_vision_grid
    feats = model.encode_image(batch["image"]).grounding       # 64 px images -> stride-16 grid 4x4
    width = model.mask_decoder.width
    assert feats.embedding.shape == (2, width, 4, 4) and feats.positional.shape == (1, width, 4, 4)
    assert [tuple(h.shape) for h in feats.high_res or []] == [(2, width, 16, 16), (2, width, 8, 8)]
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape and torch.isfinite(out.loss)


def test_conv_gradients_reach_every_stage(batch: dict[str, Any]) -> None:
    model = _conv(batch).train()
    model(model.processor(batch)).loss.backward()
    pyramid = model.grounding.pyramid
    for i, stage in enumerate(pyramid.stages):
        grad = stage[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0, f"no gradient reaches conv stage {i}"
    for i, lat in enumerate(pyramid.lateral):
        assert lat.weight.grad is not None and lat.weight.grad.abs().sum() > 0, f"no gradient at lateral {i}"


def test_conv_checkpoint_round_trip(batch: dict[str, Any], tmp_path: Path) -> None:
    model = _conv(batch).eval()
    loaded = from_pretrained(save_pretrained(model, tmp_path / "ckpt"))
    assert loaded.cfg.grounding.kind == "conv" and loaded.cfg.grounding.conv_channels == [8, 8, 16, 16]
    with torch.no_grad():
        a = model.encode_image(batch["image"]).grounding.embedding
        b = loaded.encode_image(batch["image"]).grounding.embedding
    assert torch.equal(a, b)


def test_bad_grounding_configs() -> None:
    with pytest.raises(ValueError, match="4 stage widths"):
        ConvPyramid([8, 16, 32], 32)
    with pytest.raises(ValueError, match="no_memory_embedding exactly when it is sam2"):
        SamGrounding(torch.nn.Identity(), kind="sam2", positional=torch.nn.Identity(), image_size=64,
                     mean=(0.5,) * 3, std=(0.5,) * 3)
