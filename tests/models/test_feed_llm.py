"""``grounding.feed_llm``: the grounding embedding also reaches the LLM's image and region tokens."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from model_fixtures import micro_config

from clvnet.models.builder import build_model


def _model(batch: dict[str, Any], feed: bool, **over: Any) -> Any:
    torch.manual_seed(0)
    return build_model(micro_config(**{"grounding.feed_llm": feed, **over}), captions=batch["target"])


def test_zero_initialised_then_trained(batch: dict[str, Any]) -> None:
    fed, plain = _model(batch, True), _model(batch, False)
    missing, unexpected = plain.load_state_dict(fed.state_dict(), strict=False)
    assert not missing and unexpected == ["grounding_proj.weight", "grounding_proj.bias"]
    inputs = fed.processor(batch)
    with torch.no_grad():                        # zero init: the same function as without it
        assert torch.allclose(fed.eval()(inputs).loss, plain.eval()(inputs).loss, atol=1e-6)
    fed.train()
    fed(inputs).loss.backward()
    grad = fed.grounding_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    with torch.no_grad():
        fed.grounding_proj.weight.fill_(0.1)
        feats = fed.encode_image(inputs["image"])
        f_r = fed.encode_region(inputs["region"], inputs["box"], grounding=feats.grounding)
        moved = fed.encode_region(inputs["region"], inputs["box"].flip(-1).clamp(0, 1), grounding=feats.grounding)
    assert not torch.allclose(f_r, moved)
    with pytest.raises(ValueError, match="feed_llm"):
        fed.encode_region(inputs["region"], inputs["box"])


@pytest.mark.parametrize("mode", ["grid", "detections"])
def test_token_boxes_match_the_region_tokens(batch: dict[str, Any], mode: str) -> None:
    model = _model(batch, True, **{"region.mode": mode, "region.num_detections": 3})
    box = torch.tensor([[0.2, 0.2, 0.6, 0.8]])
    det = torch.tensor([[[0.3, 0.3, 0.4, 0.4]]])
    boxes = model.region.token_boxes(box, det if mode == "detections" else None)
    assert boxes.shape == (1, model.region.num_tokens, 4)
    assert torch.allclose(boxes[0, 0], box[0])
    if mode == "grid":
        assert torch.allclose(boxes[0, 1], torch.tensor([0.2, 0.2, 0.4, 0.5]))
    else:
        assert torch.allclose(boxes[0, 1], det[0, 0]) and torch.equal(boxes[0, 2], torch.zeros(4))
