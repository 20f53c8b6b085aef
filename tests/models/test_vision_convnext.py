"""Contract of the ConvNeXt E_v (``vision.kind: convnext``) and the ``shared`` grounding over its pyramid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from model_fixtures import micro_config

from clvnet.models.builder import build_model
from clvnet.models.checkpoint import load_checkpoint, save_checkpoint

# 64 px images, stage strides 4/8/16/32 -> grids 16, 8, 4, 2
MICRO_CONVNEXT = {"hidden_sizes": [8, 8, 16, 16], "depths": [1, 1, 1, 1], "image_size": 64, "patch_size": 4}


def _convnext_model(batch: dict[str, Any], **over: Any) -> Any:
    torch.manual_seed(0)
    cfg = micro_config(**{"vision.kind": "convnext", "vision.config": dict(MICRO_CONVNEXT), "vision.llm_pool": 1,
                          "grounding.kind": "shared", **over})
    return build_model(cfg, captions=batch["target"])


def test_convnext_grid_maps_and_image_tokens(batch: dict[str, Any]) -> None:
    model = _convnext_model(batch)
    v = model.vision
    assert (v.kind, v.patch_size, v.width, v.pyramid_widths) == ("convnext", 32, 16, [8, 8, 16])
    grid, maps = v(batch["image"], return_maps=True)
    assert grid.shape == (2, 16, 2, 2)
    assert [tuple(m.shape) for m in maps] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4)]
    assert model.n_image_tokens == 4
    feats = model.encode_image(batch["image"])
    assert feats.image_tokens.shape[:2] == (2, 4)
    width = model.mask_decoder.width
    assert feats.grounding.embedding.shape == (2, width, 4, 4)
    assert [tuple(h.shape) for h in feats.grounding.high_res or []] == [(2, width, 16, 16), (2, width, 8, 8)]
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape and torch.isfinite(out.loss)


def test_mask_loss_alone_trains_every_convnext_stage(batch: dict[str, Any]) -> None:
    """The point of sharing: the mask loss reaches the backbone the LLM reads, down to the first stage."""
    model = _convnext_model(batch)
    model.train()
    assert not any(n.startswith("grounding.encoder") for n, _ in model.named_parameters())   # no second encoder
    _mask_only_loss(model, batch).backward()
    stages = model.vision.convnext.encoder.stages
    for i, stage in enumerate(stages):
        grads = [p.grad for p in stage.parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, f"stage {i}"
    assert "convnext.layernorm.weight" in model.vision.unused_parameters()   # pooler norm: never used
    assert not model.vision.convnext.layernorm.weight.requires_grad


def _mask_only_loss(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    from clvnet.losses.mask import mask_losses

    inputs = model.processor(batch)
    model.zero_grad(set_to_none=True)
    feats = model.encode_image(inputs["image"])
    f_r_prompt, f_r = model.context_tokens(feats, inputs["region"], inputs["box"])
    embeds = model.reasoner.embed(inputs["input_ids"], feats.image_tokens, f_r_prompt)
    _, hidden, _ = model.reasoner(embeds, inputs["attention_mask"])
    from clvnet.models.reasoner import gather_objects

    f_h, _, obj_mask = gather_objects(hidden, inputs["input_ids"], model.reasoner.ids, inputs["masks"].shape[1],
                                      inputs["mask_valid"].sum(1), inputs["id"])
    logits, _, _ = model.decode_masks(f_h, f_r, obj_mask, feats.grounding, inputs["masks"].shape[-1])
    bce, dice = mask_losses(logits, inputs["masks"], inputs["mask_valid"])
    return bce + dice


def test_convnext_from_local_folder_and_checkpoint(batch: dict[str, Any], tmp_path: Path) -> None:
    from transformers import ConvNextConfig, ConvNextModel

    torch.manual_seed(1)
    ConvNextModel(ConvNextConfig(**MICRO_CONVNEXT)).save_pretrained(tmp_path / "convnext")
    ref = ConvNextModel.from_pretrained(tmp_path / "convnext").state_dict()
    model = _convnext_model(batch, **{"vision.pretrained_path": str(tmp_path / "convnext")})
    for k, v in model.vision.convnext.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert "vision.convnext." in model.pretrained_prefixes
    save_checkpoint(model.eval(), tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt").eval()
    assert loaded.cfg.vision.kind == "convnext"
    inputs = model.processor(batch)
    with torch.no_grad():
        assert torch.allclose(model(inputs).mask_logits, loaded(inputs).mask_logits, atol=1e-5)


def test_convnext_config_keeps_only_its_own_keys(tmp_path: Path) -> None:
    """Config files are deep-merged over the defaults: no CLIP key may leak into a ConvNeXt config."""
    from clvnet.config import load_config
    from clvnet.models.config import CLVNetConfig

    path = tmp_path / "m.yaml"
    path.write_text("vision:\n  kind: convnext\n  config: {hidden_sizes: [8, 8, 16, 16], depths: [1, 1, 1, 1]}\n")
    cfg = load_config(CLVNetConfig, path, [])
    assert cfg.vision.config == {"hidden_sizes": [8, 8, 16, 16], "depths": [1, 1, 1, 1]}


def test_convnext_select_layer_must_be_a_stage(batch: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="select_layer"):
        _convnext_model(batch, **{"vision.select_layer": 0})
    model = _convnext_model(batch, **{"vision.select_layer": -2, "vision.llm_pool": 2})   # stride-16 grid
    assert (model.vision.patch_size, model.vision.width, model.n_image_tokens) == (16, 16, 4)
    assert any(n.startswith("convnext.encoder.stages.3.") for n in model.vision.unused_parameters())
    out = model(model.processor(batch))
    assert torch.isfinite(out.loss)


def test_cell_boxes_follow_token_order() -> None:
    from clvnet.models.region import cell_boxes

    boxes = cell_boxes(2)
    assert boxes.tolist() == [[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5], [0.0, 0.5, 0.5, 1.0], [0.5, 0.5, 1.0, 1.0]]


def test_position_embed_places_image_tokens_in_box_coordinates(batch: dict[str, Any]) -> None:
    """With ``vision.position_embed`` each image token gets the box MLP's embedding of its cell."""
    model = _convnext_model(batch, **{"vision.position_embed": True, "vision.select_layer": -2})  # 4x4 grid
    plain = _convnext_model(batch, **{"vision.position_embed": False, "vision.select_layer": -2})
    plain.load_state_dict(model.state_dict())
    flat = torch.full((1, 3, 64, 64), 0.5)                   # same features in every interior cell
    with torch.no_grad():
        with_pos = model.encode_image(flat).image_tokens[0]
        without = plain.encode_image(flat).image_tokens[0]
    assert not torch.allclose(with_pos, without)
    # interior cells 5 and 6 see identical conv features; only their position tells them apart
    assert torch.allclose(without[5], without[6], atol=1e-5) and not torch.allclose(with_pos[5], with_pos[6])
    model.train()
    model(model.processor(batch)).loss.backward()
    assert model.region.box_mlp[0].weight.grad is not None
