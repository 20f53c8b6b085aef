"""Grounding encoders built from config dicts: SAM2 Hiera (paper layout) and SAM ViT (Table III ablation)."""

from __future__ import annotations

from typing import Any

import torch
from model_fixtures import micro_config

from clvnet.models.builder import build_model

HIERA = {"hidden_size": 16, "num_attention_heads": 1, "image_size": [128, 128], "blocks_per_stage": [1, 2, 2, 1],
         "embed_dim_per_stage": [16, 32, 64, 128], "num_attention_heads_per_stage": [1, 1, 2, 2],
         "global_attention_blocks": [2, 4], "window_size_per_stage": [8, 4, 4, 2],
         "window_positional_embedding_background_size": [4, 4]}
HIERA_NECK = {"backbone_channel_list": [128, 64, 32, 16], "backbone_feature_sizes": [[32, 32], [16, 16], [8, 8]],
              "fpn_hidden_size": 32}


def test_sam2_hiera_from_config(batch: dict[str, Any]) -> None:
    torch.manual_seed(0)
    cfg = micro_config(**{"grounding.kind": "sam2", "grounding.image_size": 128, "grounding.backbone": HIERA,
                          "grounding.vision": HIERA_NECK})
    model = build_model(cfg, captions=batch["target"])
    feats = model.encode_image(batch["image"]).grounding
    assert feats.embedding.shape == (2, 32, 8, 8)
    assert [tuple(h.shape[-2:]) for h in feats.high_res or []] == [(32, 32), (16, 16)]
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape and torch.isfinite(out.loss)


def test_sam_vit_with_sam_decoder(batch: dict[str, Any]) -> None:
    torch.manual_seed(0)
    cfg = micro_config(**{
        "grounding.kind": "sam", "grounding.image_size": 64,
        "grounding.vision": {"hidden_size": 32, "output_channels": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                             "image_size": 64, "patch_size": 8, "window_size": 4, "global_attn_indexes": [1],
                             "num_pos_feats": 16, "mlp_dim": 64},
        "mask_decoder.kind": "sam"})
    model = build_model(cfg, captions=batch["target"])
    feats = model.encode_image(batch["image"]).grounding
    assert feats.embedding.shape == (2, 32, 8, 8) and feats.high_res is None
    out = model(model.processor(batch))
    out.loss.backward()
    assert out.mask_logits.shape == batch["masks"].shape
    assert model.mask_decoder.prompt_proj.weight.grad is not None
