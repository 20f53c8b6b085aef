"""LocationCues: ``region.box_mark`` and ``grounding.feed_llm`` (zero-initialised, trained, box-dependent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from model_fixtures import micro_config

from clvnet.models.build import build_model, from_pretrained, save_pretrained
from clvnet.models.cues import box_relative_features
from clvnet.models.generation import generate
from clvnet.models.modeling import CLVNet


def _model(batch: dict[str, Any], mark: str = "none", feed: bool = False, **over: Any) -> CLVNet:
    torch.manual_seed(0)
    return build_model(micro_config(**{"region.box_mark": mark, "grounding.feed_llm": feed, **over}),
                       captions=batch["target"])


def test_box_relative_features() -> None:
    f = box_relative_features(torch.tensor([[0.25, 0.25, 0.75, 0.5]]), 4)[0].view(4, 4, 5)
    assert torch.allclose(f[..., 0], torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0.]]))
    assert torch.allclose(f[0, 1], torch.tensor([0.0, 0.5, 1.5, -0.5, 1.5]))   # cell above the box: top < 0
    half = box_relative_features(torch.tensor([[0.0, 0.0, 0.125, 1.0]]), 4)[0, :, 0].view(4, 4)
    assert torch.allclose(half[:, 0], torch.full((4,), 0.5)) and half[:, 1:].sum() == 0


@pytest.mark.parametrize("mark, feed", [("llm", False), ("mask", False), ("both", False), ("none", True),
                                        ("both", True)])
def test_zero_initialised_then_trained(batch: dict[str, Any], mark: str, feed: bool) -> None:
    cued, plain = _model(batch, mark, feed), _model(batch)
    missing, unexpected = plain.load_state_dict(cued.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith("cues.") for k in unexpected)
    assert (cued.cues.mark_llm is not None) == (mark in ("llm", "both"))
    assert (cued.cues.mark_mask is not None) == (mark in ("mask", "both"))
    assert (cued.cues.feed is not None) == feed
    inputs = cued.processor(batch)
    with torch.no_grad():                        # zero init: the same function as without the cues
        assert torch.allclose(cued.eval()(inputs).loss, plain.eval()(inputs).loss, atol=1e-6)
    cued.train()
    cued(inputs).loss.backward()
    lasts = [m.mlp[2].weight for m in (cued.cues.mark_llm, cued.cues.mark_mask) if m is not None]
    lasts += [cued.cues.feed.weight] if cued.cues.feed is not None else []
    for w in lasts:
        assert w.requires_grad and w.grad is not None and float(w.grad.abs().sum()) > 0


@pytest.mark.parametrize("mark", ["llm", "mask", "both"])
def test_the_mark_depends_on_the_box_and_leaves_cached_features_alone(batch: dict[str, Any], mark: str) -> None:
    model = _model(batch, mark).eval()
    inputs = model.processor(batch)
    with torch.no_grad():
        for head in (model.cues.mark_llm, model.cues.mark_mask):
            if head is not None:
                torch.nn.init.normal_(head.mlp[2].weight, std=0.5)
        feats = model.encode_image(inputs["image"])
        box = inputs["box"]
        a, b = model.mark_box(feats, box), model.mark_box(feats, torch.tensor([[0.5, 0.5, 1.0, 1.0]]).expand_as(box))
        assert torch.equal(model.mark_box(feats, None).image_tokens, feats.image_tokens)
        assert torch.allclose(a.image_tokens, b.image_tokens) == (mark == "mask")
        if mark != "llm":
            assert a.grounding.dense_prompt is not None and b.grounding.dense_prompt is not None
            assert not torch.allclose(a.grounding.dense_prompt, b.grounding.dense_prompt)
        assert feats.grounding.dense_prompt is None          # the cached features stay box-independent


def test_generation_uses_the_mark_and_checkpoints_are_strict(batch: dict[str, Any], tmp_path: Path) -> None:
    model = _model(batch, "both").eval()
    assert model.cues.mark_llm is not None and model.cues.mark_mask is not None
    with torch.no_grad():
        torch.nn.init.normal_(model.cues.mark_mask.mlp[2].weight, std=2.0)
    inputs = model.processor(batch)
    calls: list[str] = []
    model.cues.mark_llm.register_forward_hook(lambda *_: calls.append("llm"))
    model.cues.mark_mask.register_forward_hook(lambda *_: calls.append("mask"))
    generate(model, inputs["image"][:1], inputs["region"][:1], inputs["box"][:1], max_new_tokens=4)
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
    save_pretrained(model, tmp_path / "ckpt")
    again = from_pretrained(tmp_path / "ckpt")
    assert again.cues.mark_mask is not None
    assert torch.equal(again.cues.mark_mask.mlp[2].weight, model.cues.mark_mask.mlp[2].weight)
    plain_dir = save_pretrained(_model(batch), tmp_path / "plain")
    (tmp_path / "ckpt" / "config.yaml").write_text((plain_dir / "config.yaml").read_text())
    with pytest.raises(ValueError, match=r"unexpected keys .*cues\.mark"):
        from_pretrained(tmp_path / "ckpt")


def test_feed_llm_reaches_region_tokens(batch: dict[str, Any]) -> None:
    model = _model(batch, feed=True).eval()
    assert model.cues.feed is not None
    inputs = model.processor(batch)
    with torch.no_grad():
        model.cues.feed.weight.fill_(0.1)
        feats = model.encode_image(inputs["image"])
        f_r = model.encode_region(inputs["region"], inputs["box"], grounding=feats.grounding)
        moved = model.encode_region(inputs["region"], inputs["box"].flip(-1).clamp(0, 1), grounding=feats.grounding)
        bare = model.encode_region(inputs["region"], inputs["box"])
    assert not torch.allclose(f_r, moved) and not torch.allclose(f_r, bare)


@pytest.mark.parametrize("mode", ["grid", "detections"])
def test_token_boxes_match_the_region_tokens(batch: dict[str, Any], mode: str) -> None:
    model = _model(batch, feed=True, **{"region.mode": mode, "region.num_detections": 3})
    box = torch.tensor([[0.2, 0.2, 0.6, 0.8]])
    det = torch.tensor([[[0.3, 0.3, 0.4, 0.4]]])
    boxes = model.region.token_boxes(box, det if mode == "detections" else None)
    assert boxes.shape == (1, model.region.num_tokens, 4)
    assert torch.allclose(boxes[0, 0], box[0])
    if mode == "grid":
        assert torch.allclose(boxes[0, 1], torch.tensor([0.2, 0.2, 0.4, 0.5]))
    else:
        assert torch.allclose(boxes[0, 1], det[0, 0]) and torch.equal(boxes[0, 2], torch.zeros(4))
