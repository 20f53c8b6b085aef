"""Each ablation switch of Tables II-V is a config key that changes the computation."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from model_fixtures import micro_config

from clvnet.models.builder import build_model
from clvnet.models.cgformer import CGFormer, PlainPrompt
from clvnet.models.clvnet import CLVNet


def _build(batch: dict[str, Any], **over: Any) -> CLVNet:
    torch.manual_seed(0)
    return build_model(micro_config(**over), captions=batch["target"])


def test_use_box_prompt_off_ignores_region(batch: dict[str, Any]) -> None:
    model = _build(batch, use_box_prompt=False)
    inputs = model.processor(batch)
    assert not bool((inputs["input_ids"] == model.reasoner.ids.box).any())
    on = _build(batch)
    assert int((on.processor(batch)["input_ids"] == on.reasoner.ids.box).sum()) == 2 * on.region.num_tokens
    model.eval()
    with torch.no_grad():
        a = model(inputs).loss
        inputs2 = dict(inputs, region=torch.rand_like(inputs["region"]), box=torch.rand_like(inputs["box"]))
        b = model(inputs2).loss
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="<BOX>"):
        model.processor.prompt_ids("Describe <BOX>.")


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
    assert off.text_relation is not None and on.text_relation is None     # R_t for L_rec without CGFormer
    out = off(off.processor(batch))
    assert float(out.losses["rec"]) >= 0 and out.relation_text is not None


def test_sam_decoder_switch(batch: dict[str, Any]) -> None:
    from transformers.models.sam.modeling_sam import SamMaskDecoder

    model = _build(batch, **{"mask_decoder.kind": "sam",
                             "mask_decoder.config": {"hidden_size": 32, "mlp_dim": 64, "num_hidden_layers": 2,
                                                     "num_attention_heads": 2, "iou_head_hidden_dim": 32}})
    assert isinstance(model.mask_decoder.decoder, SamMaskDecoder)
    out = model(model.processor(batch))
    assert out.mask_logits.shape == batch["masks"].shape
    out.loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in model.named_parameters() if p.grad is not None}


def test_loss_switches_and_lambda(batch: dict[str, Any]) -> None:
    base = _build(batch)
    no_align = _build(batch, **{"loss.csc": False, "loss.rec": False})
    assert no_align.mask_proj is None and no_align.visual_relation is None
    out = no_align(no_align.processor(batch))
    assert float(out.losses["csc"]) == 0.0 and float(out.losses["rec"]) == 0.0
    ref = base(base.processor(batch))
    double = _build(batch, **{"loss.sralign_lambda": 2.0})
    out2 = double(double.processor(batch))
    terms = ref.losses
    delta = out2.losses["total"] - terms["total"]
    assert torch.allclose(delta, terms["csc"] + terms["rec"], atol=1e-5)
    assert float(terms["csc"]) > 0


def test_detection_region_path(batch: dict[str, Any]) -> None:
    model = _build(batch, **{"region.mode": "detections", "region.num_detections": 3})
    assert model.region.num_tokens == 4
    det = torch.tensor([[[0.05, 0.05, 0.2, 0.2], [0.1, 0.2, 0.3, 0.4]]] * 2)
    valid = torch.tensor([[True, True], [True, False]])
    inputs = dict(model.processor(batch), detections=det, detections_valid=valid)
    out = model(inputs)
    out.loss.backward()
    assert model.region.pad_token.grad is not None                  # the empty slots use the pad token
    model.eval()
    outs = model.generate(batch["image"], batch["region"], batch["box"], max_new_tokens=3,
                          detections=det, detections_valid=valid)
    assert len(outs) == 2
