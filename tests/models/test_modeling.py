"""CLVNet's training forward: every loss term of eq. 13, gradients, and each ablation switch of Tables II-V."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from model_fixtures import micro_config

from clvnet.models.build import build_model
from clvnet.models.cgformer import CGFormer, PlainPrompt
from clvnet.models.generation import generate
from clvnet.models.modeling import CLVNet
from clvnet.models.outputs import LOSS_KEYS


def _build(batch: dict[str, Any], **over: Any) -> CLVNet:
    torch.manual_seed(0)
    return build_model(micro_config(**over), captions=batch["target"])


def _grads_match_trainables(model: CLVNet) -> None:
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in model.named_parameters() if p.grad is not None}


def test_forward_losses_and_shapes(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    out = tiny_model(tiny_model.processor(batch))
    assert set(out.losses) == set(LOSS_KEYS)
    assert out.mask_logits.shape == batch["masks"].shape
    assert all(torch.isfinite(v) for v in out.losses.values())
    assert float(out.losses["rec"]) >= 0 and float(out.losses["csc"]) > 0
    lc = tiny_model.cfg.loss
    expect = (out.losses["caption"] + lc.w_bce * out.losses["mask_bce"] + lc.w_dice * out.losses["mask_dice"]
              + lc.sralign_lambda * (out.losses["csc"] + out.losses["rec"]))
    assert torch.allclose(out.losses["total"], expect, atol=1e-5)


def test_backward_reaches_exactly_trainable(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    tiny_model(tiny_model.processor(batch)).loss.backward()
    _grads_match_trainables(tiny_model)


def test_seg_mask_mismatch_names_record(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    inputs = tiny_model.processor(batch)
    inputs["mask_valid"] = inputs["mask_valid"].clone()
    inputs["mask_valid"][1, 0] = False                      # one mask fewer than [SEG] tokens
    with pytest.raises(ValueError, match=r"record rec1: 1 \[SEG\] tokens .* but 0 masks"):
        tiny_model(inputs)


def test_use_box_prompt_off_ignores_region_and_box(batch: dict[str, Any]) -> None:
    model = _build(batch, use_box_prompt=False, **{"region.box_mark": "both"})
    assert model.cues.mark_llm is None and model.cues.mark_mask is None   # no box mark without the box prompt
    inputs = model.processor(batch)
    assert not bool((inputs["input_ids"] == model.reasoner.ids.box).any())
    on = _build(batch)
    assert int((on.processor(batch)["input_ids"] == on.reasoner.ids.box).sum()) == 2 * on.region.num_tokens
    model.eval()
    with torch.no_grad():
        a = model(inputs).loss
        b = model(dict(inputs, region=torch.rand_like(inputs["region"]), box=torch.rand_like(inputs["box"]))).loss
    assert torch.equal(a, b)


def test_box_prompt_on_depends_on_region(batch: dict[str, Any]) -> None:
    model = _build(batch).eval()
    inputs = model.processor(batch)
    with torch.no_grad():
        a = model(inputs).loss
        b = model(dict(inputs, box=inputs["box"] * 0.5)).loss
    assert not torch.equal(a, b)


def test_cgformer_switch(batch: dict[str, Any]) -> None:
    on, off = _build(batch), _build(batch, **{"cgformer.enabled": False})
    assert isinstance(on.cgformer, CGFormer) and isinstance(off.cgformer, PlainPrompt)
    assert hasattr(off.sralign, "text_relation") and not hasattr(on.sralign, "text_relation")
    out = off(off.processor(batch))
    assert float(out.losses["rec"]) >= 0 and out.relation_text is not None


@pytest.mark.parametrize("grounding", ["shared", "conv"])
def test_sam_decoder_switch(batch: dict[str, Any], grounding: str) -> None:
    from transformers.models.sam.modeling_sam import SamMaskDecoder

    model = _build(batch, **{"grounding.kind": grounding, "mask_decoder.kind": "sam",
                             "mask_decoder.config": {"hidden_size": 32, "mlp_dim": 64, "num_hidden_layers": 2,
                                                     "num_attention_heads": 2, "iou_head_hidden_dim": 32}})
    assert isinstance(model.mask_decoder.decoder, SamMaskDecoder)
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape
    out.loss.backward()
    _grads_match_trainables(model)


def test_loss_switches_and_lambda(batch: dict[str, Any]) -> None:
    base = _build(batch)
    no_align = _build(batch, **{"loss.csc": False, "loss.rec": False})
    assert not list(no_align.sralign.parameters())
    out = no_align(no_align.processor(batch))
    assert float(out.losses["csc"]) == 0.0 and float(out.losses["rec"]) == 0.0
    ref = base(base.processor(batch))
    double = _build(batch, **{"loss.sralign_lambda": 2.0})
    out2 = double(double.processor(batch))
    terms = ref.losses
    assert torch.allclose(out2.losses["total"] - terms["total"], terms["csc"] + terms["rec"], atol=1e-5)
    assert float(terms["csc"]) > 0


def test_detection_region_path(batch: dict[str, Any]) -> None:
    model = _build(batch, **{"region.mode": "detections", "region.num_detections": 3})
    assert model.region.num_tokens == 4
    det = torch.tensor([[[0.05, 0.05, 0.2, 0.2], [0.1, 0.2, 0.3, 0.4]]] * 2)
    valid = torch.tensor([[True, True], [True, False]])
    out = model(dict(model.processor(batch), detections=det, detections_valid=valid))
    out.loss.backward()
    assert model.region.pad_token.grad is not None                  # the empty slots use the pad token
    model.eval()
    outs = generate(model, batch["image"], batch["region"], batch["box"], max_new_tokens=3,
                    detections=det, detections_valid=valid)
    assert len(outs) == 2


def test_bf16_llm_with_fp32_heads(batch: dict[str, Any]) -> None:
    model = _build(batch, **{"llm.torch_dtype": "bfloat16"})
    assert model.reasoner.llm.dtype == torch.bfloat16 and model.head_dtype == torch.float32
    out = model(model.processor(batch))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    model.eval()
    assert len(generate(model, batch["image"], batch["region"], batch["box"], max_new_tokens=4)) == 2


def test_the_grounding_encoder_reads_the_grounding_view(batch: dict[str, Any]) -> None:
    model = _build(batch, **{"grounding.kind": "conv", "grounding.conv_channels": [8, 8, 16, 16],
                             "grounding.image_size": 128}).eval()
    assert model.processor is not None and model.processor.views.grounding_size == 128
    inputs = model.processor(batch)
    g = torch.nn.functional.interpolate(batch["image"], size=(128, 128), mode="bilinear", align_corners=False)
    with torch.no_grad():
        feats = model.encode_image(inputs["image"], g)
        assert feats.grounding.embedding.shape[-1] == 8                  # 128 px at stride 16
        a = model(dict(inputs, grounding_image=g)).mask_logits
        b = model(dict(inputs, grounding_image=g.flip(-1))).mask_logits
    assert not torch.allclose(a, b)


def test_only_real_objects_are_decoded_and_they_match_the_padded_grid(tiny_model: CLVNet,
                                                                       batch: dict[str, Any]) -> None:
    import torch.nn.functional as F

    model = tiny_model.eval()
    feats = model.encode_image(batch["image"])
    f_h = torch.randn(2, 3, model.reasoner.hidden_size)
    obj = torch.tensor([[True, True, False], [True, False, False]])
    f_r, _ = model.context_tokens(feats, batch["region"], batch["box"])
    calls: list[int] = []
    model.mask_decoder.register_forward_hook(lambda _m, inp, _o: calls.append(inp[0].shape[0]))
    with torch.no_grad():
        masks, tokens, _ = model.decode_masks(f_h, f_r, obj, feats.grounding, 32)
        f_g, _, _ = model.cgformer(f_h, f_r, obj)
        grid, grid_tokens = model.mask_decoder(f_g, feats.grounding)                # the whole padded grid
    assert calls[0] == 3                                                              # three real objects
    grid = F.interpolate(grid, size=(32, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(masks[obj], grid[obj], atol=1e-4) and torch.allclose(tokens[obj], grid_tokens[obj], atol=1e-5)
    assert float(masks[~obj].abs().sum()) == 0 and float(tokens[~obj].abs().sum()) == 0


def test_caption_logits_only_where_the_loss_reads_them(tiny_model: CLVNet, batch: dict[str, Any]) -> None:
    from clvnet.models.reasoner import answer_logits_to_keep, caption_loss

    model = tiny_model.eval()
    inputs = model.processor(batch)
    feats = model.encode_image(inputs["image"])
    f_r, _ = model.context_tokens(feats, inputs["region"], inputs["box"])
    embeds = model.reasoner.embed(inputs["input_ids"], feats.image_tokens, f_r)
    keep = answer_logits_to_keep(inputs["labels"])
    assert 0 < keep < inputs["labels"].shape[1]                                       # the prompt is skipped
    with torch.no_grad():
        full, _, _ = model.reasoner(embeds, inputs["attention_mask"])
        part, _, _ = model.reasoner(embeds, inputs["attention_mask"], logits_to_keep=keep)
    assert part.shape[1] == keep
    assert torch.allclose(caption_loss(part, inputs["labels"]), caption_loss(full, inputs["labels"]), atol=1e-6)
