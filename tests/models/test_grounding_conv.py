"""Contract of the ``conv`` grounding kind: a from-scratch conv pyramid with a stride-8 embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from model_fixtures import micro_config

from clvnet.models.builder import build_model
from clvnet.models.checkpoint import load_checkpoint, save_checkpoint
from clvnet.models.grounding import ConvPyramid, GroundingEncoder


def _conv_model(batch: dict[str, Any], **over: Any) -> Any:
    torch.manual_seed(0)
    cfg = micro_config(**{"grounding.kind": "conv", "grounding.conv_channels": [8, 8, 16, 16], **over})
    return build_model(cfg, captions=batch["target"])


def test_conv_shapes_match_mask_size(batch: dict[str, Any]) -> None:
    model = _conv_model(batch)
    feats = model.encode_image(batch["image"]).grounding       # 64 px images -> stride-8 grid 8x8
    width = model.mask_decoder.width
    assert feats.embedding.shape == (2, width, 8, 8)
    assert feats.positional.shape == (1, width, 8, 8)
    assert [tuple(h.shape) for h in feats.high_res or []] == [(2, width, 32, 32), (2, width, 16, 16)]
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape and torch.isfinite(out.loss)


def test_conv_stride16_embedding(batch: dict[str, Any]) -> None:
    model = _conv_model(batch, **{"grounding.conv_embed_stride": 16})
    feats = model.encode_image(batch["image"]).grounding       # 64 px images -> stride-16 grid 4x4
    width = model.mask_decoder.width
    assert feats.embedding.shape == (2, width, 4, 4)
    assert [tuple(h.shape) for h in feats.high_res or []] == [(2, width, 16, 16), (2, width, 8, 8)]
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape and torch.isfinite(out.loss)


def test_conv_gradients_reach_every_stage(batch: dict[str, Any]) -> None:
    model = _conv_model(batch)
    model.train()
    out = model(model.processor(batch))
    out.loss.backward()
    pyramid = model.grounding.pyramid
    for i, stage in enumerate(pyramid.stages):
        grad = stage[0].weight.grad
        assert grad is not None and grad.abs().sum() > 0, f"no gradient reaches conv stage {i}"
    for i, lat in enumerate(pyramid.lateral):
        assert lat.weight.grad is not None and lat.weight.grad.abs().sum() > 0, f"no gradient at lateral {i}"


def test_conv_fuse_vision_uses_the_grid(batch: dict[str, Any]) -> None:
    model = _conv_model(batch, **{"grounding.fuse_vision": True})
    images = batch["image"]
    grid = model.vision(images)
    with torch.no_grad():
        fused = model.grounding(images, grid).embedding
        other = model.grounding(images, torch.zeros_like(grid)).embedding
    assert fused.shape == (2, model.mask_decoder.width, 8, 8) and not torch.allclose(fused, other)
    with pytest.raises(ValueError, match="vision grid"):
        model.grounding(images)
    # through the model's own path (encode_image passes E_v's grid) training runs end to end
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape and torch.isfinite(out.loss)


def test_conv_checkpoint_round_trip(batch: dict[str, Any], tmp_path: Path) -> None:
    model = _conv_model(batch).eval()
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.cfg.grounding.kind == "conv" and loaded.cfg.grounding.conv_channels == [8, 8, 16, 16]
    ref = model.state_dict()
    for k, v in loaded.state_dict().items():
        if k.startswith("grounding."):
            assert torch.equal(v, ref[k]), k
    with torch.no_grad():
        a = model.encode_image(batch["image"]).grounding.embedding
        b = loaded.encode_image(batch["image"]).grounding.embedding
    assert torch.allclose(a, b)


def test_conv_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="4 stage widths"):
        ConvPyramid([8, 16, 32], 32)
    with pytest.raises(ValueError, match="conv_embed_stride"):
        ConvPyramid([8, 16, 32, 32], 32, embed_stride=4)
    with pytest.raises(ValueError, match="conv"):
        GroundingEncoder("dense", positional=torch.nn.Identity())
