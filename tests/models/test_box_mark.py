"""``region.box_mark``: the user box marked on the LLM's image tokens and the mask decoder's dense prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from model_fixtures import micro_config

from clvnet.models import CLVNet
from clvnet.models.builder import build_model
from clvnet.models.region import box_relative_features


def _model(batch: dict[str, Any], mark: str) -> CLVNet:
    torch.manual_seed(0)
    return build_model(micro_config(**{"region.box_mark": mark}), captions=batch["target"])


def test_box_relative_features() -> None:
    f = box_relative_features(torch.tensor([[0.25, 0.25, 0.75, 0.5]]), 4)[0].view(4, 4, 5)
    cover = f[..., 0]
    assert torch.allclose(cover, torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0.]]))
    assert torch.allclose(f[0, 1], torch.tensor([0.0, 0.5, 1.5, -0.5, 1.5]))   # cell above the box: top < 0
    half = box_relative_features(torch.tensor([[0.0, 0.0, 0.125, 1.0]]), 4)[0, :, 0].view(4, 4)
    assert torch.allclose(half[:, 0], torch.full((4,), 0.5)) and half[:, 1:].sum() == 0


@pytest.mark.parametrize("mark", ["llm", "mask", "both"])
def test_zero_initialised_then_trained_and_box_dependent(batch: dict[str, Any], mark: str) -> None:
    marked, plain = _model(batch, mark), _model(batch, "none")
    missing, unexpected = plain.load_state_dict(marked.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("box_mark_") for k in unexpected)
    assert (marked.box_mark_llm is not None) == (mark != "mask")
    assert (marked.box_mark_mask is not None) == (mark != "llm")
    inputs = marked.processor(batch)
    with torch.no_grad():                        # zero init: the same function as without it
        assert torch.allclose(marked.eval()(inputs).loss, plain.eval()(inputs).loss, atol=1e-6)
    marked.train()
    marked(inputs).loss.backward()
    for head in (marked.box_mark_llm, marked.box_mark_mask):
        if head is not None:
            grad = head.mlp[2].weight.grad
            assert grad is not None and grad.abs().sum() > 0 and head.mlp[2].weight.requires_grad
    marked.eval()
    with torch.no_grad():
        for head in (marked.box_mark_llm, marked.box_mark_mask):
            if head is not None:
                torch.nn.init.normal_(head.mlp[2].weight, std=0.5)
        feats = marked.encode_image(inputs["image"])
        box = inputs["box"]
        other = torch.tensor([[0.5, 0.5, 1.0, 1.0]]).expand_as(box)
        a, b = marked.mark_box(feats, box), marked.mark_box(feats, other)
        assert torch.equal(marked.mark_box(feats, None).image_tokens, feats.image_tokens)
        if mark != "mask":
            assert not torch.allclose(a.image_tokens, b.image_tokens)
        else:
            assert torch.equal(a.image_tokens, feats.image_tokens)
        if mark != "llm":
            assert a.grounding.dense_prompt is not None and b.grounding.dense_prompt is not None
            assert not torch.allclose(a.grounding.dense_prompt, b.grounding.dense_prompt)
        assert feats.grounding.dense_prompt is None          # the cached features stay box-independent


def test_generation_uses_the_mark_and_checkpoint_round_trip(batch: dict[str, Any], tmp_path: Path) -> None:
    model = _model(batch, "both").eval()
    assert model.box_mark_llm is not None and model.box_mark_mask is not None
    with torch.no_grad():
        torch.nn.init.normal_(model.box_mark_mask.mlp[2].weight, std=2.0)
    inputs = model.processor(batch)
    calls: list[str] = []
    model.box_mark_llm.register_forward_hook(lambda *_: calls.append("llm"))
    model.box_mark_mask.register_forward_hook(lambda *_: calls.append("mask"))
    model.generate(inputs["image"][:1], inputs["region"][:1], inputs["box"][:1], max_new_tokens=4)
    assert calls == ["llm", "mask"]
    with torch.no_grad():                       # the mask decoder reads the dense prompt
        feats = model.encode_image(inputs["image"][:1])
        f_h = torch.randn(1, 2, model.reasoner.llm.config.hidden_size)
        obj = torch.ones(1, 2, dtype=torch.bool)
        f_r, _ = model.context_tokens(feats, inputs["region"][:1], inputs["box"][:1])
        assert f_r is not None
        m_a = model.decode_masks(f_h, f_r, obj, model.mark_box(feats, torch.tensor([[0.0, 0, 0.5, 0.5]])).grounding, 32)
        m_b = model.decode_masks(f_h, f_r, obj, model.mark_box(feats, torch.tensor([[0.5, 0.5, 1, 1]])).grounding, 32)
    assert not torch.allclose(m_a[0], m_b[0])
    model.save_pretrained(tmp_path / "ckpt")
    again = CLVNet.from_pretrained(tmp_path / "ckpt")
    assert again.box_mark_mask is not None
    assert torch.equal(again.box_mark_mask.mlp[2].weight, model.box_mark_mask.mlp[2].weight)
    # a checkpoint with the mark does not load into a model without it (strict loading names the keys)
    plain_dir = tmp_path / "plain"
    _model(batch, "none").save_pretrained(plain_dir)
    cfg_text = (plain_dir / "config.yaml").read_text()
    (tmp_path / "ckpt" / "config.yaml").write_text(cfg_text)
    with pytest.raises(ValueError, match="box_mark"):
        CLVNet.from_pretrained(tmp_path / "ckpt")
